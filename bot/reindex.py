"""Re-index runs started from chat (/reindex): in the background, reporting as they go."""

import logging
import threading
from collections.abc import Callable

from bot.services import Services
from retrieval.indexer import IndexReport, Progress
from retrieval.runner import SourceBusyError

log = logging.getLogger(__name__)

__all__ = ["Reindexer", "SourceBusyError"]


class Reindexer:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def busy(self, source: str) -> str | None:
        """'is already running since …' when a run of `source` is going in this process."""
        with self._lock:
            if source not in self._running:
                return None
        last = self.services.runs.last(source)
        return f"is already running since {last.started}" if last else "is already running"

    def start(
        self,
        source: str,
        *,
        on_done: Callable[[IndexReport | None, str | None], None],
        on_progress: Progress | None = None,
    ) -> None:
        """Run `source` in a thread; `on_done(report, error)` afterwards.

        Raises SourceBusyError at once when this process already runs it; a run in another
        process is refused by the runner's lock and reported through `on_done`.
        """
        busy = self.busy(source)
        with self._lock:
            if busy or source in self._running:
                raise SourceBusyError(f"'{source}' {busy or 'is already running'}")
            self._running.add(source)

        def run() -> None:
            try:
                report = self.services.run_source(source, on_progress=on_progress)
            except Exception as error:  # reported to whoever asked; the old index stays
                log.warning("re-indexing %s failed: %s", source, error)
                on_done(None, str(error))
            else:
                on_done(report, None)
            finally:
                with self._lock:
                    self._running.discard(source)

        threading.Thread(target=run, name=f"reindex-{source}", daemon=True).start()
