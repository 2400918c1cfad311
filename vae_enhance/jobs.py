"""A server-wide bound on concurrent enhance/variation jobs: a first-come, first-served queue that says its length.

Streamlit runs every browser session in its own thread of one process. Each job holds a full-size result and
a tile's activations, so the number running at once is what bounds the server's memory; the others wait
their turn, and a waiting session is told how many jobs are ahead of it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class JobQueue:
    """At most `limit` jobs hold a slot at once; the others wait in arrival order."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the job limit must be at least 1, got {limit}")
        self.limit = limit
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()

    def ahead(self, ticket: object | None = None) -> int:
        """Jobs that start before `ticket` (running ones included); without a ticket, all of them."""
        with self._cond:
            queued = self._waiting.index(ticket) if ticket is not None else len(self._waiting)
            return self._running + queued

    def running(self) -> int:
        with self._cond:
            return self._running

    def set_limit(self, limit: int) -> None:
        """Change the limit (a changed setting); jobs already running finish as they are."""
        if limit < 1:
            raise ValueError(f"the job limit must be at least 1, got {limit}")
        with self._cond:
            self.limit = limit
            self._cond.notify_all()

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 1.0) -> Iterator[float]:
        """Hold a slot for the body of the `with`; yields the seconds spent waiting for it.

        While it waits, on_wait(jobs ahead) is called at least every `poll` seconds, outside the lock: the app
        shows the queue there, and that call is also where Streamlit stops a session that was closed or rerun,
        by raising. Whatever ends the wait or the body, the place in the queue or the slot is given back.
        """
        ticket = object()
        start = time.monotonic()
        with self._cond:
            self._waiting.append(ticket)
        granted = False
        try:
            while True:
                with self._cond:
                    if self._waiting[0] is ticket and self._running < self.limit:
                        self._waiting.popleft()
                        self._running += 1
                        granted = True
                        break
                    ahead = self._running + self._waiting.index(ticket)
                if on_wait is not None:
                    on_wait(ahead)
                with self._cond:
                    if not (self._waiting[0] is ticket and self._running < self.limit):
                        self._cond.wait(poll)
            yield time.monotonic() - start
        finally:
            with self._cond:
                if granted:
                    self._running -= 1
                else:
                    self._waiting.remove(ticket)
                self._cond.notify_all()


_server_queue: JobQueue | None = None
_server_lock = threading.Lock()


def server_queue(limit: int) -> JobQueue:
    """The one queue of this process, made on first use; a new limit (a changed setting) applies to it."""
    global _server_queue
    with _server_lock:
        if _server_queue is None:
            _server_queue = JobQueue(limit)
        elif _server_queue.limit != limit:
            _server_queue.set_limit(limit)
        return _server_queue
