"""Prometheus metrics of indexing (the bot adds its own in bot/metrics.py)."""

from prometheus_client import Counter, Histogram

REINDEX_RUNS = Counter(
    "ajuste_reindex_runs_total", "Index runs per source and outcome", ["source", "outcome"]
)
REINDEX_SECONDS = Histogram(
    "ajuste_reindex_seconds",
    "Duration of index runs per source",
    ["source"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 14400),
)
