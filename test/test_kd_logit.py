"""Logit KD: masked heatmap MSE and regression L1, checked against values computed by hand with the reference's
rules (SparseKD's CenterLogitKDHead: soft mask = teacher confidence x target gaussian, the student's map resized up
to the teacher's grid with align_corners=False, regression normalised by max(objects, 1))."""
import math

import pytest
import torch

from sparsekd_core.kd.logit import LogitKD, heatmap_kd_loss, pivotal_mask, regression_kd_loss, resize_map
from sparsekd_core.kd.recipe import LogitKDConfig, PivotalMask
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.targets import CenterTargets

# 1 x 1 x 2 x 2 pair; squared errors per cell: 0.01, 0.01, 0.09, 0.36
S = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]]]])
T = torch.tensor([[[[0.1, 0.5], [0.9, 0.2]]]])
TARGET = torch.tensor([[[[0.0, 0.5], [1.0, 0.0]]]])


def loss_with(**mask):
    m = pivotal_mask(T, TARGET, PivotalMask(**mask))
    return heatmap_kd_loss(S, T, m).item()


def test_full_map_is_plain_mse():
    assert loss_with() == pytest.approx((0.01 + 0.01 + 0.09 + 0.36) / 4, abs=1e-6)
    assert heatmap_kd_loss(S, T).item() == pytest.approx(0.1175, abs=1e-6)


def test_soft_mask_weights_by_teacher_confidence():
    expected = (0.01 * 0.1 + 0.01 * 0.5 + 0.09 * 0.9 + 0.36 * 0.2) / (0.1 + 0.5 + 0.9 + 0.2)
    assert loss_with(soft=True) == pytest.approx(expected, abs=1e-6)


def test_foreground_mask_uses_target_heatmap():
    assert loss_with(foreground=True) == pytest.approx((0.01 + 0.09) / 2, abs=1e-6)


def test_foreground_and_soft_is_confidence_times_gaussian():
    # The reference's soft foreground mask: max-class teacher confidence T (0.1, 0.5, 0.9, 0.2) times the target
    # gaussian's value (0, 0.5, 1, 0) = (0, 0.25, 0.9, 0); a 0/1 foreground would weigh the gaussian's edge (0.5)
    # as much as its peak.
    m = pivotal_mask(T, TARGET, PivotalMask(foreground=True, soft=True))
    assert m.flatten().tolist() == pytest.approx([0.0, 0.25, 0.9, 0.0])
    expected = (0.01 * 0.25 + 0.09 * 0.9) / (0.25 + 0.9)  # squared errors 0.01 and 0.09 on the two kept cells
    assert loss_with(foreground=True, soft=True) == pytest.approx(expected, abs=1e-6)
    # the gaussian of the class at each cell: max over classes (here a second class peaks at the first cell)
    two = torch.cat([TARGET, torch.tensor([[[[0.8, 0.1], [0.0, 0.0]]]])], dim=1)
    t2 = torch.cat([T, torch.full_like(T, 0.05)], dim=1)  # the first class stays the most confident
    assert pivotal_mask(t2, two, PivotalMask(foreground=True, soft=True)).flatten().tolist() == pytest.approx(
        [0.1 * 0.8, 0.5 * 0.5, 0.9 * 1.0, 0.0])


def test_score_threshold_and_rank():
    assert loss_with(score_threshold=0.4) == pytest.approx((0.01 + 0.09) / 2, abs=1e-6)
    assert loss_with(rank=1) == pytest.approx(0.09, abs=1e-6)
    assert loss_with(rank=2) == pytest.approx((0.01 + 0.09) / 2, abs=1e-6)
    # AND of selections: top-2 is {0.5, 0.9}, foreground of [[0, 0], [1, 0]] keeps only 0.9's cell
    target = torch.tensor([[[[0.0, 0.0], [0.3, 0.0]]]])
    m = pivotal_mask(T, target, PivotalMask(rank=2, foreground=True))
    assert m.tolist() == [[[0.0, 0.0], [1.0, 0.0]]]


def test_rank_counts_classes_and_positions_and_errors_sum_over_classes():
    s = torch.tensor([[[[0.2, 0.4]], [[0.6, 0.1]]]])  # (1, 2, 1, 2)
    t = torch.tensor([[[[0.3, 0.8]], [[0.5, 0.9]]]])
    # full map: position 0: 0.01 + 0.01, position 1: 0.16 + 0.64; summed over classes, averaged over 2 positions
    assert heatmap_kd_loss(s, t).item() == pytest.approx((0.02 + 0.80) / 2, abs=1e-6)
    # the two best scores (0.9, 0.8) are both at position 1: one position kept
    m = pivotal_mask(t, None, PivotalMask(rank=2))
    assert m.tolist() == [[[0.0, 1.0]]]
    assert heatmap_kd_loss(s, t, m).item() == pytest.approx(0.80, abs=1e-6)


def test_empty_mask_gives_zero_not_nan():
    m = pivotal_mask(T, torch.zeros_like(TARGET), PivotalMask(foreground=True))
    assert heatmap_kd_loss(S, T, m).item() == 0.0


def test_foreground_without_target_is_a_clear_error():
    with pytest.raises(ValueError, match="target heatmap"):
        pivotal_mask(T, None, PivotalMask(foreground=True))


def test_resize_is_bilinear_without_align_corners():
    # align_corners=False (F.interpolate's default, the reference's call): output cell i of a 2x upsampling reads
    # the input at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]: weights on the two input cells
    # (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1). For x = 2 * row + col the result is 2 * r_i + r_j, r = 0, .25, .75, 1.
    x = torch.arange(4.0).view(1, 1, 2, 2)
    r = [0.0, 0.25, 0.75, 1.0]
    assert torch.allclose(resize_map(x, (4, 4))[0, 0], torch.tensor([[2 * a + b for b in r] for a in r]))
    assert resize_map(x, (2, 2)) is x


def _head(heat_logits: torch.Tensor, reg: torch.Tensor) -> HeadOutput:
    return HeadOutput(heat_logits, reg[:, 0:2], reg[:, 2:3], reg[:, 3:6], reg[:, 6:8])


def test_regression_l1_at_target_centres_with_code_weights():
    student = torch.zeros(1, 8, 2, 2)
    teacher = torch.arange(32.0).view(1, 8, 2, 2)  # code c at cell k: 4c + k
    indices = torch.tensor([[3, 0]])
    mask = torch.tensor([[True, False]])  # only cell 3 counts
    weights = [1, 1, 1, 1, 1, 1, 1, 2]
    expected = sum(w * (4 * c + 3) for c, w in enumerate(weights)) / 1  # normalised by max(1 object, 1)
    got = regression_kd_loss(student, teacher, indices, mask, weights)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    none = regression_kd_loss(student, teacher, indices, torch.tensor([[False, False]]), weights)
    assert none.item() == 0.0  # no object: max(0, 1) = 1, nothing summed


def test_regression_needs_maps_of_one_size():
    with pytest.raises(ValueError, match="reg_weight: 0"):
        regression_kd_loss(torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 4, 4), torch.tensor([[3]]),
                           torch.tensor([[True]]), [1.0] * 8)


def test_logit_kd_upsamples_the_student_to_the_teacher_grid():
    """A 2 x 2 student, a 4 x 4 teacher: the loss lives on the teacher's grid, as the reference's ALIGN target."""
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    s_prob = [[0.2, 0.4], [0.6, 0.8]]
    s_logits = torch.tensor([[[[logit(p) for p in row] for row in s_prob]]], requires_grad=True)
    t_prob = torch.full((1, 1, 4, 4), 0.1)
    t_prob[0, 0, 1, 1], t_prob[0, 0, 1, 2] = 0.5, 0.9
    target = torch.zeros(1, 1, 4, 4)  # the teacher's targets: a gaussian peak at (1, 1), its edge at (1, 2)
    target[0, 0, 1, 1], target[0, 0, 1, 2] = 1.0, 0.5
    student = _head(s_logits, torch.zeros(1, 8, 2, 2))
    teacher = _head(torch.logit(t_prob), torch.zeros(1, 8, 4, 4))
    targets = CenterTargets(target, torch.tensor([[5]]), torch.tensor([[True]]), torch.zeros(1, 1, 8))
    cfg = LogitKDConfig(enabled=True, hm_weight=7.0, mask=PivotalMask(foreground=True, soft=True), reg_weight=0.0)
    out = LogitKD(cfg, [1.0] * 8)(student, teacher, targets)
    # Upsampled student (weights of test_resize_is_bilinear_without_align_corners): cell (1, 1) reads rows and
    # columns with (0.75, 0.25): .5625*.2 + .1875*.4 + .1875*.6 + .0625*.8 = 0.35; cell (1, 2), columns (0.25, 0.75):
    # .1875*.2 + .5625*.4 + .0625*.6 + .1875*.8 = 0.45. Mask = confidence x gaussian: 0.5 * 1 = 0.5, 0.9 * 0.5 = 0.45.
    sq = [(0.35 - 0.5) ** 2, (0.45 - 0.9) ** 2]
    expected = 7.0 * (sq[0] * 0.5 + sq[1] * 0.45) / (0.5 + 0.45)
    assert out["kd_hm"].item() == pytest.approx(expected, rel=1e-5)
    # The gradient reaches the coarse student cell (0, 0) through both fine cells: 2 (S - T) M / sum M times the
    # resize weight (.5625 and .1875), times hm_weight, times the sigmoid's slope 0.2 * 0.8 at p = 0.2.
    d_prob = 2 * ((0.35 - 0.5) * 0.5 * 0.5625 + (0.45 - 0.9) * 0.45 * 0.1875) / 0.95
    out["kd_hm"].backward()
    assert s_logits.grad[0, 0, 0, 0].item() == pytest.approx(7.0 * d_prob * 0.2 * 0.8, rel=1e-5)
    assert out["kd_reg"].item() == 0.0


def test_logit_kd_gradient_reaches_student_only():
    s_logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    student = _head(s_logits, torch.zeros(1, 8, 2, 2, requires_grad=True))
    teacher = _head(torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 8, 2, 2))
    targets = CenterTargets(TARGET.clone(), torch.tensor([[0]]), torch.tensor([[True]]), torch.zeros(1, 1, 8))
    out = LogitKD(LogitKDConfig(enabled=True), [1.0] * 8)(student, teacher, targets)
    out["kd_hm"].backward()
    # student prob 0.5 < teacher prob sigmoid(2): the loss pushes every student logit up (negative gradient)
    assert (s_logits.grad < 0).all()


def test_code_weights_must_have_one_value_per_regression_code():
    with pytest.raises(ValueError, match="8, or 10 for a model with velocity"):
        LogitKD(LogitKDConfig(enabled=True, code_weights=[1.0, 2.0]), [1.0] * 8)
