"""How a CenterHead encodes a box's heading (yaw t), chosen by ``head.heading``.

- ``sin_cos`` (CenterPoint's, the reference): ``rot`` regresses (cos t, sin t), decoded as atan2.
- ``axis_dir``: ``rot`` regresses (cos 2t, sin 2t), the box's *axis*, which is the same for t and t + pi, and a
  ``direction`` logit says which end of the axis is the front (SECOND's idea of a direction classifier, here one
  binary logit per cell). On all-around simulated views a detector often cannot tell a car's front from its back;
  (cos t, sin t) regressed with L1 is then pulled between t and t + pi and lands on neither, turning the box by tens
  of degrees, whereas the axis code stays right and a wrong direction turns the box by exactly pi, which BEV/3D IoU
  (and so KITTI's AP and NMS) does not see.

The encoding targets are computed from CenterTargets' (cos t, sin t) codes, so target assignment, label KD and
every other producer of targets stay encoding-blind.
"""
from __future__ import annotations

import torch


def axis_codes(cos_t: torch.Tensor, sin_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos 2t, sin 2t) from (cos t, sin t), by the double-angle formulas."""
    return cos_t * cos_t - sin_t * sin_t, 2.0 * sin_t * cos_t


def direction_targets(cos_t: torch.Tensor, sin_t: torch.Tensor) -> torch.Tensor:
    """1.0 where the heading points to the *other* end of the axis than the one :func:`to_cos_sin` decodes
    first (the end with cos >= 0, i.e. t in [-pi/2, pi/2], with sin 2t >= 0 deciding at cos = 0), else 0.0."""
    c2, s2 = axis_codes(cos_t, sin_t)
    first_cos, first_sin = _first_end(c2, s2)
    return ((first_cos * cos_t + first_sin * sin_t) < 0).to(cos_t.dtype)


def regression_targets(boxes: torch.Tensor, heading: str) -> torch.Tensor:
    """CenterTargets.boxes (B, K, 8 or 10), codes 6:8 = (cos t, sin t) -> the codes the ``rot`` map regresses."""
    if heading == "sin_cos":
        return boxes
    out = boxes.clone()
    out[..., 6], out[..., 7] = axis_codes(boxes[..., 6], boxes[..., 7])
    return out


def _first_end(c2: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The half angle of the vector (c2, s2) = r (cos 2p, sin 2p) on the end with cos p >= 0, scaled to sqrt(r):
    (sqrt(r) cos p, sqrt(r) sin p). Built from sqrt, division and where only, so it exports to ONNX (which has no
    atan2). Only the larger of the two comes from a square root; the smaller is s2 / (2 x the larger) (sin 2p =
    2 sin p cos p): the square root of a difference near 0 would turn rounding noise of 1e-7 into 1e-4."""
    r = torch.sqrt(c2 * c2 + s2 * s2)
    large = torch.sqrt(torch.clamp((r + torch.abs(c2)) * 0.5, min=0.0))  # sqrt(r) max(|cos p|, |sin p|)
    small = torch.abs(s2) / torch.clamp(2.0 * large, min=torch.finfo(large.dtype).tiny)
    cos_p = torch.where(c2 >= 0, large, small)
    sin_p = torch.where(c2 >= 0, small, large)
    return cos_p, torch.where(s2 >= 0, sin_p, -sin_p)


def to_cos_sin(rot: torch.Tensor, direction: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``rot`` codes (..., 2), channels last, -> (cos t, sin t), each (...), up to a common positive scale.
    direction: the front-end logits (..., 1) of an ``axis_dir`` head, or None for ``sin_cos`` (rot is already
    (cos t, sin t))."""
    if direction is None:
        return rot[..., 0], rot[..., 1]
    cos_p, sin_p = _first_end(rot[..., 0], rot[..., 1])
    flip = torch.where(direction[..., 0] > 0, -torch.ones_like(cos_p), torch.ones_like(cos_p))
    return cos_p * flip, sin_p * flip
