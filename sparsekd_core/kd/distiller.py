"""Distiller: one training step of a student, with whatever distillation a KD recipe asks for.

    distiller = Distiller(student, teacher, load_kd_recipe("sparsekd"))
    distiller.init_student_from_teacher()          # TGI, when the recipe enables it (once, before training)
    losses = distiller(points_list, gt_boxes, gt_labels)   # == distiller.training_step(...)
    losses["total"].backward()

The teacher is frozen and not registered as a submodule: ``distiller.parameters()`` and ``state_dict()`` hold
only what trains (the student and the KD adapters), so an optimiser, DDP or a checkpoint of the distiller never
touches the teacher; ``.to(device)`` still moves it. Call the distiller itself (not ``training_step``) under
DistributedDataParallel so gradients are synchronised.

Each step the teacher voxelises the same points with its own grid and runs under torch.no_grad(), in eval mode
(recipe ``teacher_mode: eval``) or on batch statistics (``train``, the paper's recipe; its BN running statistics
stay frozen). The student's detection loss sees the ground truth plus the label-KD boxes; logit KD sees the
teacher's targets from the ground truth alone, on the teacher's grid (kd/logit.py).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import torch
from torch import nn

from ..models.detector import BEVDetector, DetectorOutput
from .anchor_logit import AnchorLogitKD
from .feature import FitNetKD
from .label import LabelKD
from .logit import LogitKD
from .mimic import MimicKD
from .recipe import KDRecipe
from .tgi import TGIResult, apply_tgi


log = logging.getLogger(__name__)


class DistillerError(ValueError):
    """Student, teacher and recipe do not fit together; the message says how to fix it."""


def _freeze_bn_statistics(model: nn.Module) -> None:
    # Without tracking, a train-mode BN normalises with the batch's statistics and updates nothing (neither
    # the running statistics nor num_batches_tracked); in eval mode it still uses the stored ones.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False


def decodable(out: DetectorOutput) -> DetectorOutput:
    """``out`` with contiguous head maps.

    Pillar models produce channels-last maps (PointPillarScatter's permute), which the decoder's ``.view``
    calls reject; decoding a contiguous copy works for every model.
    """
    return out.contiguous()


def _anchor_kinds(cfg) -> list:
    """What an anchor head's anchors are, cell by cell (sizes, rotations, heights), whatever the grid."""
    return [(a.class_name, a.sizes, a.rotations, a.bottom_height) for a in cfg.head.anchor.anchors]


def _anchor_pair(recipe: KDRecipe, student: BEVDetector, teacher: BEVDetector) -> KDRecipe:
    """Check that an anchor-head teacher and student predict for the same anchors per cell, and turn regression KD
    off when their anchors lie on different grids (the authors' rule: regression KD unless there is an input
    resolution gap; it compares residuals anchor by anchor)."""
    if _anchor_kinds(student.cfg) != _anchor_kinds(teacher.cfg):
        raise DistillerError("the teacher's and the student's anchor heads use different anchors (head.anchor.anchors "
                             "sizes, rotations, bottom heights): logit KD compares the same anchors, so give the "
                             "student the teacher's anchors")
    if recipe.logit.enabled and recipe.logit.reg_weight != 0 and student.head.map_hw != teacher.head.map_hw:
        log.info("regression KD off: the student's anchors lie on a %s map, the teacher's on %s (a resolution gap)",
                 student.head.map_hw, teacher.head.map_hw)
        recipe = dataclasses.replace(recipe, logit=dataclasses.replace(recipe.logit, reg_weight=0.0))
    return recipe


def _logit_kd(recipe: KDRecipe, student: BEVDetector):
    """The logit KD of the student's kind of head."""
    if student.cfg.is_anchor:
        return AnchorLogitKD(recipe.logit, student.head.num_anchors, student.cfg.head.loss.code_weights)
    return LogitKD(recipe.logit, student.cfg.head.loss.code_weights)


class Distiller(nn.Module):
    """student (+ frozen teacher) + KD recipe -> loss terms per training step.

    student, teacher: BEVDetector (teacher may be None when the recipe needs none).
    recipe: KDRecipe; family overrides (voxel / pillar) are resolved for the student here.
    """

    def __init__(self, student: BEVDetector, teacher: Optional[BEVDetector] = None,
                 recipe: Optional[KDRecipe] = None):
        super().__init__()
        recipe = (recipe or KDRecipe()).for_student(student.cfg)
        if recipe.needs_teacher and teacher is None:
            raise DistillerError(f"KD recipe '{recipe.name}' uses {', '.join(recipe.enabled_methods())} and needs a "
                                 "teacher: pass a teacher checkpoint (--teacher T.pth) or use --kd none")
        if teacher is not None:
            s, t = student.cfg, teacher.cfg
            if list(s.class_names) != list(t.class_names):
                raise DistillerError(f"teacher classes {t.class_names} differ from the student's {s.class_names}: "
                                     "distil between models trained on the same classes, in the same order")
            if s.class_groups() != t.class_groups():
                raise DistillerError("the teacher groups its classes into heads "
                                     f"{t.head.class_groups or [t.class_names]}, "
                                     f"the student {s.head.class_groups or [s.class_names]}: logit KD compares head "
                                     "by head, so both need the same head.class_groups")
            if list(s.point_features) != list(t.point_features):
                raise DistillerError(f"teacher point features {t.point_features} differ from the student's "
                                     f"{s.point_features}: both must read the same point columns")
            if s.head.type != t.head.type:
                raise DistillerError(f"the teacher has a {t.head.type} head, the student a {s.head.type} head: logit "
                                     "KD compares their maps, so distil between models with the same kind of head")
            if s.is_anchor:
                recipe = _anchor_pair(recipe, student, teacher)
            teacher.requires_grad_(False)
            if recipe.teacher_mode == "train":
                _freeze_bn_statistics(teacher)
        self.recipe = recipe
        self.student = student
        self._teacher_box = (teacher,)  # a tuple hides it from nn.Module registration (see module docstring)
        self.last_stats: dict[str, float] = {}

        num_classes = len(student.cfg.class_names)
        self.logit_kd = _logit_kd(recipe, student) if recipe.logit.enabled else None
        self.label_kd = LabelKD(recipe.label, num_classes) if recipe.label.enabled else None
        s_ch = student.backbone2d.out_channels
        t_ch = teacher.backbone2d.out_channels if teacher is not None else s_ch
        self.fitnet = FitNetKD(recipe.fitnet, s_ch, t_ch) if recipe.fitnet.enabled else None
        self.mimic = (MimicKD(recipe.mimic, student.cfg, teacher.cfg, s_ch, t_ch)
                      if recipe.mimic.enabled else None)

    @property
    def teacher(self) -> Optional[BEVDetector]:
        return self._teacher_box[0]

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.teacher is not None:
            self.teacher._apply(fn, recurse)
        return self

    # ------------------------------------------------------------------ initialisation
    def init_student_from_teacher(self) -> Optional[TGIResult]:
        """Apply TGI (recipe.tgi) to the student in place; None when the recipe does not ask for it."""
        if not self.recipe.tgi.enabled:
            return None
        return apply_tgi(self.teacher, self.student, self.recipe.tgi.mode)

    # ------------------------------------------------------------------ training
    def teacher_forward(self, points_list: list[torch.Tensor]) -> DetectorOutput:
        """The teacher on the same points, its own voxelisation, no gradient.

        The teacher voxelises with its training voxel cap whatever its BN mode, as the reference does:
        in eval mode it would otherwise see up to max_voxels_test voxels while the student sees
        max_voxels_train of the same points (and pay for the extra ones).
        """
        teacher = self.teacher
        teacher.train(self.recipe.teacher_mode == "train")
        with torch.no_grad():
            return teacher.forward_voxels(teacher.voxelizer_train(points_list))

    def forward(self, points_list: list[torch.Tensor], gt_boxes: torch.Tensor,
                gt_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.training_step(points_list, gt_boxes, gt_labels)

    def training_step(self, points_list: list[torch.Tensor], gt_boxes: torch.Tensor,
                      gt_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """points_list: B tensors (N_i, F) on the student's device; gt_boxes (B, M, 7); gt_labels (B, M), -1 padding.

        Returns scalar loss terms: the head's detection terms (CenterHead: hm, loc; anchor head: cls, loc, dir), the
        enabled KD terms (kd_hm, kd_reg, kd_feat, kd_mimic),
        and total (their sum; weights are already applied). Counts go to ``self.last_stats``.
        """
        student = self.student
        s_out = student(points_list)
        t_out = self.teacher_forward(points_list) if self.recipe.needs_teacher_forward else None
        stats: dict[str, float] = {}

        outside = self.recipe.centres_outside_map
        boxes, labels = gt_boxes, gt_labels
        if self.label_kd is not None:
            preds = self.label_kd.teacher_boxes(self.teacher, decodable(t_out))
            boxes, labels, added = self.label_kd(preds, gt_boxes, gt_labels)
            stats["teacher_boxes"] = float(added.sum())
        targets = student.assign_targets(boxes, labels, s_out.grid_hw, outside)
        det = student.head.loss(s_out.heads, targets)
        losses: dict[str, torch.Tensor] = {k: v for k, v in det.items() if k != "total"}

        if self.logit_kd is not None:
            # As the reference: the KD mask and the regression-KD centres come from the teacher's own targets (its
            # grid, the ground truth alone); the label-KD boxes above feed only the detection loss.
            kd_targets = self.teacher.assign_targets(gt_boxes, gt_labels, t_out.grid_hw, outside)
            losses.update(self.logit_kd.over_heads(s_out.heads, t_out.heads, kd_targets))
        if self.fitnet is not None:
            losses["kd_feat"] = self.fitnet(s_out.bev_features, t_out.bev_features)
        if self.mimic is not None:
            rois = self._mimic_rois(s_out, t_out, gt_boxes, gt_labels)
            stats["mimic_rois"] = float(sum(len(r) for r in rois))
            losses["kd_mimic"] = self.mimic(s_out.bev_features, t_out.bev_features, rois)

        losses["total"] = sum(losses.values())
        self.last_stats = stats
        return losses

    def _mimic_rois(self, s_out: DetectorOutput, t_out: DetectorOutput, gt_boxes: torch.Tensor,
                    gt_labels: torch.Tensor) -> list[torch.Tensor]:
        source = self.recipe.mimic.roi_source
        if source == "gt":
            return self.mimic.select_rois([gt_boxes[b][gt_labels[b] >= 0] for b in range(gt_boxes.shape[0])])
        model, out = (self.teacher, t_out) if source == "teacher" else (self.student, s_out)
        with torch.no_grad():
            preds = model.predict(decodable(out), score_threshold=self.recipe.mimic.score_threshold)
        return self.mimic.select_rois([p.boxes for p in preds], [p.scores for p in preds])
