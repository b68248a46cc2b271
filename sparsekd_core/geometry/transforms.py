"""Rigid transforms of points and boxes between frames (REP 103: metres, radians).

A :class:`RigidTransform` ``T_ab`` maps coordinates in frame ``b`` into frame ``a``: ``p_a = R p_b + t``.
Rotations come from scipy's ``Rotation``; roll, pitch and yaw are REP 103's fixed-axis angles (about x,
then y, then z of the fixed frame: ``R = Rz(yaw) Ry(pitch) Rx(roll)``).

Boxes are ``(x, y, z, dx, dy, dz, yaw)`` (geometry/boxes.py): they can turn about z only. Moving a
box keeps that form: its centre is transformed exactly, its heading becomes the direction of its
transformed x axis projected onto the new x-y plane, its extents stay. This is exact when the
transform has no roll or pitch (between level frames); otherwise the box stays upright in the new
frame instead of tilting with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from sparsekd_core.detections import Detections

__all__ = ["RigidTransform"]


@dataclass(frozen=True)
class RigidTransform:
    """rotation: (3, 3) float64 orthonormal; translation: (3,) float64."""

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError(f"not a rotation matrix: {r.tolist()}")
        r.flags.writeable = False
        t.flags.writeable = False
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> "RigidTransform":
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_xyz_rpy(cls, x: float = 0.0, y: float = 0.0, z: float = 0.0, roll: float = 0.0, pitch: float = 0.0,
                     yaw: float = 0.0) -> "RigidTransform":
        """Translation (m) and REP 103 roll, pitch, yaw (rad)."""
        return cls(Rotation.from_euler("xyz", [roll, pitch, yaw]).as_matrix(), np.array([x, y, z], np.float64))

    @classmethod
    def from_quaternion(cls, translation, xyzw) -> "RigidTransform":
        """Translation (x, y, z) and a quaternion (x, y, z, w), as geometry_msgs/Transform holds them."""
        return cls(Rotation.from_quat(np.asarray(xyzw, np.float64)).as_matrix(), np.asarray(translation, np.float64))

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.rotation, np.eye(3)) and np.allclose(self.translation, 0.0))

    def rpy(self) -> tuple[float, float, float]:
        """REP 103 roll, pitch, yaw (rad)."""
        return tuple(float(a) for a in Rotation.from_matrix(self.rotation).as_euler("xyz"))

    def inverse(self) -> "RigidTransform":
        return RigidTransform(self.rotation.T, -self.rotation.T @ self.translation)

    def __matmul__(self, other: "RigidTransform") -> "RigidTransform":
        """``T_ab @ T_bc = T_ac``."""
        return RigidTransform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """(N, F) points (x y z first, other columns carried unchanged) -> a new float32 array."""
        points = np.asarray(points)
        out = np.array(points, dtype=np.float32, copy=True)
        if len(out):
            xyz = points[:, :3].astype(np.float64) @ self.rotation.T + self.translation
            out[:, :3] = xyz
        return out

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(M, 7) boxes -> (M, 7) boxes in the target frame (see the module docstring for tilted frames)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        out = boxes.copy()
        if not len(out):
            return out.astype(np.float32)
        out[:, :3] = boxes[:, :3] @ self.rotation.T + self.translation
        heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))], axis=1) @ self.rotation.T
        yaw = np.arctan2(heading[:, 1], heading[:, 0])
        out[:, 6] = yaw - np.floor(yaw / (2 * np.pi) + 0.5) * 2 * np.pi  # wrapped into [-pi, pi)
        return out.astype(np.float32)

    def apply_velocities(self, velocities: np.ndarray) -> np.ndarray:
        """(M, 2) ground velocities (vx, vy) -> (M, 2): rotated, then projected on the new x-y plane."""
        v = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
        return (np.column_stack([v, np.zeros(len(v))]) @ self.rotation.T)[:, :2].astype(np.float32)

    def apply_detections(self, dets: Detections) -> Detections:
        """The same detections with boxes (and velocities) in the target frame."""
        if self.is_identity:
            return dets
        return Detections(self.apply_boxes(dets.boxes), dets.scores, dets.labels, dets.class_names,
                          None if dets.velocities is None else self.apply_velocities(dets.velocities))
