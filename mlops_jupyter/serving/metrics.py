"""Prometheus text-format metrics, kept in plain dicts (one event loop: no locks needed)."""

from __future__ import annotations

import bisect

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # requests merged into one model call


class Metrics:
    def __init__(self):
        self.requests: dict[tuple[str, str, int], int] = {}  # (route, version, status) -> count
        self.rows: dict[str, int] = {}
        self.hist: dict[str, list[int]] = {}  # version -> bucket counts (+Inf last)
        self.sums: dict[str, float] = {}
        self.unauthorized = 0
        self.log_dropped = 0
        self.log_errors = 0
        self.logged = 0
        self.labels = 0
        self.batches: dict[str, list[int]] = {}  # version -> bucket counts of requests per model call (+Inf last)
        self.batch_sums: dict[str, int] = {}
        self.batch_rows: dict[str, int] = {}
        self.batch_fallbacks = 0

    def observe(self, route: str, version: str, status: int, seconds: float, rows: int = 0) -> None:
        k = (route, version, status)
        self.requests[k] = self.requests.get(k, 0) + 1
        if status < 400 and version:
            h = self.hist.get(version)
            if h is None:
                h = self.hist[version] = [0] * (len(BUCKETS) + 1)
            h[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[version] = self.sums.get(version, 0.0) + seconds
            self.rows[version] = self.rows.get(version, 0) + rows

    def observe_batch(self, version: str, requests: int, rows: int) -> None:
        """One model call of a batching server: how many requests (and rows) it answered."""
        h = self.batches.get(version)
        if h is None:
            h = self.batches[version] = [0] * (len(BATCH_BUCKETS) + 1)
        h[bisect.bisect_left(BATCH_BUCKETS, requests)] += 1
        self.batch_sums[version] = self.batch_sums.get(version, 0) + requests
        self.batch_rows[version] = self.batch_rows.get(version, 0) + rows

    def render(self) -> str:
        out = ["# HELP mlops_requests_total Requests by route, model version and status.",
               "# TYPE mlops_requests_total counter"]
        for (route, version, status), n in sorted(self.requests.items()):
            out.append(f'mlops_requests_total{{route="{route}",version="{version}",status="{status}"}} {n}')
        out += ["# HELP mlops_predicted_rows_total Rows predicted by model version.",
                "# TYPE mlops_predicted_rows_total counter"]
        out += [f'mlops_predicted_rows_total{{version="{v}"}} {n}' for v, n in sorted(self.rows.items())]
        out += ["# HELP mlops_request_seconds Latency of successful predictions by model version.",
                "# TYPE mlops_request_seconds histogram"]
        for v, h in sorted(self.hist.items()):
            out += histogram("mlops_request_seconds", v, BUCKETS, h, f"{self.sums[v]:.6f}")
        out += ["# HELP mlops_unauthorized_total Requests refused for a missing or wrong token.",
                "# TYPE mlops_unauthorized_total counter", f"mlops_unauthorized_total {self.unauthorized}",
                "# HELP mlops_prediction_log_total Prediction log records written, dropped, failed.",
                "# TYPE mlops_prediction_log_total counter",
                f'mlops_prediction_log_total{{outcome="written"}} {self.logged}',
                f'mlops_prediction_log_total{{outcome="dropped"}} {self.log_dropped}',
                f'mlops_prediction_log_total{{outcome="error"}} {self.log_errors}',
                "# HELP mlops_labels_total Labels stored through /feedback.",
                "# TYPE mlops_labels_total counter", f"mlops_labels_total {self.labels}"]
        if self.batches or self.batch_fallbacks:
            out += self._render_batches()
        return "\n".join(out) + "\n"

    def _render_batches(self) -> list[str]:
        out = ["# HELP mlops_batch_requests Requests answered by one model call (--batch), by model version.",
               "# TYPE mlops_batch_requests histogram"]
        for v, h in sorted(self.batches.items()):
            out += histogram("mlops_batch_requests", v, BATCH_BUCKETS, h, str(self.batch_sums[v]))
        out += ["# HELP mlops_batch_rows_total Rows predicted in batched model calls, by model version.",
                "# TYPE mlops_batch_rows_total counter"]
        out += [f'mlops_batch_rows_total{{version="{v}"}} {n}' for v, n in sorted(self.batch_rows.items())]
        out += ["# HELP mlops_batch_fallbacks_total Merged model calls that raised and were retried one request "
                "at a time.", "# TYPE mlops_batch_fallbacks_total counter",
                f"mlops_batch_fallbacks_total {self.batch_fallbacks}"]
        return out


def histogram(name: str, version: str, buckets, counts: list[int], total: str) -> list[str]:
    """The Prometheus lines of one version's histogram: cumulative buckets, sum and count."""
    out, acc = [], 0
    for le, n in zip([*map(str, buckets), "+Inf"], counts):
        acc += n
        out.append(f'{name}_bucket{{version="{version}",le="{le}"}} {acc}')
    out.append(f'{name}_sum{{version="{version}"}} {total}')
    out.append(f'{name}_count{{version="{version}"}} {acc}')
    return out
