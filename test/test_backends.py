"""Backends: onnxruntime gives torch's boxes on real frames; unavailable backends fail with a clear error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsekd_core.backends import BACKENDS, BackendError, make_dense_runner
from sparsekd_core.data.point_files import model_points, read_point_file
from sparsekd_core.inference import load_detector


def _frame(shared_data, det, name):
    f = read_point_file(shared_data / name)
    pts, _, _ = model_points(f.points, f.fields, det.point_features)
    return pts


@pytest.fixture(scope="module", params=["cp_pillar_v0.64", "cp_voxel_s"])
def pair(request):
    """The bundled (trained) students on torch and on onnxruntime (CPU provider)."""
    return (load_detector(request.param, "cpu"), load_detector(request.param, "cpu", backend="onnxruntime"))


def _assert_same_boxes(a, b):
    assert len(a) == len(b) > 0
    assert np.array_equal(a.labels, b.labels)
    assert np.abs(a.scores - b.scores).max() < 1e-5
    assert np.abs(a.boxes - b.boxes).max() < 1e-4


def test_onnxruntime_gives_torch_boxes_on_real_frames(pair, shared_data):
    torch_det, ort_det = pair
    assert ort_det.backend == "onnxruntime" and ort_det.dense.name == "onnxruntime"
    for name in ("kitti/training/velodyne_reduced/000008.bin", "waymo_like/benchmark_pc.npy"):
        pts = _frame(shared_data, torch_det, name)
        _assert_same_boxes(torch_det(pts), ort_det(pts))
    assert set(ort_det.last_timings) == {"preprocess", "inference", "postprocess"}


def test_onnxruntime_batches_like_single_clouds(pair, shared_data):
    torch_det, ort_det = pair
    pts = _frame(shared_data, torch_det, "kitti/training/velodyne_reduced/000008.bin")
    clouds = [pts, pts[::3], np.zeros((0, pts.shape[1]), np.float32)]
    for a, b in zip(torch_det.detect_batch(clouds), ort_det.detect_batch(clouds)):
        if len(a):
            _assert_same_boxes(a, b)
        else:
            assert len(b) == 0


def test_onnxruntime_with_the_test_time_flip_gives_torch_boxes(pair, shared_data):
    """The flip doubles the batch that reaches the runner (each cloud and its mirror image): the pillar graphs take
    it cloud by cloud, the voxel graphs as one BEV batch, and both merge like torch."""
    torch_det, ort_det = pair
    pts = _frame(shared_data, torch_det, "kitti/training/velodyne_reduced/000008.bin")
    try:
        torch_det.tta_flip = ort_det.tta_flip = True
        flipped = torch_det.detect_batch([pts, pts[::3]])
        for a, b in zip(flipped, ort_det.detect_batch([pts, pts[::3]])):
            _assert_same_boxes(a, b)
    finally:
        torch_det.tta_flip = ort_det.tta_flip = False
    plain = torch_det(pts)
    assert len(plain) != len(flipped[0]) or np.abs(plain.scores - flipped[0].scores).max() > 1e-3


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendError, match="torch, onnxruntime, tensorrt"):
        load_detector("cp_pillar_v0.64", "cpu", backend="openvino")
    assert BACKENDS == ("torch", "onnxruntime", "tensorrt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_tensorrt_without_a_gpu_says_what_is_missing(pair):
    torch_det, _ = pair
    with pytest.raises(BackendError, match="CUDA GPU"):
        make_dense_runner(torch_det.model, "tensorrt", torch.device("cpu"))


def test_onnxruntime_cuda_without_its_provider_says_how_to_get_it():
    import onnxruntime

    from sparsekd_core.backends.ort_runner import providers_for

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has its CUDA provider")
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        providers_for(torch.device("cuda"))


def test_onnxruntime_runs_every_task_head_with_velocity(tmp_path):
    """A two-head model with velocity: the runner gives back one HeadOutput per head, vel included, equal to torch's."""
    from sparsekd_core.checkpoint import write_untrained_checkpoint
    from sparsekd_core.inference import Detector

    cfg = tmp_path / "two_heads.yaml"
    cfg.write_text("base: cp_pillar_v0.64_sim\nhead: {class_groups: [[Car], [Pedestrian, Cyclist]], velocity: true, "
                   "loss: {code_weights: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}\n")
    det = Detector.from_checkpoint(write_untrained_checkpoint(str(cfg), tmp_path / "m.pth"), "cpu",
                                   backend="onnxruntime")
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(4000, 4, generator=g) * torch.tensor([30.0, 30.0, 3.0, 1.0])
           + torch.tensor([0.0, -15.0, -2.5, 0.0]))
    with torch.no_grad():
        vb = det.model.voxelize([pts])
        want = det.model.forward_voxels(vb).heads
    got = det.dense(vb)
    assert len(got) == len(want) == 2
    for g_head, w_head in zip(got, want):
        assert g_head.heatmap.shape == w_head.heatmap.shape and g_head.vel is not None
        for name in ("heatmap", "center", "center_z", "dim", "rot", "vel"):
            assert (getattr(g_head, name) - getattr(w_head, name)).abs().max() < 1e-4, name
    boxes = det(pts.numpy())
    assert boxes.velocities is not None and boxes.velocities.shape == (len(boxes), 2)
