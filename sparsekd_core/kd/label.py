"""Label KD: the teacher's confident boxes join the ground truth for the student's detection targets.

As the reference (SparseKD's CenterHead KD with NMS_CONFIG.ENABLED False): the teacher's maps are decoded
without NMS, so every one of its top-K cells (K = its post.max_per_sample, 500) whose score exceeds its
post-processing threshold and the per-class threshold (SparseKD: 0.6 for the voxel students; 0.6 / 0.5 / 0.5 for
the pillar ones), with a centre inside its post.center_range, becomes a box. These boxes only feed the student's
detection loss; logit KD keeps to the ground truth (kd/distiller.py).

Order: the ground truth first, then the teacher's boxes (``teacher_first`` for the reference's order). Target
assignment keeps the first max_objects (500) boxes of a sample, so the order decides only past that cap; ground
truth first means a teacher that fills the cap cannot push the real labels out. Padding stays label -1 with zero
boxes. Optionally a teacher box that overlaps a ground-truth box (BEV IoU above ``drop_overlap_iou``) is dropped,
so an object labelled in both does not get two centres.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..geometry.iou import iou_bev
from ..models.decode import BoxPredictions
from .recipe import LabelKDConfig


def class_thresholds(thresholds: Sequence[float], num_classes: int, device=None) -> torch.Tensor:
    """One threshold for all classes, or one per class -> (C,) float tensor."""
    values = list(thresholds)
    if len(values) == 1:
        values = values * num_classes
    if len(values) != num_classes:
        raise ValueError(f"label KD: {len(thresholds)} score thresholds for {num_classes} classes: give one value, "
                         "or one per class in the model's class order")
    return torch.tensor(values, dtype=torch.float32, device=device)


def merge_teacher_boxes(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, teacher: Sequence[BoxPredictions],
                        drop_overlap_iou: Optional[float] = None,
                        teacher_first: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join teacher boxes and the ground truth of each sample.

    gt_boxes (B, M, 7), or (B, M, 9) with velocities (the teacher's boxes then bring theirs, zeros when it has
    none), gt_labels (B, M) with -1 padding; teacher: B BoxPredictions (already filtered by score).
    Returns boxes (B, M', 7 or 9), labels (B, M') (-1 padding; gt then teacher boxes, or teacher boxes then gt
    with ``teacher_first``) and the number of teacher boxes added per sample (B,) long.
    """
    bsz = gt_boxes.shape[0]
    if len(teacher) != bsz:
        raise ValueError(f"merge_teacher_boxes: {len(teacher)} teacher predictions for a batch of {bsz}")
    merged_boxes, merged_labels, added = [], [], []
    for b in range(bsz):
        valid = gt_labels[b] >= 0
        gb, gl = gt_boxes[b][valid].float(), gt_labels[b][valid].long()
        tb = teacher[b].boxes.detach().to(gb.device, torch.float32)
        tl = teacher[b].labels.detach().to(gb.device, torch.long)
        if gb.shape[1] > 7:
            tv = teacher[b].velocities
            tv = tb.new_zeros(len(tb), 2) if tv is None else tv.detach().to(gb.device, torch.float32)
            tb = torch.cat([tb, tv], dim=1)
        if drop_overlap_iou is not None and len(tb) and len(gb):
            overlap = iou_bev(tb[:, :7], gb[:, :7]).max(dim=1).values
            keep = overlap <= drop_overlap_iou
            tb, tl = tb[keep], tl[keep]
        first, second = ((tb, tl), (gb, gl)) if teacher_first else ((gb, gl), (tb, tl))
        merged_boxes.append(torch.cat([first[0], second[0]]))
        merged_labels.append(torch.cat([first[1], second[1]]))
        added.append(len(tb))
    m = max(1, max(len(x) for x in merged_boxes))
    boxes = gt_boxes.new_zeros((bsz, m, gt_boxes.shape[-1]), dtype=torch.float32)
    labels = torch.full((bsz, m), -1, dtype=torch.long, device=gt_labels.device)
    for b, (bx, lb) in enumerate(zip(merged_boxes, merged_labels)):
        boxes[b, : len(bx)] = bx
        labels[b, : len(lb)] = lb
    return boxes, labels, torch.tensor(added, dtype=torch.long)


class LabelKD:
    """Callable: (teacher detector, teacher DetectorOutput, gt_boxes, gt_labels) -> merged boxes, labels, added."""

    def __init__(self, cfg: LabelKDConfig, num_classes: int):
        self.cfg = cfg
        self.thresholds = class_thresholds(cfg.score_thresholds, num_classes)

    def teacher_boxes(self, teacher, teacher_out) -> list[BoxPredictions]:
        """The teacher's decoded boxes above its post-processing and per-class thresholds (no gradient)."""
        # The reference keeps a score strictly above both the decoder's threshold and label KD's: the larger one
        # decides, and the next float32 above it turns the decoder's "score >= minimum" into "score > threshold".
        floor = teacher.cfg.head.post.score_threshold
        larger = self.thresholds.clamp(min=floor)
        thresholds = torch.nextafter(larger, torch.full_like(larger, 2.0)).to(teacher_out.bev_features.device)
        with torch.no_grad():
            return teacher.predict(teacher_out, class_thresholds=thresholds, nms=self.cfg.nms)

    def __call__(self, teacher_preds: Sequence[BoxPredictions], gt_boxes: torch.Tensor, gt_labels: torch.Tensor):
        return merge_teacher_boxes(gt_boxes, gt_labels, teacher_preds, self.cfg.drop_overlap_iou,
                                   self.cfg.teacher_first)
