"""Where the node's boxes are published: the cloud's own frame, or ``target_frame`` through tf2.

tf2_ros is not on PyPI, so it is optional: :func:`make_transforms` gives a :class:`Tf2Transforms`
(tf2_ros's Buffer and TransformListener on the node) when it is importable, else a
:class:`NoTransforms` that refuses every lookup and says why. :func:`output_transform` is the one
rule: an empty ``target_frame``, or the cloud's own frame, needs no transform; any other frame needs
one, and when it cannot be had the frame is skipped (:class:`TransformUnavailable`): boxes are never
stamped with a frame they were not computed in.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from sparsekd_core.geometry.transforms import RigidTransform

__all__ = ["TransformUnavailable", "TransformSource", "Tf2Transforms", "NoTransforms", "make_transforms",
           "output_transform"]


class TransformUnavailable(RuntimeError):
    """No transform between two frames at a stamp; the message says why."""


class TransformSource(Protocol):
    def lookup(self, target: str, source: str, stamp: TimeMsg, timeout_s: float) -> RigidTransform:
        """T_target_source at ``stamp`` (points in ``source`` -> ``target``); raises TransformUnavailable."""


class Tf2Transforms:
    """tf2_ros: a Buffer filled by a TransformListener on ``node`` (/tf and /tf_static)."""

    def __init__(self, node: Node, tf2_ros: Any):
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, target: str, source: str, stamp: TimeMsg, timeout_s: float) -> RigidTransform:
        try:
            t = self.buffer.lookup_transform(target, source, Time.from_msg(stamp), timeout=Duration(seconds=timeout_s))
        except self._tf2.TransformException as exc:  # lookup, connectivity, extrapolation, invalid argument
            raise TransformUnavailable(f"no transform from '{source}' to '{target}' at the cloud's stamp "
                                       f"({type(exc).__name__}: {exc})") from exc
        tr, q = t.transform.translation, t.transform.rotation
        return RigidTransform.from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))


class NoTransforms:
    """Without tf2_ros: every lookup fails with the reason and the fix."""

    reason = ("tf2_ros is not installed (it is not on PyPI: source a ROS 2 install that has "
              "ros-$ROS_DISTRO-tf2-ros)")

    def lookup(self, target: str, source: str, stamp: TimeMsg, timeout_s: float) -> RigidTransform:
        raise TransformUnavailable(f"no transform from '{source}' to '{target}': {self.reason}")


def make_transforms(node: Node) -> Tf2Transforms | NoTransforms:
    """tf2_ros's Buffer and TransformListener on ``node`` when tf2_ros imports, else NoTransforms."""
    try:
        tf2_ros = importlib.import_module("tf2_ros")
    except ImportError:
        return NoTransforms()
    return Tf2Transforms(node, tf2_ros)


def output_transform(transforms: TransformSource | None, target_frame: str, cloud_frame: str, stamp: TimeMsg,
                     timeout_s: float) -> tuple[str, RigidTransform]:
    """(frame to publish in, T_frame_cloud). Raises TransformUnavailable when ``target_frame`` is another frame
    and no transform to it can be had."""
    if not target_frame or target_frame == cloud_frame:
        return cloud_frame, RigidTransform.identity()
    if transforms is None:
        raise TransformUnavailable(f"no transform source for '{target_frame}'")
    return target_frame, transforms.lookup(target_frame, cloud_frame, stamp, timeout_s)
