"""Anchor target assignment (SECOND's axis-aligned assigner, as OpenPCDet's AxisAlignedTargetAssigner).

Per sample and per class, every anchor of that class is compared with every box of that class by the
nearest-axis BEV IoU (geometry/axis_aligned.py):

- positive (label = class index + 1): IoU >= the class's matched_threshold with some box, or the anchor that
  overlaps a box best (every box with a non-zero best overlap gets at least that one anchor, whatever its IoU);
- negative (label 0): IoU < unmatched_threshold with every box (all anchors of a class with no box);
- ignored (label -1): the rest; they count in no loss.

A positive anchor regresses the residuals (models/box_coder.py) of the box it overlaps most. There is no
sampling (OpenPCDet's POS_FRACTION -1, SAMPLE_SIZE unused) and heights are not matched (MATCH_HEIGHT False).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import AnchorClassConfig
from ..geometry.axis_aligned import nearest_bev_iou
from . import box_coder
from .anchors import anchor_layout


@dataclass
class AnchorTargets:
    """Targets of the N = H x W x A anchors of a batch, flat in (y, x, anchor) order.

    labels:    (B, N) long: -1 ignored, 0 negative, k + 1 positive for class k.
    residuals: (B, N, 7) box residuals of positive anchors (zeros elsewhere).
    """

    labels: torch.Tensor
    residuals: torch.Tensor

    @property
    def positives(self) -> torch.Tensor:
        """(B, N) bool: the positive anchors."""
        return self.labels > 0


def assign_class(anchors: torch.Tensor, boxes: torch.Tensor, label: int, matched: float,
                 unmatched: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One class of one sample: anchors (Na, 7), its boxes (M, 7) -> labels (Na,) long and residuals (Na, 7)."""
    n = anchors.shape[0]
    labels = torch.full((n,), -1, dtype=torch.long, device=anchors.device)
    residuals = anchors.new_zeros((n, 7))
    if len(boxes) == 0:
        labels[:] = 0
        return labels, residuals
    iou = nearest_bev_iou(anchors, boxes)  # (Na, M)
    best, best_box = iou.max(dim=1)
    per_box = iou.max(dim=0).values
    per_box = torch.where(per_box == 0, torch.full_like(per_box, -1.0), per_box)  # a box nothing overlaps: none
    forced = (iou == per_box[None, :]).any(dim=1)
    labels[best < unmatched] = 0
    labels[(best >= matched) | forced] = label
    positive = labels > 0
    residuals[positive] = box_coder.encode(boxes[best_box[positive]], anchors[positive])
    return labels, residuals


def assign_anchor_targets(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                          classes: list[AnchorClassConfig]) -> AnchorTargets:
    """anchors (H, W, A, 7); gt_boxes (B, M, 7+) and gt_labels (B, M) (class indices, -1 padding) -> targets."""
    h, w, a, _ = anchors.shape
    layout = anchor_layout(classes)
    bsz = gt_boxes.shape[0]
    labels = torch.full((bsz, h, w, a), -1, dtype=torch.long, device=anchors.device)
    residuals = anchors.new_zeros((bsz, h, w, a, 7))
    for k, cls in enumerate(classes):
        part = layout.slice_of(k)
        flat = anchors[:, :, part].reshape(-1, 7)
        for b in range(bsz):
            boxes = gt_boxes[b][gt_labels[b] == k][:, :7].float()
            lab, res = assign_class(flat, boxes, k + 1, cls.matched_threshold, cls.unmatched_threshold)
            labels[b, :, :, part] = lab.view(h, w, -1)
            residuals[b, :, :, part] = res.view(h, w, -1, 7)
    return AnchorTargets(labels.reshape(bsz, -1), residuals.reshape(bsz, -1, 7))
