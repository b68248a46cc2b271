"""An executor spun on a background thread whose failures surface instead of ending the thread silently.

An exception in a subscription or timer callback ends ``executor.spin()``. On a bare thread that
exception is lost and the program goes on without its callbacks: answers that never arrive look
like dropped messages. :class:`BackgroundSpin` logs such an error with its traceback, keeps it, and
:meth:`BackgroundSpin.check` raises it in the owner's thread as :class:`SpinFailed`. The spin ending
because the context shut down (Ctrl-C) or because :meth:`BackgroundSpin.stop` was called is the
normal end and stays quiet.
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from rclpy.executors import Executor, ExternalShutdownException

__all__ = ["BackgroundSpin", "SpinFailed"]


class SpinFailed(RuntimeError):
    """The background spin of ``what`` ended with an error; ``__cause__`` is that error."""


class BackgroundSpin:
    """Spin ``executor`` on a daemon thread named ``what``; errors go to ``logger`` and :meth:`check`.

    ``on_failure`` (optional) is called on the spin thread after a failure, e.g. to stop a publishing loop.
    """

    def __init__(self, executor: Executor, logger: Any, what: str, on_failure: Callable[[], None] | None = None):
        self.executor, self.logger, self.what, self.on_failure = executor, logger, what, on_failure
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=what, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            return  # the context was shut down: the normal way a spin ends
        except Exception as exc:  # noqa: BLE001 - any callback error: kept, logged, re-raised by check()
            if self._stopping.is_set() or not self.executor.context.ok():
                return  # a callback racing the shutdown we asked for: not a failure
            self.error = exc
            self.logger.error(f"{self.what} stopped: {type(exc).__name__}: {exc}\n{traceback.format_exc().rstrip()}")
            if self.on_failure is not None:
                self.on_failure()

    @property
    def failed(self) -> bool:
        return self.error is not None

    def check(self) -> None:
        """Raise SpinFailed if the spin ended with an error."""
        if self.error is not None:
            raise SpinFailed(f"{self.what} stopped: {type(self.error).__name__}: {self.error}") from self.error

    def stop(self, timeout: float = 5.0) -> None:
        """End the spin (quietly) and wait for the thread."""
        self._stopping.set()
        self.executor.shutdown(timeout_sec=timeout)
        self.thread.join(timeout=timeout)
