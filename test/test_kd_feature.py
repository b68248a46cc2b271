"""Feature KD: FitNet (adapter + MSE) and ROI-pooled imitation, on hand-made maps and boxes."""
import math

import pytest
import torch

from sparsekd_core.kd.feature import FeatureAdapter, FitNetKD, fitnet_loss, make_adapter
from sparsekd_core.kd.mimic import (BEVGeometry, MimicKD, metres_to_grid_coords, mimic_loss, roi_grid_points,
                                    roi_pool_bev)
from sparsekd_core.kd.recipe import FitNetConfig, MimicConfig
from sparsekd_core.config import load_model_config


# ----------------------------------------------------------------------------- FitNet
def test_fitnet_same_channels_is_plain_mse():
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    t = torch.ones(1, 1, 2, 2)
    assert make_adapter(1, 1, 1, True) is None
    assert fitnet_loss(s, t).item() == pytest.approx((0 + 1 + 4 + 9) / 4)
    kd = FitNetKD(FitNetConfig(enabled=True, weight=0.1), 1, 1)
    assert kd.adapter is None
    assert kd(s, t).item() == pytest.approx(0.35)


def test_fitnet_resizes_teacher_to_student():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.arange(9.0).view(1, 1, 3, 3)  # 3 * row + col
    # align_corners=False: student cell i reads the teacher at (i + 0.5) * 1.5 - 0.5 = 0.25, 1.75 along each axis,
    # so it sees 3 * 0.25 + 0.25 = 1, 2.5, 5.5 and 7
    assert fitnet_loss(s, t).item() == pytest.approx((1 + 2.5 ** 2 + 5.5 ** 2 + 49) / 4)


def test_fitnet_adapter_maps_student_channels_to_teacher():
    adapter = FeatureAdapter(2, 3, kernel_size=1, norm=False)
    with torch.no_grad():
        adapter.conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).view(3, 2, 1, 1))
        adapter.conv.bias.zero_()
    s = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 2.0)]).unsqueeze(0)  # channels 1 and 2
    t = torch.zeros(1, 3, 2, 2)
    # adapted channels: 1, 2, 3 -> mean of squares (1 + 4 + 9) / 3
    assert fitnet_loss(s, t, adapter).item() == pytest.approx(14 / 3)


def test_fitnet_trains_the_adapter_and_rejects_missing_adapter():
    kd = FitNetKD(FitNetConfig(enabled=True, adapter_kernel=3), 4, 6)
    assert isinstance(kd.adapter, FeatureAdapter) and kd.adapter.conv.kernel_size == (3, 3)
    s = torch.randn(2, 4, 5, 5, requires_grad=True)
    kd(s, torch.randn(2, 6, 5, 5)).backward()
    assert kd.adapter.conv.weight.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="adapter"):
        fitnet_loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 6, 2, 2))


# ----------------------------------------------------------------------------- Mimic
def test_roi_grid_points_axis_aligned_and_rotated():
    box = torch.tensor([[10.0, 5.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    pts = roi_grid_points(box, 2)[0]  # [row along box y, column along box x]
    assert pts[0, 0].tolist() == pytest.approx([9.0, 4.5])
    assert pts[0, 1].tolist() == pytest.approx([11.0, 4.5])
    assert pts[1, 0].tolist() == pytest.approx([9.0, 5.5])
    rotated = box.clone()
    rotated[0, 6] = math.pi / 2  # length now along world y
    pts = roi_grid_points(rotated, 2)[0]
    assert pts[0, 0].tolist() == pytest.approx([10.5, 4.0], abs=1e-5)
    assert pts[0, 1].tolist() == pytest.approx([10.5, 6.0], abs=1e-5)
    assert pts[1, 0].tolist() == pytest.approx([9.5, 4.0], abs=1e-5)


def test_metres_to_grid_coords_hits_cell_centres():
    geom = BEVGeometry(x_min=0.0, y_min=-2.0, cell_x=1.0, cell_y=1.0)
    g = metres_to_grid_coords(torch.tensor([[0.5, -1.5], [3.5, 1.5]]), geom, (4, 4))
    assert g.flatten().tolist() == pytest.approx([-0.75, -0.75, 0.75, 0.75])


def test_roi_pool_reads_the_cells_under_the_box():
    cols = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)  # value = column index
    rows = torch.arange(4.0).view(1, 1, 4, 1).expand(1, 1, 4, 4)  # value = row index
    fmap = torch.cat([cols, rows], dim=1)
    geom = BEVGeometry(0.0, 0.0, 1.0, 1.0)
    rois = [torch.tensor([[2.0, 2.0, 0.0, 2.0, 2.0, 1.0, 0.0]])]  # covers cells 1..2 in x and y
    pooled = roi_pool_bev(fmap, rois, geom, 2)
    assert pooled.shape == (1, 2, 2, 2)
    assert pooled[0, 0].tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert pooled[0, 1].tolist() == [[1.0, 1.0], [2.0, 2.0]]
    assert roi_pool_bev(fmap, [torch.zeros(0, 7)], geom, 2).shape == (0, 2, 2, 2)


def _linear_map(geom: BEVGeometry, hw, offset=0.0):
    """A map whose value at every cell centre is x + 2y (metres) + offset: bilinear sampling reproduces it."""
    h, w = hw
    xs = geom.x_min + (torch.arange(w) + 0.5) * geom.cell_x
    ys = geom.y_min + (torch.arange(h) + 0.5) * geom.cell_y
    return (xs[None, :] + 2 * ys[:, None] + offset).view(1, 1, h, w)


def test_mimic_compares_different_grids_at_the_same_metres():
    fine = BEVGeometry(0.0, -4.0, 0.25, 0.25)  # teacher: 32 x 32 cells of 0.25 m
    coarse = BEVGeometry(0.0, -4.0, 0.5, 0.5)  # student: 16 x 16 cells of 0.5 m
    rois = [torch.tensor([[4.0, 0.0, 0.0, 3.0, 1.5, 1.0, 0.7], [2.5, 1.5, 0.0, 1.0, 1.0, 1.0, -0.3]])]
    t = _linear_map(fine, (32, 32))
    assert (mimic_loss(_linear_map(coarse, (16, 16)), t, rois, coarse, fine, grid=7).item()
            == pytest.approx(0.0, abs=1e-8))
    shifted = _linear_map(coarse, (16, 16), offset=0.5)
    assert mimic_loss(shifted, t, rois, coarse, fine, grid=7).item() == pytest.approx(0.25, rel=1e-5)


def test_mimic_without_rois_is_zero_and_keeps_the_graph():
    s = torch.randn(1, 2, 4, 4, requires_grad=True)
    geom = BEVGeometry(0.0, 0.0, 1.0, 1.0)
    loss = mimic_loss(s, torch.randn(1, 2, 4, 4), [torch.zeros(0, 7)], geom, geom)
    assert loss.item() == 0.0 and loss.requires_grad


def test_mimic_module_geometry_adapter_and_roi_selection():
    student_cfg, teacher_cfg = load_model_config("cp_pillar_v0.64_sim"), load_model_config("cp_voxel_sim")
    kd = MimicKD(MimicConfig(enabled=True, max_rois=2, score_threshold=0.3), student_cfg, teacher_cfg, 384, 512)
    assert kd.student_geom == BEVGeometry(0.0, -15.36, 0.64, 0.64)
    assert kd.teacher_geom == BEVGeometry(0.0, -20.0, 0.8, 0.8)  # 0.1 m voxels x stride 8
    assert kd.adapter.conv.in_channels == 384 and kd.adapter.conv.out_channels == 512
    boxes = torch.arange(28.0).view(4, 7)
    chosen = kd.select_rois([boxes], [torch.tensor([0.2, 0.9, 0.5, 0.4])])[0]
    assert chosen[:, 0].tolist() == [7.0, 14.0]  # scores 0.9 then 0.5; 0.2 is under the threshold
    assert kd.select_rois([boxes])[0][:, 0].tolist() == [0.0, 7.0]  # ground truth: the first ones
