"""Ctrl-C and SIGTERM as a request to stop, for processes that publish from their own threads.

rclpy's own signal handlers shut the context down at once, under a thread that may be inside ``publish`` (an
error, or with some rmw versions a crash). Processes started with ``SignalHandlerOptions.NO`` install
:class:`StopOnSignal` instead: the first signal only sets a flag (and calls ``on_stop``), the loop that checks it
ends, and the process tears down in order; a second signal interrupts at once (KeyboardInterrupt).
"""
from __future__ import annotations

import signal
from typing import Any, Callable


class StopOnSignal:
    """SIGINT/SIGTERM set ``requested`` and call ``on_stop``; a second signal raises KeyboardInterrupt.

    Install from the main thread; :meth:`restore` puts the previous handlers back.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.requested = False
        self._on_stop = on_stop
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._on_stop is not None:
            self._on_stop()

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
