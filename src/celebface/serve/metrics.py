"""Request counters and latency histograms in the Prometheus text format (no dependency)."""

from __future__ import annotations

import bisect
import resource
import threading
import time
from collections import defaultdict
from typing import Any

#: Upper bounds (seconds) of the latency histogram buckets.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counts requests per (method, route, status) and their latency per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.seconds: dict[str, float] = defaultdict(float)
        self.in_flight = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.buckets[route][bisect.bisect_left(BUCKETS, seconds)] += 1
            self.seconds[route] += seconds

    def render(self, gauges: dict[str, Any] | None = None) -> str:
        """The metrics page; ``gauges``: extra ``name -> number`` values."""
        out = [
            "# HELP celebface_requests_total HTTP requests by method, route and status.",
            "# TYPE celebface_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'celebface_requests_total{{method="{method}",route="{_escape(route)}",'
                           f'status="{status}"}} {n}')
            out += ["# HELP celebface_request_seconds Request latency by route.",
                    "# TYPE celebface_request_seconds histogram"]
            for route, counts in sorted(self.buckets.items()):
                r, total = _escape(route), 0
                for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                    total += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f'celebface_request_seconds_bucket{{route="{r}",le="{le}"}} '
                               f"{total}")
                out.append(f'celebface_request_seconds_sum{{route="{r}"}} '
                           f"{self.seconds[route]:.6f}")
                out.append(f'celebface_request_seconds_count{{route="{r}"}} {total}')
            values = {"requests_in_flight": self.in_flight,
                      "uptime_seconds": round(time.time() - self.started, 3),
                      "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      **(gauges or {})}
        for name, value in values.items():
            out += [f"# TYPE celebface_{name} gauge", f"celebface_{name} {float(value):g}"]
        return "\n".join(out) + "\n"
