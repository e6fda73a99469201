"""Each source's runs, kept in the data dir: started, finished, counts, error.

A run killed with its process is recognised by its dead process id and shown as interrupted.
"""

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retrieval.indexer import IndexReport

HISTORY = 20  # runs kept per source


@dataclass
class SourceRun:
    source: str
    started: str
    paths: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    finished: str | None = None
    report: dict[str, object] = field(default_factory=dict)
    error: str | None = None

    @property
    def state(self) -> str:
        """running, interrupted, failed or ok."""
        if self.finished is None:
            return "running" if _alive(self.pid) else "interrupted"
        return "failed" if self.error else "ok"

    def summary(self) -> str:
        if self.state == "running":
            return f"running since {self.started}"
        if self.state == "interrupted":
            return f"interrupted (started {self.started}); the next run finishes the job"
        if self.error:
            return f"failed at {self.finished}: {self.error}"
        r = self.report
        return (
            f"ok at {self.finished}: {r.get('added', 0)} added, {r.get('updated', 0)} updated, "
            f"{r.get('deleted', 0)} deleted, {r.get('unchanged', 0)} unchanged, "
            f"{r.get('failed', 0)} failed in {r.get('seconds', 0)} s"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunLog:
    """The last runs of every source, in `<data dir>/index-runs.json` (written atomically)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "index-runs.json"
        self._lock = threading.Lock()

    def history(self) -> dict[str, list[SourceRun]]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {
            name: [SourceRun(**run) for run in runs]
            for name, runs in raw.items()
            if isinstance(runs, list)
        }

    def all(self) -> dict[str, SourceRun]:
        """The latest run of each source."""
        return {name: runs[-1] for name, runs in self.history().items() if runs}

    def last(self, source: str) -> SourceRun | None:
        return self.all().get(source)

    def record(self, run: SourceRun) -> None:
        with self._lock:
            history = self.history()
            runs = [
                r
                for r in history.get(run.source, [])
                if (r.started, r.pid) != (run.started, run.pid)
            ]
            history[run.source] = [*runs, run][-HISTORY:]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            data = {name: [asdict(r) for r in runs] for name, runs in history.items()}
            temporary.write_text(json.dumps(data, indent=2))
            os.replace(temporary, self.path)

    def finish(self, run: SourceRun, report: IndexReport | None, error: str | None) -> SourceRun:
        run.finished = now()
        run.report = report.as_dict() if report is not None else {}
        run.error = error
        self.record(run)
        return run
