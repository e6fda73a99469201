"""First come, first served turns on a model, with each waiter's place in the queue."""

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class QueueFullError(Exception):
    """More callers are waiting than the queue allows."""


class Turns:
    """A fair lock: up to `slots` callers run at once, the rest wait in arrival order and can
    see their position (an in-process model has one slot; model servers can have several)."""

    def __init__(self, *, slots: int = 1, max_waiting: int | None = None) -> None:
        self._condition = threading.Condition()
        self._queue: deque[object] = deque()
        self._slots = slots
        self._max_waiting = max_waiting

    @property
    def waiting(self) -> int:
        """Callers waiting, not counting those whose turn it is."""
        with self._condition:
            return max(0, len(self._queue) - self._slots)

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """Wait for our turn; `on_wait(n)` is told each time the number ahead of us changes."""
        ticket = object()
        with self._condition:
            waiting = len(self._queue) - self._slots
            if self._max_waiting is not None and waiting >= self._max_waiting:
                raise QueueFullError(f"{waiting} questions are already waiting")
            self._queue.append(ticket)
        try:
            told = 0
            while True:
                with self._condition:
                    ahead = self._queue.index(ticket) - self._slots + 1
                    if ahead <= 0:
                        break
                    if ahead == told:
                        self._condition.wait()
                        continue
                told = ahead
                if on_wait is not None:
                    on_wait(ahead)  # outside the lock: it may talk to Slack
            yield
        finally:
            with self._condition:
                self._queue.remove(ticket)
                self._condition.notify_all()
