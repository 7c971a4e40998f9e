"""Benchmarks: one script per area, each printing our figure beside the anchor's (python -m bench.X)."""
