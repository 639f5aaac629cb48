"""Prometheus metrics of the service, named by Prometheus conventions.

Under several gunicorn workers, `PROMETHEUS_MULTIPROC_DIR` makes every worker write its values
to shared files that `/metrics` aggregates; it must be set before this module is imported.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request duration.", ["method", "route"], buckets=_FAST
)
REBALANCES = Counter(
    "rebalances_total", "Rebalance requests by kind and outcome.", ["kind", "outcome"]
)
REBALANCE_DURATION = Histogram(
    "rebalance_duration_seconds", "Rebalance request duration.", ["kind"], buckets=_SLOW
)
MODEL_REBALANCE_PORTFOLIOS = Histogram(
    "model_rebalance_portfolios",
    "Portfolios per model rebalance.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
REBALANCES_IN_FLIGHT = Gauge(
    "rebalances_in_flight", "Rebalance requests being worked on.", multiprocess_mode="livesum"
)
SOLVER_DURATION = Histogram(
    "solver_duration_seconds", "Time to solve one portfolio.", ["method"], buckets=_FAST
)
GLOBECO_DURATION = Histogram(
    "globeco_request_duration_seconds",
    "Duration of one HTTP attempt to a GlobeCo service.",
    ["service", "outcome"],
    buckets=_FAST,
)
GLOBECO_RETRIES = Counter("globeco_retries_total", "Retried GlobeCo calls.", ["service"])
GLOBECO_ERRORS = Counter(
    "globeco_errors_total", "GlobeCo calls that failed after retries.", ["service"]
)
CIRCUIT_BREAKER_STATE = Gauge(
    "globeco_circuit_breaker_state",
    "Circuit breaker state per service: 0 closed, 1 half-open, 2 open.",
    ["service"],
    multiprocess_mode="max",
)
CACHE_HITS = Counter("cache_hits_total", "Cache hits.", ["cache"])
CACHE_MISSES = Counter("cache_misses_total", "Cache misses.", ["cache"])


def exposition() -> tuple[bytes, str]:
    """The current values in the Prometheus text format, across workers when there are several."""
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
