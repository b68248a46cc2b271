"""Label KD: the teacher's decoded boxes (no NMS, as the reference) above per-class thresholds, merged after the
ground truth (or before it, the reference's order, with teacher_first)."""
import math

import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.kd.label import LabelKD, class_thresholds, merge_teacher_boxes
from sparsekd_core.kd.recipe import LabelKDConfig
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.decode import BoxPredictions
from sparsekd_core.models.detector import DetectorOutput, build_detector
from sparsekd_core.models.targets import assign_targets


def test_class_thresholds_broadcast_and_per_class():
    assert class_thresholds([0.6], 3).tolist() == pytest.approx([0.6, 0.6, 0.6])
    assert class_thresholds([0.6, 0.5, 0.5], 3).tolist() == pytest.approx([0.6, 0.5, 0.5])
    with pytest.raises(ValueError, match="one per class"):
        class_thresholds([0.6, 0.5], 3)


def _pred(boxes, labels):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 7)
    return BoxPredictions(boxes, torch.ones(len(boxes)), torch.tensor(labels, dtype=torch.long))


GT = torch.tensor([[[1.0, 0, 0, 4, 2, 1.5, 0], [5, 5, 0, 1, 1, 1.7, 0]],
                   [[2.0, 2, 0, 4, 2, 1.5, 0], [0, 0, 0, 0, 0, 0, 0]]])
GT_LABELS = torch.tensor([[0, 1], [2, -1]])


def test_teacher_boxes_follow_the_ground_truth_and_padding_stays():
    teacher = [_pred([[20.0, 0, 0, 4, 2, 1.5, 0]], [0]),
               _pred([[30.0, 0, 0, 4, 2, 1.5, 0], [40.0, 1, 0, 1, 1, 1.7, 0]], [0, 1])]
    boxes, labels, added = merge_teacher_boxes(GT, GT_LABELS, teacher)
    assert boxes.shape == (2, 3, 7) and labels.shape == (2, 3)
    assert labels.tolist() == [[0, 1, 0], [2, 0, 1]]
    assert boxes[0, :, 0].tolist() == [1.0, 5.0, 20.0]
    assert boxes[1, :, 0].tolist() == [2.0, 30.0, 40.0]
    assert added.tolist() == [1, 2]
    # nothing from the teacher: the ground truth comes back unchanged (padding -1, zero boxes)
    boxes, labels, added = merge_teacher_boxes(GT, GT_LABELS, [_pred([], []), _pred([], [])])
    assert labels.tolist() == [[0, 1], [2, -1]] and torch.equal(boxes, GT) and added.tolist() == [0, 0]


def test_teacher_first_is_the_reference_order_and_decides_who_passes_the_cap():
    teacher = [_pred([[20.0, 0, 0, 4, 2, 1.5, 0], [30.0, 0, 0, 4, 2, 1.5, 0]], [0, 0]), _pred([], [])]
    boxes, labels, added = merge_teacher_boxes(GT, GT_LABELS, teacher, teacher_first=True)
    assert boxes[0, :, 0].tolist() == [20.0, 30.0, 1.0, 5.0] and labels[0].tolist() == [0, 0, 0, 1]
    assert labels[1].tolist() == [2, -1, -1, -1] and added.tolist() == [2, 0]
    # Target assignment keeps the first max_objects boxes of a sample (the reference's NUM_MAX_OBJS, 500; 2 here).
    # Ground truth first: the two gt boxes (x 1 and 5) get targets. Teacher first: the teacher's two fill the cap
    # and the ground truth gets none.
    pcr, vox = [0.0, -10.0, -3.0, 40.0, 10.0, 1.0], [0.5, 0.5, 4.0]  # 80 x 40 cells of 0.5 m at stride 1
    def centre_x(**order):
        b, lab, _ = merge_teacher_boxes(GT[:1], GT_LABELS[:1], teacher[:1], **order)
        t = assign_targets(b, lab, 3, (40, 80), vox, pcr, 1, max_objects=2)
        return sorted(float(i % 80) * 0.5 for i in t.indices[0][t.mask[0]])
    assert centre_x() == [1.0, 5.0]
    assert centre_x(teacher_first=True) == [20.0, 30.0]


def test_overlapping_teacher_boxes_can_be_dropped():
    teacher = [_pred([[1.2, 0, 0, 4, 2, 1.5, 0.05], [20.0, 0, 0, 4, 2, 1.5, 0]], [0, 0]), _pred([], [])]
    kept, labels, added = merge_teacher_boxes(GT, GT_LABELS, teacher, drop_overlap_iou=0.1)
    assert added.tolist() == [1, 0] and kept[0, 2, 0].item() == 20.0 and labels[0].tolist() == [0, 1, 0]
    _, _, added = merge_teacher_boxes(GT, GT_LABELS, teacher, drop_overlap_iou=None)
    assert added.tolist() == [2, 0]


def _teacher_and_maps():
    cfg = load_model_config("cp_pillar_v0.64_sim")
    cfg.voxelization.point_cloud_range = [0.0, -5.12, -3.0, 10.24, 5.12, 1.0]  # 16 x 16 cells of 0.64 m
    teacher = build_detector(cfg).eval()
    heat = torch.full((1, 3, 16, 16), -10.0)
    zeros = torch.zeros(1, 1, 16, 16)
    dim = torch.tensor([math.log(4.0), math.log(2.0), math.log(1.5)]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    rot = torch.cat([torch.ones_like(zeros), zeros], 1)  # yaw 0
    head = HeadOutput(heat, torch.zeros(1, 2, 16, 16), zeros, dim.clone(), rot)
    return teacher, heat, DetectorOutput([head], torch.zeros(1, 384, 16, 16), torch.zeros(1, 64, 16, 16))


def test_teacher_predictions_pass_per_class_thresholds():
    teacher, heat, out = _teacher_and_maps()
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    heat[0, 0, 2, 3] = logit(0.65)   # Car above 0.6: kept
    heat[0, 1, 8, 8] = logit(0.55)   # Pedestrian above 0.5: kept
    heat[0, 2, 12, 4] = logit(0.45)  # Cyclist below 0.5: dropped
    heat[0, 0, 14, 14] = logit(0.58)  # Car below 0.6: dropped
    heat[0, 1, 4, 12] = 0.0          # Pedestrian at exactly 0.5: dropped (score > threshold, as the reference)
    kd = LabelKD(LabelKDConfig(enabled=True, score_thresholds=[0.6, 0.5, 0.5]), 3)
    preds = kd.teacher_boxes(teacher, out)
    assert sorted(preds[0].labels.tolist()) == [0, 1]
    car = preds[0].boxes[preds[0].labels == 0][0]
    assert car[:2].tolist() == pytest.approx([3 * 0.64, -5.12 + 2 * 0.64])  # cell (x=3, y=2), offset 0
    boxes, labels, added = kd(preds, torch.zeros(1, 1, 7), torch.tensor([[-1]]))
    assert added.tolist() == [2] and sorted(labels[0].tolist()) == [0, 1]


def test_teacher_boxes_are_not_suppressed():
    """The reference decodes the teacher's boxes for label KD without NMS (KD.NMS_CONFIG.ENABLED: False)."""
    teacher, heat, out = _teacher_and_maps()
    heat[0, 0, 5, 5], heat[0, 0, 5, 6] = 3.0, 2.0  # two cars one cell (0.64 m) apart along x, scores 0.95 and 0.88
    # Both are 4 x 2 m: BEV IoU = (4 - 0.64) * 2 / (2 * 8 - (4 - 0.64) * 2) = 6.72 / 9.28 = 0.72 > NMS's 0.7.
    plain = LabelKD(LabelKDConfig(enabled=True), 3).teacher_boxes(teacher, out)[0]
    assert plain.boxes[:, 0].tolist() == pytest.approx([5 * 0.64, 6 * 0.64])  # both, in score order
    assert plain.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(3.0)).item(),
                                                  torch.sigmoid(torch.tensor(2.0)).item()])
    suppressed = LabelKD(LabelKDConfig(enabled=True, nms=True), 3).teacher_boxes(teacher, out)[0]
    assert suppressed.boxes[:, 0].tolist() == pytest.approx([5 * 0.64])  # with NMS the weaker one goes


def test_label_thresholds_below_the_decoders_keep_to_the_decoders():
    """The reference decodes with the model's post-processing threshold (0.1) before label KD's own applies."""
    teacher, heat, out = _teacher_and_maps()
    assert teacher.cfg.head.post.score_threshold == pytest.approx(0.1)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    heat[0, 0, 3, 3], heat[0, 0, 9, 9] = logit(0.08), logit(0.12)
    preds = LabelKD(LabelKDConfig(enabled=True, score_thresholds=[0.05]), 3).teacher_boxes(teacher, out)[0]
    assert preds.scores.tolist() == pytest.approx([0.12])  # 0.08 passes 0.05 but not the decoder's 0.1
