"""CenterPoint targets, losses and decoding: encoding ground truth and decoding it gives the boxes back."""
import math

import numpy as np
import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.decode import postprocess
from sparsekd_core.models.losses import focal_loss, gather_at, reg_l1_loss
from sparsekd_core.models.targets import assign_targets, draw_gaussian, gaussian_radius

VOX = [0.1, 0.1, 0.1]
PCR = [0.0, -40.0, -3.0, 70.4, 40.0, 1.0]


def test_gaussian_radius_hand_values_and_monotonicity():
    # 4 x 4 cells at overlap 0.7: the three CornerNet cases give 7.63, 14.69 and 1.093 (by hand); the smallest wins
    assert abs(float(gaussian_radius(torch.tensor(4.0), torch.tensor(4.0), 0.7)) - 1.0933) < 1e-3
    sizes = torch.tensor([2.0, 4.0, 8.0, 16.0])
    r = gaussian_radius(sizes, sizes, 0.1)
    assert torch.all(r[1:] > r[:-1])  # bigger boxes, bigger radius
    assert float(gaussian_radius(torch.tensor(8.0), torch.tensor(8.0), 0.7)) < float(r[2])  # stricter overlap, smaller


def test_draw_gaussian_peaks_at_centre_and_clips_at_borders():
    hm = torch.zeros(10, 12)
    draw_gaussian(hm, 0, 9, 3)
    assert hm[9, 0] == 1.0 and hm.max() == 1.0
    assert hm[9, 3] < hm[9, 1] < 1.0
    sigma = 7 / 6
    assert math.isclose(float(hm[9, 1]), math.exp(-1 / (2 * sigma * sigma)), rel_tol=1e-5)
    hm2 = torch.zeros(10, 12)
    draw_gaussian(hm2, 5, 5, 2)
    draw_gaussian(hm2, 6, 5, 2)  # max-blend, not sum
    assert hm2.max() == 1.0


def test_assign_targets_encodes_offsets_logdims_and_heading():
    boxes = torch.tensor([[[10.05, 3.23, -0.5, 4.0, 2.0, 1.5, 0.3], [80.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]]])
    labels = torch.tensor([[2, 0]])
    t = assign_targets(boxes, labels, 3, (100, 88), VOX, PCR, 8, max_objects=4)
    assert t.mask.tolist() == [[True, False, False, False]]  # the second box is out of range
    cx, cy = 10.05 / 0.8, (3.23 + 40) / 0.8
    ix, iy = int(cx), int(cy)
    assert int(t.indices[0, 0]) == iy * 88 + ix
    assert t.heatmap[0, 2, iy, ix] == 1.0 and t.heatmap[0, :2].sum() == 0
    expected = [cx - ix, cy - iy, -0.5, math.log(4), math.log(2), math.log(1.5), math.cos(0.3), math.sin(0.3)]
    assert np.allclose(t.boxes[0, 0].numpy(), expected, atol=1e-5)


def test_centres_outside_the_map_are_dropped_or_clamped_as_the_reference():
    # x = 80 m lies past the map's 88 cells of 0.8 m (70.4 m). Ours drops the box; the reference's CenterHead clamps
    # its cell coordinate 100 to 88 - 0.5 = 87.5: cell 87, offset target 0.5, its heatmap peak at the border cell.
    boxes = torch.tensor([[[80.0, 0.4, -1.0, 4.0, 2.0, 1.5, 0.0]]])
    labels = torch.tensor([[0]])
    assert not assign_targets(boxes, labels, 3, (100, 88), VOX, PCR, 8).mask.any()
    t = assign_targets(boxes, labels, 3, (100, 88), VOX, PCR, 8, outside="clamp")
    iy = int((0.4 + 40) / 0.8)  # 50, offset 0.5
    assert t.mask[0].tolist() == [True] + [False] * 499
    assert int(t.indices[0, 0]) == iy * 88 + 87 and t.heatmap[0, 0, iy, 87] == 1.0
    assert t.boxes[0, 0, :2].tolist() == pytest.approx([0.5, 0.5])


def test_focal_loss_is_small_for_the_target_and_large_for_its_opposite():
    target = torch.zeros(1, 1, 8, 8)
    draw_gaussian(target[0, 0], 4, 4, 2)
    good = target.clamp(1e-4, 1 - 1e-4)
    bad = (1 - target).clamp(1e-4, 1 - 1e-4)
    # the target itself still pays a little on the gaussian's tails (penalty-reduced negatives)
    assert float(focal_loss(good, target)) < 0.1
    assert float(focal_loss(bad, target)) > 100 * float(focal_loss(good, target))


def test_reg_l1_loss_counts_only_masked_objects():
    pred = torch.zeros(1, 8, 4, 4)
    pred[0, :, 1, 2] = 1.0
    idx = torch.tensor([[1 * 4 + 2, 0]])
    mask = torch.tensor([[True, False]])
    target = torch.zeros(1, 2, 8)
    target[0, 1] = 100.0  # masked out
    loss = reg_l1_loss(pred, idx, mask, target)
    assert torch.equal(loss, torch.full((8,), 1.0))  # divided by max(1 object, 1), as the reference
    assert gather_at(pred, idx).shape == (1, 2, 8)
    assert torch.equal(reg_l1_loss(pred, idx, torch.zeros_like(mask), target), torch.zeros(8))  # no object: 0


def test_decoding_the_targets_gives_the_boxes_back():
    cfg = load_model_config("cp_voxel_sim")
    gt = torch.tensor([[[10.0, 3.0, -0.8, 4.2, 1.9, 1.6, 0.4], [30.0, -12.5, -1.0, 0.7, 0.6, 1.8, -2.0],
                        [45.3, 20.1, -0.9, 1.8, 0.6, 1.7, 3.0]]])
    labels = torch.tensor([[0, 1, 2]])
    h, w = 100, 88
    t = assign_targets(gt, labels, 3, (h, w), cfg.voxelization.voxel_size, cfg.voxelization.point_cloud_range, 8)
    # a perfect head: heatmap logits from the target heatmap, regression equal to the targets at the centres
    reg = torch.zeros(1, 8, h * w)
    for k in range(int(t.mask.sum())):
        reg[0, :, t.indices[0, k]] = t.boxes[0, k]
    reg = reg.view(1, 8, h, w)
    logits = torch.logit(t.heatmap.clamp(1e-6, 1 - 1e-6))
    out = HeadOutput(logits, reg[:, 0:2], reg[:, 2:3], reg[:, 3:6], reg[:, 6:8])
    pred = postprocess([out], [[0, 1, 2]], cfg.head.post, cfg.voxelization.voxel_size,
                       cfg.voxelization.point_cloud_range, 8, score_threshold=0.99)[0]
    assert len(pred.boxes) == 3
    order = torch.argsort(pred.boxes[:, 0])
    assert torch.allclose(pred.boxes[order], gt[0], atol=1e-4)
    assert pred.labels[order].tolist() == [0, 1, 2]
