"""Mixed-precision training (train/precision.py): which autocast dtype each device gets, and that a bf16 step on the
CPU runs the 2D layers and the pillar PointNet in bf16, keeps the weights and spconv's backbone
(models/fp32_islands.py) in fp32, and still learns; the PointNet's matmuls meet few shapes (models/vfe.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsekd_core.train.precision as precision
from sparsekd_core.config import load_model_config
from sparsekd_core.models.detector import build_detector
from sparsekd_core.train.objective import DetectorObjective
from sparsekd_core.train.optim import build_optimizer, build_scheduler, trainable_parameters
from sparsekd_core.train.step import train_step
from sparsekd_core.train.synthetic import synthetic_batch
from tiny_models import TINY_VOXEL

# small voxel and pillar models: the step goes through spconv (no bf16 kernels) or the pillar encoder (a new
# shape every step), then the 2D backbone and head
TINY = {
    "voxel": TINY_VOXEL,
    "pillar": "base: cp_pillar_v0.64_sim\nvoxelization:\n  point_cloud_range: [0.0, -10.24, -3.0, 20.48, 10.24, 1.0]\n",
}


def test_each_device_gets_its_autocast_dtype(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert precision.autocast_dtype(cuda, amp=True) == torch.float16
    assert precision.autocast_dtype(cuda, amp=False) is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.autocast_dtype(cpu, amp=True) == torch.bfloat16
    assert precision.autocast_dtype(cpu, amp=False) is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower than fp32
    assert precision.autocast_dtype(cpu, amp=True) is None
    assert precision.needs_grad_scaler(torch.float16)
    assert not precision.needs_grad_scaler(torch.bfloat16) and not precision.needs_grad_scaler(None)
    assert [precision.precision_name(d) for d in (torch.float16, torch.bfloat16, None)] == ["fp16", "bf16", "fp32"]


def _tiny_setup(tmp_path, kind):
    (tmp_path / "tiny.yaml").write_text(TINY[kind])
    cfg = load_model_config(tmp_path / "tiny.yaml")
    torch.manual_seed(0)
    model = build_detector(cfg).train()
    points, boxes, labels = synthetic_batch(np.random.default_rng(1), cfg.voxelization.point_cloud_range,
                                            cfg.class_names)
    return cfg, model, points, boxes, labels


def _train(tmp_path, kind, amp_dtype, steps):
    """``steps`` steps of a tiny model from the same weights and data; returns the total losses and the dtypes
    seen at the point encoder's output (spconv or the pillar PointNet), the first 2D convolution's output and the
    parameters."""
    torch.set_num_threads(1)  # spconv's multi-threaded CPU sparse conv is racy (test_train_resume)
    cfg, model, points, boxes, labels = _tiny_setup(tmp_path, kind)
    seen = {}

    def record(key, dtype):  # a forward hook that returns None leaves the output as it is
        seen.setdefault(key, dtype)

    if kind == "voxel":
        model.backbone3d.register_forward_hook(lambda m, i, o: record("encoder", o.features.dtype))
    else:
        model.vfe.register_forward_hook(lambda m, i, o: record("encoder", o.dtype))
    first_conv = next(m for m in model.backbone2d.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: record("conv2d", o.dtype))
    objective = DetectorObjective(model)
    params = trainable_parameters(objective)
    opt = build_optimizer(params, cfg.train)
    sched = build_scheduler(opt, cfg.train, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=precision.needs_grad_scaler(amp_dtype))
    totals = [train_step(objective, points, boxes, labels, opt, sched, scaler, params, cfg.train.grad_clip,
                         amp_dtype).losses["total"] for _ in range(steps)]
    seen["params"] = {p.dtype for p in params}
    return totals, seen


@pytest.mark.parametrize("kind", ["voxel", "pillar"])
def test_bf16_step_on_cpu_runs_2d_layers_in_bf16_and_still_learns(tmp_path, kind):
    fp32, seen32 = _train(tmp_path, kind, None, 25)
    bf16, seen16 = _train(tmp_path, kind, torch.bfloat16, 25)
    assert seen32 == {"encoder": torch.float32, "conv2d": torch.float32, "params": {torch.float32}}
    # the 2D backbone runs in bf16, and so does the pillar PointNet; spconv's backbone and every weight stay fp32
    encoder = torch.float32 if kind == "voxel" else torch.bfloat16
    assert seen16 == {"encoder": encoder, "conv2d": torch.bfloat16, "params": {torch.float32}}
    # same weights, same batch: the first losses agree to bf16's precision, not bit for bit
    assert bf16[0] == pytest.approx(fp32[0], rel=0.05) and bf16[0] != fp32[0]
    assert np.mean(bf16[-5:]) < 0.6 * np.mean(bf16[:3]), bf16
    assert all(np.isfinite(bf16))


def test_bf16_pillar_matmuls_see_bucketed_pillar_counts_and_return_the_exact_rows():
    from sparsekd_core.models.vfe import BF16_PILLAR_BUCKET, PFNLayer

    torch.manual_seed(0)
    layer = PFNLayer(10, 64, use_norm=True, last=False).eval()
    shapes = []
    layer.linear.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    counts = [1, 37, 2047, 2048, 2049, 3000, 4095, 5000]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for v in counts:
            x = torch.randn(v, 32, 10)
            out = layer(x)
            assert out.shape == (v, 32, 64) and out.dtype == torch.bfloat16
            # the rows that come back are those of the unpadded input, computed in bf16
            plain = torch.relu(layer.norm(torch.nn.functional.linear(x, layer.linear.weight).float().reshape(-1, 32)
                                          ).reshape(v, 32, 32))
            assert torch.allclose(out[..., :32].float(), plain, atol=0.05, rtol=0.02)
    # eight pillar counts, three matmul shapes: a multiple of the bucket each
    assert sorted(set(shapes)) == [(n * BF16_PILLAR_BUCKET, 32, 10) for n in (1, 2, 3)]
    shapes.clear()
    layer(torch.randn(37, 32, 10))  # without autocast (inference): no padding, fp32
    assert shapes == [(37, 32, 10)]
