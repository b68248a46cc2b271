"""What one training step minimises: the detector's own loss, or the Distiller's (detector + KD terms).

Both are an ``nn.Module`` whose ``forward(points_list, gt_boxes, gt_labels)`` returns a dict of scalar loss
tensors with a ``"total"`` entry (``DetectorObjective`` here; ``sparsekd_core.kd.distiller.Distiller``), so
DDP can wrap it (DDP hooks the module whose ``forward`` builds the graph) and the trainer never needs to know
which one it runs.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable

import torch
from torch import nn

from ..models.detector import BEVDetector

log = logging.getLogger(__name__)

NO_KD = ("", "none")


class DetectorObjective(nn.Module):
    """The plain detector loss: focal heatmap + L1 regression (``model.loss``)."""

    def __init__(self, student: BEVDetector):
        super().__init__()
        self.student = student

    def forward(self, points: list[torch.Tensor], gt_boxes: torch.Tensor,
                gt_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """points: B tensors (N_i, F); gt_boxes (B, M, 7); gt_labels (B, M) with -1 padding."""
        return self.student.loss(self.student(points), gt_boxes, gt_labels)


class KDUnavailableError(RuntimeError):
    """Distillation was asked for but the KD package cannot be imported."""


def kd_requested(kd: str | None) -> bool:
    return kd is not None and str(kd).strip().lower() not in NO_KD


def _kd_api():
    """(Distiller, load_kd_recipe) from sparsekd_core.kd, imported on first use."""
    try:
        from ..kd.distiller import Distiller
        from ..kd.recipe import load_kd_recipe
    except ImportError as e:  # the KD package is developed alongside; say what is missing
        raise KDUnavailableError(
            f"knowledge distillation needs sparsekd_core.kd (distiller, recipe), which cannot be imported ({e}). "
            "Train without --kd, or update sparsekd_ros."
        ) from e
    return Distiller, load_kd_recipe


def recipe_to_dict(recipe: Any) -> Any:
    """A KD recipe as plain data for the run summary and the checkpoint (dataclass -> dict)."""
    if recipe is None:
        return None
    if dataclasses.is_dataclass(recipe):
        return dataclasses.asdict(recipe)
    if hasattr(recipe, "to_dict"):
        return recipe.to_dict()
    return str(recipe)


def recipe_uses_tgi(recipe: Any) -> bool:
    """Whether the recipe asks for teacher-guided initialisation (``recipe.tgi`` enabled)."""
    tgi = getattr(recipe, "tgi", None)
    if tgi is None:
        return False
    if isinstance(tgi, bool):
        return tgi
    return bool(getattr(tgi, "enabled", True))


def build_objective(student: BEVDetector, teacher: BEVDetector | None = None,
                    kd: str | None = None) -> tuple[nn.Module, Any]:
    """The training objective and the KD recipe it follows (None without KD).

    kd None/"none": the detector's own loss (a teacher given as well is refused: almost certainly a mistake).
    Anything else goes to ``load_kd_recipe`` and the objective is the ``Distiller`` itself (an nn.Module whose
    forward is its training step; it keeps the teacher out of its parameters and state_dict). The recipe
    returned is the Distiller's, with the student's model-family overrides resolved.
    """
    if not kd_requested(kd):
        if teacher is not None:
            raise ValueError("a teacher was given but --kd is none: pass --kd sparsekd (or another recipe) to "
                             "distil, or drop --teacher to train the detector alone")
        return DetectorObjective(student), None
    distiller_cls, load_kd_recipe = _kd_api()
    distiller = distiller_cls(student, teacher, load_kd_recipe(kd))
    return distiller, distiller.recipe


def freeze(model: nn.Module) -> nn.Module:
    """Mark every parameter of ``model`` as not trainable (the teacher)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def extra_state(objective: nn.Module, student: nn.Module, teacher: nn.Module | None) -> dict[str, torch.Tensor]:
    """Trainable or stateful tensors of the objective that are neither the student's nor the teacher's
    (e.g. KD adapters); the checkpoint carries them so that a resume continues them too."""
    owned = {id(t) for t in student.state_dict(keep_vars=True).values()}
    if teacher is not None:
        owned |= {id(t) for t in teacher.state_dict(keep_vars=True).values()}
    return {k: v.detach().cpu().clone() for k, v in objective.state_dict(keep_vars=True).items()
            if id(v) not in owned}


def load_extra_state(objective: nn.Module, expected: Iterable[str], state: dict[str, torch.Tensor]) -> None:
    """Put :func:`extra_state` back. ``expected``: the names this run's objective has (``extra_state(...).keys()``);
    the checkpoint must hold exactly those."""
    expected = set(expected)
    if set(state) != expected:
        raise RuntimeError(
            f"the checkpoint's KD state ({sorted(state)[:3]}...) does not match this run's "
            f"({sorted(expected)[:3]}...): "
            "resume with the --kd recipe the run started with")
    if state:
        objective.load_state_dict(state, strict=False)
