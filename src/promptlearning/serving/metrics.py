"""Prometheus metrics of one server: requests, rows per forward, queue wait and latency.

Each server has its own registry (not prometheus_client's global one), so several servers in one
process (tests, embedding) never share or clash over counters. prometheus_client is imported only
when metrics are made: the engine works without the ``serve`` extra.
"""

from __future__ import annotations

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters and histograms `GET /metrics` shows."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("promptlearning_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.batch_rows = Histogram("promptlearning_batch_rows", "rows per forward (all adapters together)",
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.batch_adapters = Histogram("promptlearning_batch_adapters", "distinct adapters per forward",
                                        buckets=_BATCH_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("promptlearning_queue_wait_seconds", "time a request waited before its forward",
                                    buckets=_SECONDS, registry=self.registry)
        self.latency = Histogram("promptlearning_request_latency_seconds", "time from arrival to answer",
                                 ["endpoint"], buckets=_SECONDS, registry=self.registry)
        self.queued_rows = Gauge("promptlearning_queued_rows", "rows waiting now", registry=self.registry)
        self.adapters = Gauge("promptlearning_adapters_loaded", "adapters loaded now", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe_batch(self, rows: int, adapters: int, waits: list[float]) -> None:
        self.batch_rows.observe(rows)
        self.batch_adapters.observe(adapters)
        for w in waits:
            self.queue_wait.observe(w)
