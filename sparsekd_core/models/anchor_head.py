"""AnchorHeadSingle: SECOND's and PointPillars' dense head, its targets and its loss.

Three 1x1 convolutions over the BEV map predict, for each of the A anchors of every cell (models/anchors.py),
the class logits, the 7 box residuals (models/box_coder.py) and the direction-bin logits. Channel a * C + c of
the class map is anchor a's class c (a * 7 + k for residuals, a * bins + d for directions), as in OpenPCDet, so
its weights import unchanged.

Loss (OpenPCDet's AnchorHeadTemplate): sigmoid focal loss (alpha 0.25, gamma 2) on every anchor that is not
ignored, smooth-L1 (beta 1/9) on the residuals of positive anchors with the heading compared through
sin(a - b), and cross-entropy on the direction bins of positive anchors; each per-anchor weight is divided by the
sample's number of positive anchors (at least 1), summed, divided by the batch size and multiplied by its
weight (head.loss.cls_weight, loc_weight, head.anchor.dir_weight).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ANCHOR_CODES, HeadConfig
from . import box_coder
from .anchor_targets import AnchorTargets, assign_anchor_targets
from .anchors import anchor_layout, generate_anchors

SMOOTH_L1_BETA = 1.0 / 9.0
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
PRIOR_PROBABILITY = 0.01  # the class bias starts every anchor at this probability (focal-loss init)


@dataclass
class AnchorMaps:
    """Raw maps of an anchor head on the (H, W) BEV grid, A anchors per cell, C classes.

    cls: (B, A * C, H, W) class logits; box: (B, A * 7, H, W) residuals; dir: (B, A * bins, H, W) direction
    logits, or None without a direction classifier.
    """

    cls: torch.Tensor
    box: torch.Tensor
    dir: Optional[torch.Tensor] = None

    @property
    def grid_hw(self) -> tuple[int, int]:
        return tuple(self.cls.shape[-2:])

    def contiguous(self) -> "AnchorMaps":
        return AnchorMaps(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).contiguous())
                             for f in fields(self)})


def per_anchor(m: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """(B, A * n, H, W) -> (B, H * W * A, n): one row per anchor, in the (y, x, anchor) order of the targets."""
    b, _, h, w = m.shape
    return m.permute(0, 2, 3, 1).reshape(b, h * w * num_anchors, -1)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Elementwise sigmoid focal loss (RetinaNet's, alpha 0.25, gamma 2) of logits against 0/1 targets.

    Written out because torchvision (whose ops.sigmoid_focal_loss computes the same) is not a dependency.
    """
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_miss = targets * (1 - p) + (1 - targets) * p
    alpha = targets * FOCAL_ALPHA + (1 - targets) * (1 - FOCAL_ALPHA)
    return alpha * p_miss.pow(FOCAL_GAMMA) * bce


def residual_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                  code_weights: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 1/9) between (B, N, 7) residuals, heading by sin-difference, code- and anchor-weighted,
    summed and divided by the batch size. ``weights`` (B, N): each anchor's weight (0 for those not counted)."""
    pred, target = box_coder.sin_difference(pred, target)
    per_code = F.smooth_l1_loss(pred * code_weights, target * code_weights, reduction="none", beta=SMOOTH_L1_BETA)
    return (per_code * weights.unsqueeze(-1)).sum() / pred.shape[0]


def positive_weights(targets: AnchorTargets) -> torch.Tensor:
    """(B, N): 1 / (the sample's positive anchors, at least 1) on positive anchors, 0 elsewhere."""
    pos = targets.positives.float()
    return pos / pos.sum(dim=1, keepdim=True).clamp(min=1.0)


class AnchorHeadSingle(nn.Module):
    """(B, C_in, H, W) BEV features -> [AnchorMaps]. One list entry, like CenterHead's list of task heads."""

    def __init__(self, in_channels: int, cfg: HeadConfig, class_names: Sequence[str], map_hw: tuple[int, int],
                 point_cloud_range: Sequence[float]):
        super().__init__()
        self.cfg = cfg
        self.anchor_cfg = cfg.anchor
        self.num_classes = len(class_names)
        self.layout = anchor_layout(cfg.anchor.anchors)
        a = self.layout.num_anchors
        self.num_anchors = a
        self.conv_cls = nn.Conv2d(in_channels, a * self.num_classes, 1)
        self.conv_box = nn.Conv2d(in_channels, a * ANCHOR_CODES, 1)
        self.conv_dir_cls = (nn.Conv2d(in_channels, a * cfg.anchor.num_dir_bins, 1)
                             if cfg.anchor.dir_classifier else None)
        # Initialised as OpenPCDet's AnchorHeadSingle: every anchor starts at p = 0.01, residuals near 0.
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
        nn.init.normal_(self.conv_box.weight, mean=0.0, std=0.001)
        # Derived from the config, so not saved: a checkpoint of OpenPCDet's has no anchors either.
        self.register_buffer("anchors", generate_anchors(cfg.anchor.anchors, map_hw, point_cloud_range),
                             persistent=False)
        self.register_buffer("code_weights", torch.tensor(cfg.loss.code_weights, dtype=torch.float32),
                             persistent=False)

    @property
    def map_hw(self) -> tuple[int, int]:
        return tuple(self.anchors.shape[:2])

    def forward(self, x: torch.Tensor) -> list[AnchorMaps]:
        if tuple(x.shape[-2:]) != self.map_hw:
            raise ValueError(f"the anchor head's input is {tuple(x.shape[-2:])} cells, its anchors were laid on "
                             f"{self.map_hw}: head.feature_stride must be the 2D backbone's output stride")
        return [AnchorMaps(self.conv_cls(x), self.conv_box(x),
                           self.conv_dir_cls(x) if self.conv_dir_cls is not None else None)]

    def flat_anchors(self) -> torch.Tensor:
        """(H * W * A, 7) anchors in the order of :func:`per_anchor`'s rows."""
        return self.anchors.reshape(-1, 7)

    # ------------------------------------------------------------------ training
    def assign_targets(self, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> list[AnchorTargets]:
        """gt_boxes (B, M, 7+) and gt_labels (B, M) (0..C-1, -1 padding) -> [AnchorTargets] (one, as the maps)."""
        return [assign_anchor_targets(self.anchors, gt_boxes, gt_labels, self.anchor_cfg.anchors)]

    def loss(self, outs: Sequence[AnchorMaps], targets: Sequence[AnchorTargets]) -> dict[str, torch.Tensor]:
        """Loss terms: cls (focal), loc (smooth-L1 on residuals), dir (cross-entropy; 0 without a direction
        classifier) and their sum 'total', weights applied."""
        (out,), (tg,) = outs, targets
        lc = self.cfg.loss
        cls = per_anchor(out.cls, self.num_anchors).float()
        bsz = cls.shape[0]
        cared = tg.labels >= 0
        cls_weights = cared.float() / tg.positives.sum(dim=1, keepdim=True).clamp(min=1.0).float()
        one_hot = F.one_hot(tg.labels.clamp(min=0), self.num_classes + 1)[..., 1:].to(cls.dtype)
        cls_loss = (sigmoid_focal_loss(cls, one_hot) * cls_weights.unsqueeze(-1)).sum() / bsz * lc.cls_weight
        pos_w = positive_weights(tg)
        box = per_anchor(out.box, self.num_anchors).float()
        loc_loss = residual_loss(box, tg.residuals, pos_w, self.code_weights) * lc.loc_weight
        if out.dir is not None:
            dir_logits = per_anchor(out.dir, self.num_anchors).float()
            a = self.anchor_cfg
            bins = box_coder.direction_bins(tg.residuals[..., 6] + self.flat_anchors()[None, :, 6], a.num_dir_bins,
                                            a.dir_offset)
            ce = F.cross_entropy(dir_logits.reshape(-1, a.num_dir_bins), bins.reshape(-1), reduction="none")
            dir_loss = (ce.view_as(pos_w) * pos_w).sum() / bsz * a.dir_weight
        else:
            dir_loss = loc_loss.new_zeros(())
        return {"cls": cls_loss, "loc": loc_loss, "dir": dir_loss, "total": cls_loss + loc_loss + dir_loss}

    # ------------------------------------------------------------------ inference
    def decode_boxes(self, out: AnchorMaps) -> tuple[torch.Tensor, torch.Tensor]:
        """Every anchor's box and class probabilities: boxes (B, N, 7) with the direction applied, scores
        (B, N, C)."""
        n = self.num_anchors
        anchors = self.flat_anchors()[None]
        boxes = box_coder.decode(per_anchor(out.box, n).float(), anchors.expand(out.box.shape[0], -1, -1))
        if out.dir is not None:
            a = self.anchor_cfg
            bins = per_anchor(out.dir, n).argmax(dim=-1)
            boxes[..., 6] = box_coder.apply_direction(boxes[..., 6], bins, a.num_dir_bins, a.dir_offset,
                                                      a.dir_limit_offset)
        return boxes, torch.sigmoid(per_anchor(out.cls, n).float())
