"""/clock for a replay, as ``ros2 bag play --clock`` gives it: nodes with ``use_sim_time:=true`` then
live in the recording's time.

The clock reads the recorded time of the playback position: the timestamp of the message being
played plus the wall time since, times the playback rate. It is published by a timer at ``hz``
and, exactly, just before each replayed message, so a subscriber's clock is never behind the stamp
of a message it receives. It never runs backwards: when the replay falls behind its schedule, the
extrapolated time can pass the next message's stamp, and a seek back to that stamp would make every
node with sim time see time jump back (and, with two threads publishing, ticks arrive out of order).
The clock then holds still until the recording catches up.
"""
from __future__ import annotations

import threading
import time

from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg

__all__ = ["PlaybackClock"]


def _time_msg(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class PlaybackClock:
    """Publishes rosgraph_msgs/Clock on /clock for ``node`` at ``hz`` once :meth:`seek` set a position."""

    def __init__(self, node: Node, hz: float = 100.0, rate: float = 1.0):
        if hz <= 0 or rate <= 0:
            raise ValueError(f"clock rate and playback rate must be > 0, got {hz} Hz and {rate}x")
        self.rate = rate
        self._lock = threading.Lock()
        self._origin: tuple[int, float] | None = None  # (recorded ns, time.monotonic() at that moment)
        self._last_ns: int | None = None  # the last time published: /clock never goes back
        # Reliable, as ros2 bag play publishes /clock; rclpy's time source subscribes to it with depth 1.
        self._pub = node.create_publisher(ClockMsg, "/clock",
                                          QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        # The timer runs on a steady clock: wall time paces the publishing, whatever /clock says.
        self._timer = node.create_timer(1.0 / hz, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def seek(self, recorded_ns: int) -> None:
        """The playback is at ``recorded_ns`` now (the next message's timestamp); publish it at once."""
        with self._lock:
            self._origin = (int(recorded_ns), time.monotonic())
        self.publish()

    def publish(self) -> None:
        # One lock around reading, clamping and publishing: the timer thread and the replay thread
        # publish in the order of the times they publish.
        with self._lock:
            if self._origin is None:
                return
            ns, wall = self._origin
            ns += int((time.monotonic() - wall) * 1e9 * self.rate)
            if self._last_ns is not None and ns < self._last_ns:
                ns = self._last_ns
            self._last_ns = ns
            self._pub.publish(ClockMsg(clock=_time_msg(ns)))
