"""Label KD: per-class thresholds on the teacher's decoded boxes, merged after the ground truth."""
import math

import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.kd.label import LabelKD, class_thresholds, merge_teacher_boxes
from sparsekd_core.kd.recipe import LabelKDConfig
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.decode import BoxPredictions
from sparsekd_core.models.detector import DetectorOutput, build_detector


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


def test_overlapping_teacher_boxes_can_be_dropped():
    teacher = [_pred([[1.2, 0, 0, 4, 2, 1.5, 0.05], [20.0, 0, 0, 4, 2, 1.5, 0]], [0, 0]), _pred([], [])]
    kept, labels, added = merge_teacher_boxes(GT, GT_LABELS, teacher, drop_overlap_iou=0.1)
    assert added.tolist() == [1, 0] and kept[0, 2, 0].item() == 20.0 and labels[0].tolist() == [0, 1, 0]
    _, _, added = merge_teacher_boxes(GT, GT_LABELS, teacher, drop_overlap_iou=None)
    assert added.tolist() == [2, 0]


def test_teacher_predictions_pass_per_class_thresholds():
    cfg = load_model_config("cp_pillar_v0.64_sim")
    cfg.voxelization.point_cloud_range = [0.0, -5.12, -3.0, 10.24, 5.12, 1.0]  # 16 x 16 cells of 0.64 m
    teacher = build_detector(cfg).eval()
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    heat = torch.full((1, 3, 16, 16), -10.0)
    heat[0, 0, 2, 3] = logit(0.65)   # Car above 0.6: kept
    heat[0, 1, 8, 8] = logit(0.55)   # Pedestrian above 0.5: kept
    heat[0, 2, 12, 4] = logit(0.45)  # Cyclist below 0.5: dropped
    heat[0, 0, 14, 14] = logit(0.58)  # Car below 0.6: dropped
    zeros = torch.zeros(1, 1, 16, 16)
    head = HeadOutput(heat, torch.zeros(1, 2, 16, 16), zeros, torch.zeros(1, 3, 16, 16),
                      torch.cat([torch.ones_like(zeros), zeros], 1))
    out = DetectorOutput([head], torch.zeros(1, 384, 16, 16), torch.zeros(1, 64, 16, 16))
    kd = LabelKD(LabelKDConfig(enabled=True, score_thresholds=[0.6, 0.5, 0.5]), 3)
    preds = kd.teacher_boxes(teacher, out)
    assert sorted(preds[0].labels.tolist()) == [0, 1]
    car = preds[0].boxes[preds[0].labels == 0][0]
    assert car[:2].tolist() == pytest.approx([3 * 0.64, -5.12 + 2 * 0.64])  # cell (x=3, y=2), offset 0
    boxes, labels, added = kd(preds, torch.zeros(1, 1, 7), torch.tensor([[-1]]))
    assert added.tolist() == [2] and sorted(labels[0].tolist()) == [0, 1]
