"""The detector stages: shapes, hand-checked encoders, and a CPU training step for every zoo model."""
import pickle

import numpy as np
import pytest
import torch

from sparsekd_core.config import list_models, load_model_config
from sparsekd_core.models.bev import PointPillarScatter
from sparsekd_core.models.detector import build_detector
from sparsekd_core.models.vfe import MeanVFE, PillarVFE
from sparsekd_core.ops.voxelize import VoxelBatch

from conftest import synthetic_cloud


def _gt(cfg, batch=2):
    """One box per class inside every zoo model's range (x 5..15 m ahead, |y| < 10 m), moving for models that
    regress velocity."""
    boxes = torch.tensor([[8.0, 2.0, 0.0, 4.2, 1.8, 1.6, 0.4], [12.0, -3.0, 0.0, 0.7, 0.7, 1.8, 0.0],
                          [15.0, 6.0, 0.0, 1.8, 0.6, 1.7, 1.2]])
    if cfg.head.velocity:
        boxes = torch.cat([boxes, torch.tensor([[3.0, 1.0], [0.5, -0.5], [-2.0, 4.0]])], dim=1)
    labels = torch.tensor([0, 1, 2]) % len(cfg.class_names)
    return boxes.expand(batch, -1, -1).clone(), labels.expand(batch, -1).clone()


CENTER_ZOO = [m for m in list_models() if not load_model_config(m).is_anchor]  # anchor heads: test_anchor_head.py


@pytest.mark.parametrize("name", CENTER_ZOO)
def test_training_step_runs_on_cpu(name):
    """Forward + backward of every CenterPoint zoo model on CPU: finite loss, gradients reach the first and
    last layers."""
    torch.manual_seed(0)
    cfg = load_model_config(name)
    model = build_detector(cfg).train()
    pts = [torch.from_numpy(synthetic_cloud(600, len(cfg.point_features), seed=0, xy=18))]  # batch 1: 22 models
    for p in pts:  # keep everything in front of the sensor so KITTI-range models see it too
        p[:, 0] = p[:, 0].abs() + 1
    out = model(pts)
    gx, gy, _ = cfg.voxelization.grid_size()
    groups = cfg.class_groups()
    assert len(out.heads) == len(groups)
    for head, group in zip(out.heads, groups):
        assert head.heatmap.shape == (1, len(group), gy // cfg.head.feature_stride, gx // cfg.head.feature_stride)
        assert head.regression().shape[1] == (10 if cfg.head.velocity else 8)
    loss = model.loss(out, *_gt(cfg, batch=1))
    axis = cfg.head.heading == "axis_dir"
    assert set(loss) == {"hm", "loc", "total"} | ({"dir"} if axis else set()) and torch.isfinite(loss["total"])
    loss["total"].backward()
    first = model.vfe.pfn_layers[0].linear.weight if cfg.is_pillar else model.backbone3d.conv_input[0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(h["heatmap"][-1].weight.grad.abs().sum() > 0 for h in model.head.heads)
    if cfg.head.velocity:
        assert model.head.heads[0]["vel"][-1].weight.grad.abs().sum() > 0
    if axis:  # the sim360 models: the front-end logit learns too
        assert model.head.heads[0]["direction"][-1].weight.grad.abs().sum() > 0


def test_sparse_backbone_gradient_matches_finite_differences():
    """cp_voxel_s on a tiny input: analytic directional derivatives (through spconv's CPU backward, via the
    shim) agree with central finite differences. Single-threaded so the forward is bit-reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_detector(load_model_config("cp_voxel_s")).double().eval()
        pts = torch.from_numpy(synthetic_cloud(300, 5, seed=0, xy=3.0))
        vb = model.voxelize([pts])
        vb.voxels = vb.voxels.double()

        def loss():
            out = model.forward_voxels(vb)
            return (out.head.heatmap.sigmoid() * 0.37).sum() + (out.head.regression() * 0.11).sum()

        loss().backward()
        params = dict(model.named_parameters())
        for name in ["backbone3d.conv_input.0.weight", "backbone3d.conv2.0.0.weight", "backbone2d.blocks.0.1.weight"]:
            p = params[name]
            d = torch.randn_like(p)
            eps = 1e-6
            with torch.no_grad():
                p += eps * d
                lp = loss()
                p -= 2 * eps * d
                lm = loss()
                p += eps * d
            numeric = float((lp - lm) / (2 * eps))
            analytic = float((p.grad * d).sum())
            assert analytic != 0
            assert abs(numeric - analytic) <= 0.1 * abs(analytic), (name, numeric, analytic)
    finally:
        torch.set_num_threads(threads)


def test_mean_vfe_averages_real_points_only():
    voxels = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [0.0, 0.0, 0.0]]])  # PointToVoxel pads with zeros
    vb = VoxelBatch(voxels, torch.tensor([2], dtype=torch.int32), torch.zeros((1, 4), dtype=torch.int32), 1)
    assert torch.allclose(MeanVFE(3)(vb), torch.tensor([[2.0, 3.0, 4.0]]))


def test_pillar_vfe_ignores_padding():
    torch.manual_seed(0)
    vfe = PillarVFE(4, [64, 64], [0.32, 0.32, 6.0], [-10, -10, -2, 10, 10, 4]).eval()
    real = torch.rand(1, 3, 4)
    padded = torch.cat([real, torch.zeros(1, 2, 4)], dim=1)
    garbage = torch.cat([real, torch.full((1, 2, 4), 50.0)], dim=1)
    coords = torch.tensor([[0, 0, 31, 31]], dtype=torch.int32)
    n = torch.tensor([3], dtype=torch.int32)
    a = vfe(VoxelBatch(padded, n, coords, 1))
    b = vfe(VoxelBatch(garbage, n, coords, 1))
    assert a.shape == (1, 64) and torch.allclose(a, b)


def test_pillar_scatter_places_features_in_their_cells():
    scatter = PointPillarScatter(2, [4, 3, 1])  # nx=4, ny=3
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    coords = torch.tensor([[0, 0, 2, 1], [1, 0, 0, 3]], dtype=torch.int32)  # (b, z, y, x)
    bev = scatter(feats, coords, 2)
    assert bev.shape == (2, 2, 3, 4)
    assert bev[0, :, 2, 1].tolist() == [1.0, 2.0] and bev[1, :, 0, 3].tolist() == [3.0, 4.0]
    assert bev.abs().sum() == 10.0


def test_eval_forward_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_pillar_v0.64_sim")).eval()
    a = torch.from_numpy(synthetic_cloud(500, 4, seed=1, xy=20))
    a[:, 0] = a[:, 0].abs()
    b = torch.from_numpy(synthetic_cloud(500, 4, seed=2, xy=20))
    b[:, 0] = b[:, 0].abs()
    with torch.no_grad():
        single = model([a]).head.heatmap
        batched = model([a, b]).head.heatmap
    assert torch.allclose(single[0], batched[0], atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_voxelizer_drops_points_outside_range_and_keeps_batch_index():
    model = build_detector(load_model_config("cp_voxel_sim"))
    inside = torch.tensor([[10.0, 0.0, 0.0, 0.5]])
    outside = torch.tensor([[-5.0, 0.0, 0.0, 0.5], [10.0, 0.0, 5.0, 0.5]])
    vb = model.voxelize([torch.cat([inside, outside]), inside])
    assert vb.coords.shape == (2, 4) and vb.coords[:, 0].tolist() == [0, 1]
    assert vb.num_points.tolist() == [1, 1]


def test_a_copied_voxelizer_leaves_its_scratch_buffers_behind_and_voxelizes_alike():
    voxelizer = build_detector(load_model_config("cp_voxel_sim")).voxelizer_test
    pts = [torch.from_numpy(synthetic_cloud(2000, 4, seed=1))]
    vb = voxelizer(pts)
    copy = pickle.loads(pickle.dumps(voxelizer))
    assert voxelizer._generators and not copy._generators
    again = copy(pts)
    assert torch.equal(again.coords, vb.coords) and torch.equal(again.voxels, vb.voxels)
