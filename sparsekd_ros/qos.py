"""The QoS profiles of the node, chosen once (ROS 2 defaults would queue clouds reliably)."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["sensor_qos", "odometry_qos", "output_qos", "latched_qos"]


def sensor_qos() -> QoSProfile:
    """LiDAR input: best effort, keep only the newest cloud (depth 1), volatile.

    Best effort matches every sensor driver (they publish best effort or reliable; a best-effort
    subscriber connects to both); depth 1 because a stale cloud is worth nothing to a detector.
    """
    return QoSProfile(
        reliability=ReliabilityPolicy.BEST_EFFORT,
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        durability=DurabilityPolicy.VOLATILE,
    )


def odometry_qos() -> QoSProfile:
    """Odometry (the sensor's motion for multi-sweep models): best effort, so it connects to any publisher, but
    keeps 50 messages: every pose matters for interpolating between them, not only the newest."""
    return QoSProfile(
        reliability=ReliabilityPolicy.BEST_EFFORT,
        history=HistoryPolicy.KEEP_LAST,
        depth=50,
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int = 5) -> QoSProfile:
    """Detections and markers: reliable (RViz and most consumers subscribe reliable), volatile."""
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        durability=DurabilityPolicy.VOLATILE,
    )


def latched_qos() -> QoSProfile:
    """Information that changes rarely (vision_msgs/LabelInfo): reliable, transient local, depth 1, so a
    subscriber that joins late still gets the last message (with a transient-local subscription)."""
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE,
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
