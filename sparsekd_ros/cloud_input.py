"""A PointCloud2 -> the (N, F) float32 input of a detector: field mapping, empty check, range crop.

Shared by the node and the offline bag tool so both feed the model identically.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2

from sparsekd_ros.pointcloud2 import MalformedCloud, cloud_to_points

__all__ = ["model_input"]


def model_input(
    msg: PointCloud2,
    features: Sequence[str],
    intensity_field: str = "intensity",
    intensity_scale: float = 1.0,
    max_range: float = 0.0,
    min_range: float = 0.0,
) -> np.ndarray:
    """Decode ``msg`` into the model's ``features`` columns (see ``cloud_to_points``), NaN rows dropped.

    max_range > 0 keeps points within that horizontal distance (metres) of the sensor; min_range > 0 drops those
    nearer than it (the robot's own body).
    Raises MalformedCloud for bad layouts and for empty clouds (nothing to detect on).
    """
    if int(msg.width) * int(msg.height) == 0:
        raise MalformedCloud(f"empty cloud (width {msg.width}, height {msg.height}) on frame '{msg.header.frame_id}'")
    points = cloud_to_points(msg, features, intensity_field, intensity_scale)
    if max_range > 0 or min_range > 0:
        squared = np.square(points[:, 0]) + np.square(points[:, 1])
        keep = squared >= min_range**2
        if max_range > 0:
            keep &= squared <= max_range**2
        if not keep.all():
            points = points[keep]
    return points
