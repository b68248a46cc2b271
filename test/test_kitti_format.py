"""KITTI file formats and conversions, checked on the real frame 000008 and on round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsekd_core.data import kitti_format as kf
from sparsekd_core.geometry.boxes import points_in_boxes

KITTI_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti"
FRAME = "000008"

needs_data = pytest.mark.skipif(not (KITTI_ROOT / "training").is_dir(), reason="../shared/data/kitti not present")


def _iou_2d(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.fixture(scope="module")
def real():
    layout = kf.KittiLayout(KITTI_ROOT)
    return (layout, kf.read_label(layout.label_path(FRAME)), kf.read_calib(layout.calib_path(FRAME)),
            kf.read_points(layout.points_path(FRAME)))


@needs_data
def test_real_frame_parses(real):
    layout, objects, calib, points = real
    assert layout.velodyne_dir().name == "velodyne_reduced"  # only the reduced cloud is shipped
    assert points.shape == (17238, 4) and points.dtype == np.float32
    assert [o.type for o in objects].count("Car") == 6
    assert [o.type for o in objects].count("DontCare") == 4
    first = objects[0]
    assert first.truncated == pytest.approx(0.88) and first.occluded == 3
    np.testing.assert_allclose(first.dimensions, [1.60, 1.57, 3.23])
    np.testing.assert_allclose(first.location, [-2.70, 1.74, 3.68])
    assert calib.P2[0, 0] == pytest.approx(721.5377)
    assert calib.Tr_velo_to_cam.shape == (3, 4) and calib.R0_rect.shape == (3, 3)


@needs_data
def test_real_cars_contain_lidar_points_and_sit_on_the_ground(real):
    _, objects, calib, points = real
    cars = [o for o in objects if o.type == "Car"]
    boxes = kf.objects_to_lidar_boxes(cars, calib)
    counts = points_in_boxes(points, boxes).sum(axis=0)
    assert (counts > 0).all(), counts
    # The KITTI LiDAR is 1.73 m above the road: near box bottoms lie at z = -1.73 (the road rises
    # ahead in this frame, to about -1.35 m at 33 m).
    bottoms = boxes[:, 2] - boxes[:, 5] / 2
    near = boxes[:, 0] < 10
    assert np.all(np.abs(bottoms[near] + 1.73) < 0.15), bottoms
    assert np.all((bottoms > -1.9) & (bottoms < -1.2)), bottoms
    # Camera z (forward) becomes LiDAR x; camera x (right) becomes LiDAR -y.
    loc = np.stack([o.location for o in cars])
    np.testing.assert_allclose(boxes[:, 0], loc[:, 2] + 0.27, atol=0.1)
    np.testing.assert_allclose(boxes[:, 1], -loc[:, 0], atol=0.1)


@needs_data
def test_projected_boxes_match_the_labelled_2d_boxes(real):
    _, objects, calib, _ = real
    cars = [o for o in objects if o.type == "Car"]
    boxes = kf.objects_to_lidar_boxes(cars, calib)
    bbox, valid = kf.boxes_to_image_bbox(boxes, calib)
    assert valid.all()
    for obj, projected in zip(cars, bbox):
        iou = _iou_2d(obj.bbox, projected)
        if obj.truncated == 0:
            assert iou > 0.7, (obj, projected)
        else:
            assert iou > 0.5, (obj, projected)
    # Our area-based truncation agrees with the annotated values on this frame.
    np.testing.assert_allclose(kf.truncation(boxes, calib), [o.truncated for o in cars], atol=0.05)
    # alpha derived from the 3D box agrees with the labelled alpha.
    loc, _, ry = kf.lidar_boxes_to_camera(boxes, calib)
    np.testing.assert_allclose(kf.observation_angle(loc, ry), [o.alpha for o in cars], atol=0.05)


@needs_data
def test_camera_lidar_camera_round_trip_is_exact(real):
    _, objects, calib, _ = real
    cars = [o for o in objects if o.type == "Car"]
    boxes = kf.objects_to_lidar_boxes(cars, calib)
    loc, dims, ry = kf.lidar_boxes_to_camera(boxes, calib)
    np.testing.assert_allclose(loc, np.stack([o.location for o in cars]), atol=1e-9)
    np.testing.assert_allclose(dims, np.stack([o.dimensions for o in cars]), atol=1e-12)
    np.testing.assert_allclose(ry, [o.rotation_y for o in cars], atol=1e-12)
    again = kf.camera_boxes_to_lidar(loc, dims, ry, calib)
    np.testing.assert_allclose(again, boxes, atol=1e-9)


@needs_data
def test_real_difficulty_follows_the_official_rules(real):
    _, objects, _, _ = real
    # Car 0: occluded 3 -> none; car 1: occ 1 -> moderate; car 2: occ 3 -> none; car 3: occ 1 -> moderate;
    # car 4: 39.6 px tall (< 40) -> moderate; car 5: 61.9 px, occ 0, trunc 0 -> easy; DontCare -> none.
    np.testing.assert_array_equal(kf.object_difficulty(objects), [-1, 1, -1, 1, 1, 0, -1, -1, -1, -1])


def test_difficulty_thresholds():
    bbox = np.array([[0, 0, 10, 40], [0, 0, 10, 39.9], [0, 0, 10, 25], [0, 0, 10, 24.9], [0, 0, 10, 100],
                     [0, 0, 10, 100], [0, 0, 10, 100]])
    occ = np.array([0, 0, 1, 0, 2, 3, 0])
    trunc = np.array([0.15, 0.0, 0.3, 0.0, 0.5, 0.0, 0.51])
    np.testing.assert_array_equal(kf.kitti_difficulty(bbox, occ, trunc), [0, 1, 1, -1, 2, -1, -1])


def test_label_and_calib_files_round_trip(tmp_path):
    obj = kf.KittiObject("Pedestrian", 0.12, 1, -0.5, [10.126, 20, 30, 40], [1.75, 0.6, 0.8], [1.0, 1.6, 12.0],
                         0.25)
    scored = kf.KittiObject("Car", 0, 0, 1.0, [1, 2, 3, 4], [1.5, 1.6, 3.9], [0, 1.7, 20], -3.1, score=0.875)
    kf.write_label(tmp_path / "l.txt", [obj, scored])
    back = kf.read_label(tmp_path / "l.txt")
    assert [b.type for b in back] == ["Pedestrian", "Car"]
    assert back[0].score is None and back[1].score == pytest.approx(0.875)
    assert back[0].bbox[0] == pytest.approx(10.13)  # 2 decimals on disk
    np.testing.assert_allclose(back[0].location, obj.location)

    calib = kf.Calibration(P0=np.arange(12), P1=np.arange(12) + 1, P2=np.arange(12) * 0.5, P3=np.ones(12),
                           R0_rect=np.eye(3), Tr_velo_to_cam=np.arange(12) / 7.0, Tr_imu_to_velo=np.eye(3, 4))
    kf.write_calib(tmp_path / "c.txt", calib)
    again = kf.read_calib(tmp_path / "c.txt")
    for name in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"):
        np.testing.assert_allclose(getattr(again, name), getattr(calib, name), rtol=1e-11)


def test_points_and_image_sets_round_trip(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    kf.write_points(tmp_path / "velodyne" / "000001.bin", pts)
    np.testing.assert_array_equal(kf.read_points(tmp_path / "velodyne" / "000001.bin"), pts)
    with pytest.raises(ValueError, match="num_features"):
        kf.read_points(tmp_path / "velodyne" / "000001.bin", num_features=3)
    kf.write_image_set(tmp_path / "ImageSets" / "val.txt", ["000001", "000007"])
    assert kf.read_image_set(tmp_path / "ImageSets" / "val.txt") == ["000001", "000007"]


def test_bad_input_names_the_problem(tmp_path):
    (tmp_path / "bad.txt").write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(ValueError, match="15 values"):
        kf.read_label(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="label_2"):
        kf.read_label(tmp_path / "missing.txt")
    (tmp_path / "calib.txt").write_text("P0: 1 2 3\n")
    with pytest.raises(ValueError, match="lacks"):
        kf.read_calib(tmp_path / "calib.txt")
    (tmp_path / "calib.txt").write_text("P0: 1 2 3\nR_rect 1 x 0\n")
    with pytest.raises(ValueError, match="non-numeric value in calibration line 'R_rect 1 x 0'"):
        kf.read_calib(tmp_path / "calib.txt")


def test_box_reaching_behind_the_camera_projects_sanely():
    calib = kf.Calibration(P0=np.eye(3, 4), P1=np.eye(3, 4),
                           P2=np.array([[700, 0, 620, 0], [0, 700, 187, 0], [0, 0, 1, 0]]), P3=np.eye(3, 4),
                           R0_rect=np.eye(3), Tr_velo_to_cam=np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]]))
    # A long box beside the camera, from 2 m behind to 6 m ahead: its image starts at the left border
    # (it leaves the image on the left) and stays below the horizon line on the ground side.
    box = np.array([[2.0, 3.0, -1.0, 8.0, 2.0, 1.5, 0.0]])
    bbox, valid = kf.boxes_to_image_bbox(box, calib)
    assert valid[0]
    assert bbox[0, 0] == 0.0 and 0 < bbox[0, 2] < 620
    unclipped, _ = kf.boxes_to_image_bbox(box, calib, image_size=None)
    assert unclipped[0, 0] < -1000  # the near-plane cut sends it far to the left, not mirrored to the right
    assert kf.truncation(box, calib)[0] > 0.5
    behind = np.array([[-5.0, 0.0, 0.0, 2.0, 2.0, 1.5, 0.0]])
    assert not kf.boxes_to_image_bbox(behind, calib)[1][0]
