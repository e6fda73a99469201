"""Prometheus metrics of answering, served at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

QUESTIONS = Counter("ajuste_questions_total", "Questions answered, by outcome", ["outcome"])
ANSWER_SECONDS = Histogram(
    "ajuste_answer_seconds",
    "Time from question to complete answer",
    buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
FIRST_TOKEN_SECONDS = Histogram(
    "ajuste_first_token_seconds",
    "Time from question to the answer's first token",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30),
)
TOKENS_PER_SECOND = Histogram(
    "ajuste_generation_tokens_per_second",
    "Generation speed of each answer",
    buckets=(1, 5, 10, 20, 40, 80, 160, 320),
)
QUEUE_DEPTH = Gauge("ajuste_queue_depth", "Questions waiting for the model")
RETRIEVAL_HITS = Histogram(
    "ajuste_retrieval_hits",
    "Related chunks found per question",
    buckets=(0, 1, 2, 4, 8, 16),
)
FEEDBACK_VOTES = Counter("ajuste_feedback_votes_total", "👍/👎 votes", ["vote"])
