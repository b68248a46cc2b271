"""SparseKD for anchor heads: logit KD at the positive anchors, regression KD, label KD, recipes, Distiller.

Hand-made tensors with the values worked out in the comments: a 1 x 2 map (cells 0 and 1), 2 anchors per cell,
1 class, so the maps have 2 channels of class logits and 14 of residuals.
"""
import math

import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.kd.anchor_logit import AnchorLogitKD, positive_cells
from sparsekd_core.kd.distiller import Distiller, DistillerError
from sparsekd_core.kd.recipe import LogitKDConfig, PivotalMask, load_kd_recipe
from sparsekd_core.models.anchor_head import AnchorMaps
from sparsekd_core.models.anchor_targets import AnchorTargets
from sparsekd_core.models.detector import build_detector

from conftest import synthetic_cloud


def logit(p):
    return math.log(p / (1 - p))


def maps(probs, residuals=None, hw=(1, 2)):
    """probs: per (cell, anchor) class probability -> AnchorMaps with 2 anchors x 1 class per cell."""
    h, w = hw
    cls = torch.tensor([[logit(p) for p in cell] for cell in probs]).t().reshape(1, 2, h, w)
    box = torch.zeros(1, 14, h, w) if residuals is None else residuals
    return AnchorMaps(cls, box, torch.zeros(1, 4, h, w))


# cell 1, anchor 0 is the only positive anchor; cell 0's anchors are negative and ignored
TARGETS = AnchorTargets(torch.tensor([[0, -1, 1, 0]]), torch.zeros(1, 4, 7))


def cfg(**kw):
    mask = kw.pop("mask", PivotalMask(foreground=True))
    return LogitKDConfig(enabled=True, hm_weight=15.0, mask=mask, reg_weight=kw.pop("reg_weight", 0.0), **kw)


def test_positive_cells_are_the_cells_holding_a_positive_anchor():
    assert positive_cells(TARGETS, (1, 2)).flatten().tolist() == [0.0, 1.0]


def test_classification_kd_is_l2_at_the_positive_anchors_cells_weight_15():
    student = maps([[0.2, 0.3], [0.5, 0.1]])
    teacher = maps([[0.9, 0.9], [0.7, 0.4]])
    kd = AnchorLogitKD(cfg(), 2, [1.0] * 7)(student, teacher, TARGETS)
    # only cell 1 counts: (0.5 - 0.7)^2 + (0.1 - 0.4)^2 = 0.04 + 0.09, over one cell, times 15
    assert kd["kd_hm"].item() == pytest.approx(15 * 0.13, rel=1e-5)
    # soft: the cell weighs the teacher's highest probability there (0.7): (0.7 * 0.13) / 0.7, the same mean
    soft = AnchorLogitKD(cfg(mask=PivotalMask(foreground=True, soft=True)), 2, [1.0] * 7)(student, teacher, TARGETS)
    assert soft["kd_hm"].item() == pytest.approx(15 * 0.13, rel=1e-5)
    # no mask: both cells, (0.49 + 0.36 + 0.13) / 2
    full = AnchorLogitKD(cfg(mask=PivotalMask()), 2, [1.0] * 7)(student, teacher, TARGETS)
    assert full["kd_hm"].item() == pytest.approx(15 * 0.98 / 2, rel=1e-5)
    # teacher-confidence selection: cell 0 (max 0.9) passes 0.8, cell 1 (0.7) does not
    thr = AnchorLogitKD(cfg(mask=PivotalMask(score_threshold=0.8)), 2, [1.0] * 7)(student, teacher, TARGETS)
    assert thr["kd_hm"].item() == pytest.approx(15 * 0.85, rel=1e-5)


def test_gradient_flows_to_the_student_and_stops_at_the_teacher():
    s_cls = torch.tensor([[logit(0.2), logit(0.5)], [logit(0.3), logit(0.1)]]).reshape(1, 2, 1, 2).requires_grad_()
    t_cls = torch.tensor([[logit(0.9), logit(0.7)], [logit(0.9), logit(0.4)]]).reshape(1, 2, 1, 2).requires_grad_()
    kd = AnchorLogitKD(cfg(), 2, [1.0] * 7)(AnchorMaps(s_cls, torch.zeros(1, 14, 1, 2)),
                                             AnchorMaps(t_cls.detach(), torch.zeros(1, 14, 1, 2)), TARGETS)
    kd["kd_hm"].backward()
    # d/ds of 15 (s - t)^2 through the sigmoid at cell 1, anchor 0: 15 * 2 (0.5 - 0.7) * 0.5 * 0.5
    assert s_cls.grad[0, 0, 0, 1].item() == pytest.approx(15 * 2 * -0.2 * 0.25, rel=1e-4)
    assert s_cls.grad[0, :, 0, 0].abs().sum().item() == 0.0  # cell 0 is not pivotal


def test_regression_kd_is_smooth_l1_at_positive_anchors_weight_0_2():
    s_box = torch.zeros(1, 14, 1, 2)
    s_box[0, 0, 0, 1] = 0.1  # cell 1, anchor 0, x residual; beta 1/9 > 0.1: 0.5 * 0.1^2 * 9 = 0.045
    s_box[0, 7, 0, 1] = 5.0  # cell 1, anchor 1 is not positive: ignored
    s_box[0, 6, 0, 1] = math.pi  # the heading a half-turn off: sin(pi) = 0, no cost
    kd = AnchorLogitKD(cfg(reg_weight=0.2), 2, [1.0] * 7)(maps([[0.5, 0.5], [0.5, 0.5]], s_box),
                                                          maps([[0.5, 0.5], [0.5, 0.5]]), TARGETS)
    assert kd["kd_reg"].item() == pytest.approx(0.2 * 0.045, abs=1e-6)


def test_a_coarser_student_map_is_resized_up_to_the_teachers_grid():
    student = AnchorMaps(torch.full((1, 2, 1, 1), logit(0.3)), torch.zeros(1, 14, 1, 1))  # one cell: 0.3 everywhere
    teacher = maps([[0.9, 0.9], [0.7, 0.4]])
    kd = AnchorLogitKD(cfg(), 2, [1.0] * 7)(student, teacher, TARGETS)
    assert kd["kd_hm"].item() == pytest.approx(15 * (0.16 + 0.01), rel=1e-4)  # (0.3-0.7)^2 + (0.3-0.4)^2
    with pytest.raises(ValueError, match="reg_weight: 0"):
        AnchorLogitKD(cfg(reg_weight=0.2), 2, [1.0] * 7)(student, teacher, TARGETS)


# ----------------------------------------------------------------------------- recipes and the Distiller
def small(name, side=10.24):
    c = load_model_config(name)
    c.voxelization.point_cloud_range = [0.0, -side / 2, -3.0, side, side / 2, 1.0]
    return c


def test_sparsekd_recipe_resolves_to_the_authors_anchor_settings():
    r = load_kd_recipe("sparsekd")
    anchor = r.for_student(small("pointpillar_s_sim"))
    assert anchor.logit.hm_weight == 15.0 and anchor.logit.reg_weight == 0.2
    assert anchor.logit.mask.foreground and not anchor.logit.mask.soft
    assert anchor.label.enabled and anchor.label.nms and anchor.tgi.enabled  # the teacher's own detections
    # CenterPoint students keep theirs
    centre = r.for_student(small("cp_pillar_v0.64_sim"))
    assert centre.logit.hm_weight == 7.0 and centre.logit.reg_weight == 0.0 and centre.logit.mask.soft
    assert not centre.label.nms


def _pair(teacher_name, student_name):
    torch.manual_seed(0)
    return build_detector(small(teacher_name)).eval(), build_detector(small(student_name)).train()


def test_distiller_step_on_an_anchor_pair_reports_every_term():
    teacher, student = _pair("pointpillar_sim", "pointpillar_s_sim")
    d = Distiller(student, teacher, load_kd_recipe("pivotal,tgi"))
    assert d.recipe.logit.hm_weight == 15.0 and d.recipe.logit.reg_weight == 0.2
    d.init_student_from_teacher()
    pts = torch.from_numpy(synthetic_cloud(500, 4, seed=0, xy=5.0))
    pts[:, 0] = pts[:, 0].abs() + 0.5
    boxes = torch.tensor([[[4.0, 1.0, -1.0, 3.9, 1.6, 1.5, 0.2], [7.0, -2.0, -0.9, 0.8, 0.6, 1.7, 0.0]]])
    losses = d([pts], boxes, torch.tensor([[0, 1]]))
    assert set(losses) == {"cls", "loc", "dir", "kd_hm", "kd_reg", "total"}
    assert losses["kd_hm"] > 0 and losses["kd_reg"] > 0
    assert losses["total"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "total"), rel=1e-5)
    losses["total"].backward()
    assert student.head.conv_cls.weight.grad.abs().sum() > 0


def test_resolution_gap_turns_regression_kd_off_and_other_anchors_are_refused():
    teacher, coarse = _pair("pointpillar_sim", "pointpillar_v0.64_sim")
    d = Distiller(coarse, teacher, load_kd_recipe("pivotal"))
    assert d.recipe.logit.hm_weight == 15.0 and d.recipe.logit.reg_weight == 0.0
    pts = torch.from_numpy(synthetic_cloud(500, 4, seed=0, xy=5.0))
    pts[:, 0] = pts[:, 0].abs() + 0.5
    losses = d([pts], torch.tensor([[[4.0, 1.0, -1.0, 3.9, 1.6, 1.5, 0.2]]]), torch.tensor([[0]]))
    assert losses["kd_hm"] > 0 and losses["kd_reg"].item() == 0.0
    other = small("pointpillar_s_sim")
    other.head.anchor.anchors[0].sizes = [[4.5, 1.9, 1.6]]
    with pytest.raises(DistillerError, match="different anchors"):
        Distiller(build_detector(other), teacher, load_kd_recipe("pivotal"))
    with pytest.raises(DistillerError, match="same kind of head"):
        Distiller(build_detector(small("cp_pillar_v0.64_sim")), teacher, load_kd_recipe("pivotal"))


def test_label_kd_adds_the_teachers_confident_boxes_to_anchor_assignment():
    """A teacher whose class map is certain at one Car anchor and whose residuals are zero predicts that anchor's
    box; label KD makes it a target, so the student gets positive anchors there without any ground truth."""
    teacher, student = _pair("pointpillar_sim", "pointpillar_s_sim")
    with torch.no_grad():
        teacher.head.conv_cls.weight.zero_()
        teacher.head.conv_cls.bias.fill_(-10.0)
        teacher.head.conv_box.weight.zero_()
        teacher.head.conv_box.bias.zero_()
    d = Distiller(student, teacher, load_kd_recipe("label"))
    t_out = d.teacher_forward([torch.tensor([[3.0, 0.0, -1.0, 0.5]])])
    h, w = teacher.head.map_hw
    t_out.heads[0].cls[0, 0, h // 2, w // 2] = 10.0  # Car, rotation 0, at the centre cell
    preds = d.label_kd.teacher_boxes(teacher, t_out)
    assert len(preds[0].boxes) == 1
    centre = teacher.head.anchors[h // 2, w // 2, 0]
    torch.testing.assert_close(preds[0].boxes[0, :6], centre[:6])
    assert math.sin(float(preds[0].boxes[0, 6] - centre[6])) == pytest.approx(0.0, abs=1e-6)
    boxes, labels, added = d.label_kd(preds, torch.zeros(1, 1, 7), torch.full((1, 1), -1))
    assert added.tolist() == [1]
    (tg,) = student.assign_targets(boxes, labels, student.head.map_hw)
    assert tg.labels.view(h, w, -1)[h // 2, w // 2, 0].item() == 1
