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
