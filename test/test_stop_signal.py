"""StopOnSignal (sparsekd_ros/stop_signal.py): the first signal asks to stop, the second interrupts."""
import os
import signal

import pytest

from sparsekd_ros.stop_signal import StopOnSignal


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_asks_second_interrupts_and_restore_puts_back(signum):
    before = {s: signal.getsignal(s) for s in StopOnSignal.SIGNALS}
    calls = []
    stop = StopOnSignal(on_stop=lambda: calls.append("stop"))
    try:
        assert not stop.requested
        os.kill(os.getpid(), signum)  # Python runs the handler in the main thread before the next line
        assert stop.requested and calls == ["stop"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
        assert calls == ["stop"]  # on_stop runs once
    finally:
        stop.restore()
    assert {s: signal.getsignal(s) for s in StopOnSignal.SIGNALS} == before
