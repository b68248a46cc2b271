"""RigidTransform: REP 103 roll/pitch/yaw, composition, and points, boxes and velocities moved between frames."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.detections import Detections
from sparsekd_core.geometry.boxes import corners_3d
from sparsekd_core.geometry.transforms import RigidTransform


def test_rpy_follows_rep103_fixed_axes():
    yaw90 = RigidTransform.from_xyz_rpy(yaw=np.pi / 2)
    np.testing.assert_allclose(yaw90.apply_points(np.array([[1.0, 0, 0]]))[0], [0, 1, 0], atol=1e-6)  # x -> y
    pitch = RigidTransform.from_xyz_rpy(pitch=np.radians(10))
    np.testing.assert_allclose(pitch.apply_points(np.array([[1.0, 0, 0]]))[0],
                               [np.cos(np.radians(10)), 0, -np.sin(np.radians(10))], atol=1e-6)  # nose down
    t = RigidTransform.from_xyz_rpy(1, 2, 3, 0.1, -0.2, 0.3)
    assert t.rpy() == pytest.approx((0.1, -0.2, 0.3))
    np.testing.assert_allclose((t @ t.inverse()).rotation, np.eye(3), atol=1e-12)
    assert (t.inverse() @ t).is_identity and not t.is_identity
    with pytest.raises(ValueError, match="not a rotation"):
        RigidTransform(np.diag([1.0, 1.0, -1.0]), np.zeros(3))


def test_points_keep_their_features():
    t = RigidTransform.from_xyz_rpy(0, 0, 0.77, 0, 0, np.pi)
    pts = np.array([[10, 2, -1.7, 0.4], [5, -1, -1.0, 0.9]], np.float32)
    out = t.apply_points(pts)
    np.testing.assert_allclose(out, [[-10, -2, -0.93, 0.4], [-5, 1, -0.23, 0.9]], atol=1e-5)
    assert out.dtype == np.float32 and pts[0, 0] == 10  # a new array
    assert t.apply_points(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_level_transforms_move_boxes_exactly():
    boxes = np.array([[10, 2, -0.8, 4.2, 1.8, 1.5, 0.3], [5, -3, -0.9, 0.6, 0.7, 1.7, 3.0]], np.float32)
    t = RigidTransform.from_xyz_rpy(1.5, -0.5, 0.77, 0, 0, 2.0)
    moved = t.apply_boxes(boxes)
    np.testing.assert_allclose(corners_3d(moved), t.apply_points(corners_3d(boxes).reshape(-1, 3)).reshape(-1, 8, 3),
                               atol=1e-4)
    assert np.all(moved[:, 6] >= -np.pi) and np.all(moved[:, 6] < np.pi)
    np.testing.assert_allclose(t.inverse().apply_boxes(moved), boxes, atol=1e-5)


def test_tilted_transforms_keep_boxes_upright_with_exact_centres():
    box = np.array([[10, 0, -0.8, 4, 2, 1.5, 0.0]], np.float32)
    t = RigidTransform.from_xyz_rpy(0, 0, 0, 0, np.radians(5), np.radians(30))
    (moved,) = t.apply_boxes(box)
    np.testing.assert_allclose(moved[:3], t.apply_points(box[:, :3])[0], atol=1e-5)  # centre exact
    assert moved[6] == pytest.approx(np.radians(30), abs=1e-6)  # heading projected: the yaw
    np.testing.assert_allclose(moved[3:6], box[0, 3:6])  # extents unchanged: upright box


def test_detections_move_with_their_velocities():
    dets = Detections(np.array([[10, 0, -1, 4, 2, 1.5, 0]]), np.array([0.9]), np.array([0]), ("Car",),
                      velocities=np.array([[2.0, 0.0]]))
    t = RigidTransform.from_xyz_rpy(0, 0, 0, 0, 0, np.pi / 2)
    out = t.apply_detections(dets)
    np.testing.assert_allclose(out.boxes[0, :2], [0, 10], atol=1e-5)
    np.testing.assert_allclose(out.velocities[0], [0, 2], atol=1e-6)
    assert out.scores[0] == dets.scores[0] and out.class_names == ("Car",)
    assert RigidTransform.identity().apply_detections(dets) is dets
