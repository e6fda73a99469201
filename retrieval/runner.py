"""Runs one source at a time, across threads and processes, and records every run."""

import fcntl
import time
from collections.abc import Callable
from pathlib import Path

from retrieval.errors import AjusteError
from retrieval.indexer import Indexer, IndexReport, Progress
from retrieval.metrics import REINDEX_RUNS, REINDEX_SECONDS
from retrieval.runs import RunLog, SourceRun, now
from retrieval.sources.base import Source


class SourceBusyError(AjusteError):
    """A run of this source is already going."""


class SourceRunner:
    def __init__(self, *, indexer: Indexer, runs: RunLog, locks_dir: Path) -> None:
        self.indexer = indexer
        self.runs = runs
        self.locks_dir = locks_dir

    def run(
        self,
        source: Source,
        *,
        paths: list[str] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_progress: Progress | None = None,
    ) -> IndexReport:
        """Index `source` now; SourceBusyError when it is already running anywhere."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        with (self.locks_dir / f"{source.name}.lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                last = self.runs.last(source.name)
                since = f" since {last.started}" if last and last.finished is None else ""
                raise SourceBusyError(f"'{source.name}' is already running{since}") from None
            run = SourceRun(source.name, started=now(), paths=paths or [])
            self.runs.record(run)
            started = time.perf_counter()
            try:
                report = self.indexer.index_source(
                    source, on_problem=on_problem, on_progress=on_progress
                )
            except Exception as error:
                self.runs.finish(run, None, str(error))
                REINDEX_RUNS.labels(source.name, "failed").inc()
                raise
            finally:
                source.close()
                REINDEX_SECONDS.labels(source.name).observe(time.perf_counter() - started)
            self.runs.finish(run, report, None)
            REINDEX_RUNS.labels(source.name, "ok").inc()
            return report
