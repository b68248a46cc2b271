"""Where the sensor's motion between sweeps comes from, for models that merge several sweeps.

A multi-sweep model needs each earlier cloud moved into the current sensor frame (sparsekd_core.data.sweeps), so
the node needs the sensor's pose, in some fixed frame, at each cloud's stamp:

* :class:`Tf2Motion`: tf2 (the node's frames.TransformSource), the cloud's frame in ``sweep_fixed_frame``
  (odom by default) at the cloud's stamp. Used whenever tf2_ros is importable.
* :class:`OdometryMotion`: without tf2, a nav_msgs/Odometry topic (``odometry_topic``): the pose of its child
  frame in its frame, interpolated at the cloud's stamp. Without tf2 the sensor's mounting on that child frame is
  unknown, so the child frame is taken to move exactly as the sensor does.
* :class:`StaticMotion`: neither; every sweep is merged as if the sensor had stood still, and the node says so
  once at start-up.

``pose`` returns None when the motion cannot be had for a stamp (no transform yet, odometry not covering it):
the sweeps are then not merged across that gap (sparsekd_core.data.sweeps leaves unplaced sweeps out).
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.node import Node
from rclpy.time import Time

from sparsekd_core.geometry.pose_history import PoseHistory
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_ros.frames import NoTransforms, TransformSource, TransformUnavailable
from sparsekd_ros.qos import odometry_qos

__all__ = ["SweepMotion", "Tf2Motion", "OdometryMotion", "StaticMotion", "make_sweep_motion", "stamp_seconds"]


def stamp_seconds(stamp: TimeMsg) -> float:
    return Time.from_msg(stamp).nanoseconds * 1e-9


class SweepMotion(Protocol):
    #: one line for the start-up log: where the motion comes from
    description: str

    def pose(self, frame: str, stamp: TimeMsg) -> RigidTransform | None:
        """T_fixed<-frame at ``stamp``, or None when it cannot be had."""


class Tf2Motion:
    def __init__(self, transforms: TransformSource, fixed_frame: str, timeout_s: float):
        self._transforms, self.fixed_frame, self.timeout_s = transforms, fixed_frame, timeout_s
        self.description = f"tf2: the cloud's frame in '{fixed_frame}' at each cloud's stamp"
        self.last_problem = ""

    def pose(self, frame: str, stamp: TimeMsg) -> RigidTransform | None:
        try:
            return self._transforms.lookup(self.fixed_frame, frame, stamp, self.timeout_s)
        except TransformUnavailable as exc:
            self.last_problem = str(exc)
            return None


class OdometryMotion:
    def __init__(self, node: Node, topic: str, nav_msgs: Any, span_s: float = 5.0):
        self._history = PoseHistory(span=span_s)
        self.description = (f"odometry on {topic} (nav_msgs/Odometry; its child frame is taken to move as the "
                            "sensor does)")
        self.last_problem = f"no odometry on {topic} yet"
        self.subscription = node.create_subscription(nav_msgs.msg.Odometry, topic, self._on_odometry, odometry_qos())

    def _on_odometry(self, msg: Any) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self._history.add(stamp_seconds(msg.header.stamp),
                          RigidTransform.from_quaternion((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))

    def pose(self, frame: str, stamp: TimeMsg) -> RigidTransform | None:
        pose = self._history.at(stamp_seconds(stamp))
        if pose is None:
            self.last_problem = f"the odometry does not cover the cloud's stamp ({len(self._history)} poses kept)"
        return pose


class StaticMotion:
    description = "none: no tf2_ros and no odometry_topic, so the sensor is assumed static between sweeps"
    last_problem = ""

    def pose(self, frame: str, stamp: TimeMsg) -> RigidTransform | None:
        return RigidTransform.identity()


def make_sweep_motion(node: Node, transforms: TransformSource | None, fixed_frame: str, odometry_topic: str,
                      timeout_s: float) -> tuple[SweepMotion, str | None]:
    """The motion source by the rule in the module doc, and a warning for the log (None when all is well)."""
    if transforms is not None and not isinstance(transforms, NoTransforms):
        return Tf2Motion(transforms, fixed_frame, timeout_s), None
    if odometry_topic:
        try:
            nav_msgs = importlib.import_module("nav_msgs")
            importlib.import_module("nav_msgs.msg")
        except ImportError:
            return StaticMotion(), (f"odometry_topic '{odometry_topic}' is set but nav_msgs is not installed "
                                    "(pip install ros-nav-msgs, or ros-$ROS_DISTRO-nav-msgs): merging sweeps as if "
                                    "the sensor stood still")
        return OdometryMotion(node, odometry_topic, nav_msgs), None
    return StaticMotion(), ("no tf2_ros and no odometry_topic: merging sweeps as if the sensor stood still, so "
                            "static objects smear while the robot moves. Set odometry_topic to a nav_msgs/Odometry "
                            "topic, or install tf2_ros")
