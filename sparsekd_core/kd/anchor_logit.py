"""Logit KD on anchor-head outputs (SECOND, PointPillars): the SparseKD recipe the authors gave for anchor heads.

The authors' answer to their users (CVMI-Lab/SparseKD issue 11): the pivotal positions are the positive anchors
of target assignment; classification KD is an L2 loss with weight 15 on them, regression KD a smooth-L1 loss with
weight 0.2. In their code (pcdet/models/kd_heads/anchor_head/anchor_logit_kd_head.py) and here:

    kd_hm  = hm_weight * sum_{b,h,w,a,c} (S - T)^2 * M[b,h,w] / (sum M + 1e-6)
    kd_reg = reg_weight * smooth-L1 (beta 1/9) between student and teacher residuals of the positive anchors,
             heading through sin(a - b), each anchor weighted 1 / (its sample's positives), summed / batch

S, T: student and teacher class probabilities (sigmoid, clamped to [1e-4, 1 - 1e-4]) of every anchor and class
at cell (h, w); M: the pivotal mask of each cell (kd/logit.pivotal_mask, the same selections as the CenterPoint
path): with ``foreground`` the cells holding at least one positive anchor, ``soft`` weighs a cell by the teacher's
highest class probability there, and ``score_threshold`` / ``rank`` keep the teacher's confident cells. The
direction bins are not distilled (the reference leaves them out too).

As for CenterPoint (kd/logit.py), the positive anchors come from the teacher's anchors assigned to the ground
truth alone (never the label-KD boxes the student's detection loss adds), and the loss lives on the teacher's
grid: a student on a coarser grid has its probability map resized up to the teacher's (bilinear,
align_corners=False; the anchors of a cell are the same set in both models, so each channel is one anchor kind).
Regression KD compares residuals anchor by anchor, so it needs both models' anchors on the same grid; with a
resolution gap it is off, as the authors do ("unless there are input resolution gap").
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..models.anchor_head import AnchorMaps, per_anchor, positive_weights, residual_loss
from ..models.anchor_targets import AnchorTargets
from ..models.losses import clamped_sigmoid
from .logit import heatmap_kd_loss, pivotal_mask, resize_map
from .recipe import LogitKDConfig


def positive_cells(targets: AnchorTargets, grid_hw: Sequence[int]) -> torch.Tensor:
    """(B, N) anchor targets on an (H, W) map -> (B, 1, H, W) float: 1 where a cell holds a positive anchor."""
    b = targets.labels.shape[0]
    h, w = (int(v) for v in grid_hw)
    return targets.positives.view(b, h, w, -1).any(dim=-1).float().unsqueeze(1)


class AnchorLogitKD:
    """Callable: (student maps, teacher maps, teacher's ground-truth anchor targets) -> {"kd_hm", "kd_reg"}.

    ``num_anchors``: anchors per cell (the same in both models); ``code_weights``: the residual codes' weights
    (the student's head.loss.code_weights, or the recipe's ``logit.code_weights``).
    """

    def __init__(self, cfg: LogitKDConfig, num_anchors: int, code_weights: Sequence[float]):
        self.cfg = cfg
        self.num_anchors = num_anchors
        self.code_weights = torch.tensor(list(cfg.code_weights if cfg.code_weights is not None else code_weights),
                                         dtype=torch.float32)
        if len(self.code_weights) != 7:
            raise ValueError(f"anchor logit KD needs 7 code weights (x, y, z, dx, dy, dz, yaw residuals), got "
                             f"{len(self.code_weights)}: drop logit.code_weights from the recipe or give 7")

    def __call__(self, student: AnchorMaps, teacher: AnchorMaps, targets: AnchorTargets) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.cfg.hm_weight != 0:
            t_prob = clamped_sigmoid(teacher.cls)
            s_prob = resize_map(clamped_sigmoid(student.cls), t_prob.shape[-2:])
            mask = pivotal_mask(t_prob, positive_cells(targets, t_prob.shape[-2:]), self.cfg.mask)
            out["kd_hm"] = self.cfg.hm_weight * heatmap_kd_loss(s_prob, t_prob, mask)
        else:
            out["kd_hm"] = student.cls.sum() * 0.0
        if self.cfg.reg_weight != 0:
            if student.grid_hw != teacher.grid_hw:
                raise ValueError(f"regression KD compares residuals anchor by anchor, but the student's anchors lie "
                                 f"on a {student.grid_hw} map and the teacher's on {teacher.grid_hw}: set "
                                 "logit.reg_weight: 0 for this pair (the Distiller does so for you)")
            n = self.num_anchors
            s_box = per_anchor(student.box, n).float()
            t_box = per_anchor(teacher.box, n).float().detach()
            out["kd_reg"] = self.cfg.reg_weight * residual_loss(s_box, t_box, positive_weights(targets),
                                                                self.code_weights.to(s_box.device))
        else:
            out["kd_reg"] = student.box.sum() * 0.0
        return out

    def over_heads(self, students: Sequence[AnchorMaps], teachers: Sequence[AnchorMaps],
                   targets: Sequence[AnchorTargets]) -> dict[str, torch.Tensor]:
        """The Distiller's call, as LogitKD.over_heads: an anchor head has one set of maps."""
        (s,), (t,), (tg,) = students, teachers, targets
        return self(s, t, tg)
