"""Logit KD: masked heatmap MSE and regression L1, checked against values computed by hand."""
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


def test_foreground_and_soft_combine_reference_sparsekd():
    expected = (0.01 * 0.5 + 0.09 * 0.9) / (0.5 + 0.9)
    assert loss_with(foreground=True, soft=True) == pytest.approx(expected, abs=1e-6)


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


def test_resize_is_bilinear_align_corners():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    y = resize_map(x, (2, 2))
    assert y.flatten().tolist() == [0.0, 2.0, 6.0, 8.0]  # corners map onto corners
    assert resize_map(x, (3, 3)) is x
    assert resize_map(x, (5, 5))[0, 0, 1, 1].item() == pytest.approx(2.0)  # half way between 0 and 4


def _head(heat_logits: torch.Tensor, reg: torch.Tensor) -> HeadOutput:
    return HeadOutput(heat_logits, reg[:, 0:2], reg[:, 2:3], reg[:, 3:6], reg[:, 6:8])


def test_regression_l1_at_target_centres_with_code_weights():
    student = torch.zeros(1, 8, 2, 2)
    teacher = torch.arange(32.0).view(1, 8, 2, 2)  # code c at cell k: 4c + k
    indices = torch.tensor([[3, 0]])
    mask = torch.tensor([[True, False]])  # only cell 3 counts
    weights = [1, 1, 1, 1, 1, 1, 1, 2]
    expected = sum(w * (4 * c + 3) for c, w in enumerate(weights)) / (1 + 1e-4)
    got = regression_kd_loss(student, teacher, indices, mask, weights)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_regression_resizes_teacher_and_drops_centre_offsets():
    student = torch.zeros(1, 8, 2, 2)
    teacher = torch.arange(72.0).view(1, 8, 3, 3)  # code c at cell k: 9c + k; student cell 3 = teacher corner 8
    got = regression_kd_loss(student, teacher, torch.tensor([[3]]), torch.tensor([[True]]), [1.0] * 8)
    expected = sum(9 * c + 8 for c in range(2, 8)) / (1 + 1e-4)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_logit_kd_applies_weights_and_resizes_teacher_heatmap():
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    s_prob = [[0.2, 0.4], [0.6, 0.8]]
    t_prob = [[0.1, 0.7, 0.5], [0.3, 0.3, 0.3], [0.9, 0.6, 0.2]]  # corners 0.1, 0.5, 0.9, 0.2 = T
    student = _head(torch.tensor([[[[logit(p) for p in row] for row in s_prob]]]), torch.zeros(1, 8, 2, 2))
    teacher = _head(torch.tensor([[[[logit(p) for p in row] for row in t_prob]]]), torch.ones(1, 8, 3, 3))
    targets = CenterTargets(TARGET.clone(), torch.tensor([[1]]), torch.tensor([[True]]), torch.zeros(1, 1, 8))
    cfg = LogitKDConfig(enabled=True, hm_weight=10.0, mask=PivotalMask(foreground=True, soft=True), reg_weight=0.2)
    out = LogitKD(cfg, [1.0] * 8)(student, teacher, targets)
    expected_hm = 10.0 * (0.01 * 0.5 + 0.09 * 0.9) / (0.5 + 0.9)
    assert out["kd_hm"].item() == pytest.approx(expected_hm, rel=1e-4)
    # resized teacher regression is 1 everywhere; centre codes dropped -> 6 codes x |0 - 1|
    assert out["kd_reg"].item() == pytest.approx(0.2 * 6 / (1 + 1e-4), rel=1e-5)


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
