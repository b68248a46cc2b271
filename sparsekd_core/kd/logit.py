"""Logit KD on CenterHead outputs: masked MSE between heatmaps, L1 between regression maps at object centres.

Computed as the reference (SparseKD's CenterLogitKDHead, raw_pred mode, ALIGN target "teacher"), on the
teacher's grid and with the teacher's ground-truth-only targets (never the label-KD boxes the student's
detection loss adds). Heatmap term ("pivotal position" logit KD): with student probabilities S and teacher
probabilities T (sigmoid of the logits, clamped to [1e-4, 1 - 1e-4] like the detection loss), both (B, C, H, W),
and a per-position weight mask M (B, H, W):

    kd_hm = sum_{b,c,h,w} (S - T)^2 * M  /  (sum_{b,h,w} M + 1e-6)

i.e. the squared error is summed over classes and averaged over the weighted positions. M keeps the positions
that pass every enabled selection (AND): teacher confidence (max over classes) above a threshold; among the
teacher's top-K scores of its sample (over all classes and positions); foreground of the target heatmap (> 0).
``soft`` weights them by the teacher's confidence times, with foreground, the target gaussian's value (max over
classes). No selection enabled = the full map.

When the student's map has another size (pillar students on a coarser grid), its probabilities are resized to
the teacher's grid by bilinear interpolation with align_corners=False (the reference's F.interpolate default),
so the loss and its mask live on the teacher's grid and the gradient reaches the student through the resize.

Regression term: L1 between the student's and the teacher's regression maps (HeadOutput.regression(), 8 codes)
at the targets' centre cells, averaged over max(objects, 1), weighted per code and summed. It compares the two
maps cell by cell, so both must have the same size (the reference computes none otherwise, and its pillar
recipes set the weight to 0).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..models.center_head import HeadOutput
from ..models.losses import clamped_sigmoid, gather_at, reg_l1_loss
from ..models.targets import CenterTargets
from .recipe import LogitKDConfig, PivotalMask


def resize_map(x: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w) by bilinear interpolation (align_corners=False); unchanged when sizes match."""
    hw = tuple(int(v) for v in hw)
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)


def pivotal_mask(teacher_prob: torch.Tensor, target_heatmap: Optional[torch.Tensor], cfg: PivotalMask) -> torch.Tensor:
    """teacher_prob (B, C, H, W) probabilities, target_heatmap (B, C, H, W) or None -> mask (B, H, W) float."""
    b, c, h, w = teacher_prob.shape
    confidence = teacher_prob.max(dim=1).values
    mask = torch.ones_like(confidence)
    if cfg.score_threshold > 0:
        mask = mask * (confidence > cfg.score_threshold).to(mask.dtype)
    if cfg.rank > 0:
        k = min(int(cfg.rank), c * h * w)
        top = teacher_prob.reshape(b, -1).topk(k, dim=1).indices % (h * w)
        ranked = torch.zeros(b, h * w, dtype=mask.dtype, device=mask.device).scatter_(1, top, 1.0)
        mask = mask * ranked.view(b, h, w)
    if cfg.foreground:
        if target_heatmap is None:
            raise ValueError("pivotal_mask: foreground=True needs the target heatmap (pass the teacher's targets)")
        if target_heatmap.shape[-2:] != teacher_prob.shape[-2:]:
            raise ValueError(f"pivotal_mask: target heatmap {tuple(target_heatmap.shape)} and teacher map "
                             f"{tuple(teacher_prob.shape)} must share (H, W): assign the targets on the teacher's grid")
        gaussian = target_heatmap.max(dim=1).values.to(mask.dtype)
        mask = mask * (gaussian if cfg.soft else (gaussian > 0).to(mask.dtype))
    if cfg.soft:
        mask = mask * confidence
    return mask


def heatmap_kd_loss(student_prob: torch.Tensor, teacher_prob: torch.Tensor,
                    mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Masked MSE (see the module docstring). student_prob, teacher_prob (B, C, H, W); mask (B, H, W) or None."""
    if student_prob.shape != teacher_prob.shape:
        raise ValueError(f"heatmap_kd_loss: student {tuple(student_prob.shape)} "
                         f"vs teacher {tuple(teacher_prob.shape)}: "
                         "resize the student map (resize_map) and check both models have the same classes")
    if mask is None:
        mask = student_prob.new_ones(student_prob.shape[0], *student_prob.shape[2:])
    sq = (student_prob.float() - teacher_prob.float()) ** 2
    return (sq * mask.unsqueeze(1)).sum() / (mask.sum() + 1e-6)


def regression_kd_loss(student_reg: torch.Tensor, teacher_reg: torch.Tensor, indices: torch.Tensor,
                       mask: torch.Tensor, code_weights: Sequence[float]) -> torch.Tensor:
    """L1 at the target centres. student_reg, teacher_reg (B, 8, H, W), indices/mask (B, K) -> scalar."""
    if teacher_reg.shape[-2:] != student_reg.shape[-2:]:
        raise ValueError(f"regression KD compares the maps cell by cell, but the student's is "
                         f"{tuple(student_reg.shape[-2:])} and the teacher's {tuple(teacher_reg.shape[-2:])}: "
                         "set logit.reg_weight: 0 for this pair (the reference's pillar recipes do)")
    weights = student_reg.new_tensor(list(code_weights), dtype=torch.float32)
    # gather_at views its input: pillar maps come channels-last, so make them contiguous first
    target = gather_at(teacher_reg.float().contiguous(), indices)
    per_code = reg_l1_loss(student_reg.float().contiguous(), indices, mask, target)
    return (per_code * weights).sum()


class LogitKD:
    """Callable: (student head, teacher head, teacher's ground-truth targets) -> {"kd_hm", "kd_reg"}, weighted.

    The targets must be assigned on the teacher's grid from the ground truth alone (Distiller does this).
    """

    def __init__(self, cfg: LogitKDConfig, default_code_weights: Sequence[float]):
        self.cfg = cfg
        self.code_weights = list(cfg.code_weights if cfg.code_weights is not None else default_code_weights)
        if len(self.code_weights) not in (8, 10):
            raise ValueError(f"logit KD code_weights needs one value per regression code: 8, or 10 for a model "
                             f"with velocity (got {len(self.code_weights)})")

    def __call__(self, student: HeadOutput, teacher: HeadOutput, targets: CenterTargets) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.cfg.hm_weight != 0:
            t_prob = clamped_sigmoid(teacher.heatmap)
            s_prob = resize_map(clamped_sigmoid(student.heatmap), t_prob.shape[-2:])
            mask = pivotal_mask(t_prob, targets.heatmap, self.cfg.mask)
            out["kd_hm"] = self.cfg.hm_weight * heatmap_kd_loss(s_prob, t_prob, mask)
        else:
            out["kd_hm"] = student.heatmap.sum() * 0.0
        if self.cfg.reg_weight != 0:
            if (student.direction is None) != (teacher.direction is None):
                raise ValueError("regression KD compares the rot maps code by code, but the student and the teacher "
                                 "encode the heading differently (head.heading sin_cos vs axis_dir): give both the "
                                 "same head.heading, or set logit.reg_weight: 0")
            out["kd_reg"] = self.cfg.reg_weight * regression_kd_loss(
                student.regression(), teacher.regression(), targets.indices, targets.mask, self.code_weights)
        else:
            out["kd_reg"] = student.center.sum() * 0.0
        return out

    def over_heads(self, students: Sequence[HeadOutput], teachers: Sequence[HeadOutput],
                   targets: Sequence[CenterTargets]) -> dict[str, torch.Tensor]:
        """The terms of each task head (class group), averaged over the heads as the reference does (SparseKD's
        CenterLogitKDHead divides its per-head sums by the number of heads); one head gives ``__call__``'s terms."""
        if not len(students) == len(teachers) == len(targets):
            raise ValueError(f"logit KD: {len(students)} student heads, {len(teachers)} teacher heads and "
                             f"{len(targets)} target sets: student and teacher must group their classes alike")
        terms = [self(s, t, tg) for s, t, tg in zip(students, teachers, targets)]
        return {k: sum(term[k] for term in terms) / len(terms) for k in terms[0]}
