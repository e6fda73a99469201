"""The outcome of each source's last index run, kept in the data dir for status reports."""

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retrieval.indexer import IndexReport


@dataclass
class SourceRun:
    source: str
    paths: list[str]
    started: str
    finished: str | None = None
    report: dict[str, object] = field(default_factory=dict)
    error: str | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunLog:
    """Last run per source, in `<data dir>/index-runs.json` (written atomically)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "index-runs.json"
        self._lock = threading.Lock()

    def all(self) -> dict[str, SourceRun]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {name: SourceRun(**run) for name, run in raw.items()}

    def last(self, source: str) -> SourceRun | None:
        return self.all().get(source)

    def record(self, run: SourceRun) -> None:
        with self._lock:
            runs = self.all()
            runs[run.source] = run
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps({k: asdict(v) for k, v in runs.items()}, indent=2))
            os.replace(temporary, self.path)

    def finish(self, run: SourceRun, report: IndexReport | None, error: str | None) -> SourceRun:
        run.finished = now()
        run.report = report.as_dict() if report is not None else {}
        run.error = error
        self.record(run)
        return run
