"""A one-slot mailbox: the newest item wins, older unconsumed items are dropped and counted.

Why not a queue: a detector that is slower than its sensor must work on the newest cloud; a queue
would make latency grow without bound. The subscription callback puts, a worker thread takes.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["LatestMailbox"]


class LatestMailbox(Generic[T]):
    """Thread-safe single slot. ``put`` never blocks; ``take`` waits for an item or a timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0  #: items overwritten before anyone took them
        self.put_count = 0  #: items offered in total

    def put(self, item: T) -> bool:
        """Store ``item``, replacing an unconsumed one (counted in ``dropped``). True if one was replaced."""
        with self._cond:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, emptying the slot; None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting ``take`` (they return None); later puts are still stored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
