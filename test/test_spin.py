"""BackgroundSpin: a callback error that ends the spin surfaces (logged, and raised by check());
the spin ending because the context shut down or because it was stopped is quiet."""
from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from ros_helpers import domain_id
from sparsekd_ros.spin import BackgroundSpin, SpinFailed


class _Logger:
    def __init__(self):
        self.errors = []

    def error(self, text):
        self.errors.append(text)


@pytest.fixture
def node():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id() + 9)
    n = Node("sparsekd_spin_test", context=ctx)
    yield n
    n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _spin(node, **kwargs):
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    logger = _Logger()
    return BackgroundSpin(executor, logger, "the test spin", **kwargs), logger


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


def test_a_callback_error_is_logged_and_raised_by_check(node):
    calls = []

    def broken(msg):
        calls.append(msg.data)
        raise KeyError("no such marker")

    node.create_subscription(String, "/spin_test", broken, 10)
    failed = []
    spin, logger = _spin(node, on_failure=lambda: failed.append(True))
    pub = node.create_publisher(String, "/spin_test", 10)
    spin.check()  # nothing wrong yet
    pub.publish(String(data="hello"))
    assert _wait(lambda: spin.failed)
    assert calls == ["hello"] and failed == [True] and not spin.thread.is_alive()
    with pytest.raises(SpinFailed, match="the test spin stopped: KeyError: 'no such marker'") as info:
        spin.check()
    assert isinstance(info.value.__cause__, KeyError)
    (logged,) = logger.errors
    assert "KeyError" in logged and "Traceback" in logged and "raise KeyError" in logged
    spin.stop(timeout=1.0)


def test_a_timer_error_surfaces_too(node):
    node.create_timer(0.01, lambda: 1 / 0)
    spin, logger = _spin(node)
    assert _wait(lambda: spin.failed)
    with pytest.raises(SpinFailed, match="ZeroDivisionError"):
        spin.check()
    spin.stop(timeout=1.0)


def test_stop_and_context_shutdown_end_the_spin_quietly(node):
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    spin, logger = _spin(node)
    assert _wait(lambda: len(ticks) > 3)
    spin.stop(timeout=2.0)
    assert not spin.thread.is_alive() and not spin.failed and not logger.errors
    spin.check()

    spin2, logger2 = _spin(node)
    rclpy.try_shutdown(context=node.context)
    assert _wait(lambda: not spin2.thread.is_alive())
    assert not spin2.failed and not logger2.errors
    spin2.check()
