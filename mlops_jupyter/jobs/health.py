"""The container's HEALTHCHECK: a serving container is healthy when ``/health`` answers; a
container running a batch (``retrain``, ``run``) is healthy while it runs."""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    try:
        with open("/tmp/mlops-mode", encoding="utf-8") as f:
            mode = f.read().strip()
    except OSError:
        mode = ""
    if mode != "serve":
        return 0
    port = os.environ.get("MLOPS_SERVE_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=4) as r:
            return 0 if r.status == 200 else 1
    except Exception as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
