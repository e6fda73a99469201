"""Re-index runs started from chat (/reindex): one at a time, in the background."""

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bot.services import Services
from retrieval.indexer import FILES_SOURCE, IndexReport
from retrieval.runs import now

log = logging.getLogger(__name__)


class ReindexBusyError(Exception):
    """A run of this source is already going."""


class Reindexer:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # source → since

    def known_sources(self) -> dict[str, list[str]]:
        """Sources indexed before, with the paths of their last run."""
        return {name: run.paths for name, run in self.services.runs.all().items() if run.paths}

    def start(
        self,
        source: str = FILES_SOURCE,
        *,
        on_done: Callable[[IndexReport | None, str | None], None],
    ) -> None:
        """Re-index `source` over its last paths in a thread; `on_done(report, error)` after."""
        paths = self.known_sources().get(source)
        if paths is None:
            raise KeyError(source)
        with self._lock:
            if source in self._running:
                raise ReindexBusyError(f"already running since {self._running[source]}")
            self._running[source] = now()

        def run() -> None:
            try:
                report = self.services.index([Path(p) for p in paths], source=source)
            except Exception as error:  # reported to whoever asked; the old index stays
                log.exception("re-indexing %s failed", source)
                on_done(None, str(error))
            else:
                on_done(report, None)
            finally:
                with self._lock:
                    self._running.pop(source, None)

        threading.Thread(target=run, name=f"reindex-{source}", daemon=True).start()
