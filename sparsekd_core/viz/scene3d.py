"""An open3d window with a cloud and its boxes (``sparsekd-detect --show``).

The geometry builders work anywhere; only :func:`show` needs a display, and it says so clearly
when there is none instead of letting GLFW fail deep inside open3d.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from sparsekd_core.detections import Detections
from sparsekd_core.geometry.boxes import BOX_EDGES, corners_3d
from sparsekd_core.viz.colors import class_color

__all__ = ["NoDisplayError", "has_display", "box_line_set", "cloud_geometry", "show"]


class NoDisplayError(RuntimeError):
    """No screen to open a window on; the message says what to do instead."""


def has_display() -> bool:
    """True when a window can be opened: X11/Wayland on Linux, always on macOS and Windows."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def box_line_set(detections: Detections):
    """An ``open3d.geometry.LineSet`` with the 12 edges of every box, each box in its class colour."""
    import open3d as o3d

    m = len(detections)
    corners = corners_3d(detections.boxes).reshape(-1, 3)  # (8M, 3)
    edges = (np.asarray(BOX_EDGES, np.int32)[None] + 8 * np.arange(m, dtype=np.int32)[:, None, None]).reshape(-1, 2)
    colours = np.repeat([class_color(n, i) for n, i in zip(detections.names, detections.labels.tolist())], 12, axis=0)
    lines = o3d.geometry.LineSet(o3d.utility.Vector3dVector(corners), o3d.utility.Vector2iVector(edges))
    lines.colors = o3d.utility.Vector3dVector(np.asarray(colours, np.float64).reshape(-1, 3))
    return lines


def cloud_geometry(points: np.ndarray):
    """An ``open3d.geometry.PointCloud`` of (N, 3+) points, grey, brighter with height."""
    import open3d as o3d

    xyz = np.asarray(points[:, :3], np.float64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    if len(xyz):
        z = xyz[:, 2]
        level = 0.3 + 0.7 * np.clip((z - np.percentile(z, 3)) / 3.0, 0.0, 1.0)
        cloud.colors = o3d.utility.Vector3dVector(np.repeat(level[:, None], 3, axis=1))
    return cloud


def show(points: np.ndarray, detections: Detections, title: str = "sparsekd") -> None:
    """Open a window with the cloud and the boxes; returns when it is closed.

    Raises NoDisplayError without a display (e.g. over SSH): use ``--png DIR`` there instead.
    """
    if not has_display():
        raise NoDisplayError("--show needs a display (DISPLAY / WAYLAND_DISPLAY is not set, e.g. over SSH): "
                             "write bird's-eye views with --png DIR instead, or use ssh -X")
    import open3d as o3d

    geometries = [cloud_geometry(points), o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0)]
    if len(detections):
        geometries.append(box_line_set(detections))
    o3d.visualization.draw_geometries(geometries, window_name=title)
