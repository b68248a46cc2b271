"""Anchor box residuals (OpenPCDet's ResidualCoder, as SECOND defines them) and the heading helpers around them.

A box (x, y, z, dx, dy, dz, yaw) is encoded against an anchor (xa, ya, za, dxa, dya, dza, ra) as

    ((x - xa) / d, (y - ya) / d, (z - za) / dza, log(dx / dxa), log(dy / dya), log(dz / dza), yaw - ra)

with d = sqrt(dxa^2 + dya^2), the anchor's BEV diagonal; decoding inverts it exactly. The yaw residual is a
plain difference: the loss compares it through sin(a - b) (:func:`sin_difference`), which is blind to a
half-turn, and the direction classifier (:func:`direction_bins`, :func:`apply_direction`) puts the heading
back in the right half.
"""
from __future__ import annotations

import math

import torch

CODE_SIZE = 7


def limit_period(angle: torch.Tensor, offset: float = 0.5, period: float = math.pi) -> torch.Tensor:
    """Wrap angles into ``[-offset * period, (1 - offset) * period)`` (torch; geometry.boxes has the numpy one)."""
    return angle - torch.floor(angle / period + offset) * period


def encode(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(..., 7) boxes and anchors of the same shape -> (..., 7) residuals. Extents are floored at 1e-5 m."""
    xa, ya, za, dxa, dya, dza, ra = anchors[..., :7].unbind(-1)
    xg, yg, zg, dxg, dyg, dzg, rg = boxes[..., :7].unbind(-1)
    dxa, dya, dza = dxa.clamp(min=1e-5), dya.clamp(min=1e-5), dza.clamp(min=1e-5)
    dxg, dyg, dzg = dxg.clamp(min=1e-5), dyg.clamp(min=1e-5), dzg.clamp(min=1e-5)
    diagonal = torch.sqrt(dxa ** 2 + dya ** 2)
    return torch.stack([(xg - xa) / diagonal, (yg - ya) / diagonal, (zg - za) / dza,
                        torch.log(dxg / dxa), torch.log(dyg / dya), torch.log(dzg / dza), rg - ra], dim=-1)


def decode(residuals: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(..., 7) residuals and anchors of the same shape -> (..., 7) boxes (the inverse of :func:`encode`)."""
    xa, ya, za, dxa, dya, dza, ra = anchors[..., :7].unbind(-1)
    xt, yt, zt, dxt, dyt, dzt, rt = residuals[..., :7].unbind(-1)
    diagonal = torch.sqrt(dxa ** 2 + dya ** 2)
    return torch.stack([xt * diagonal + xa, yt * diagonal + ya, zt * dza + za,
                        torch.exp(dxt) * dxa, torch.exp(dyt) * dya, torch.exp(dzt) * dza, rt + ra], dim=-1)


def sin_difference(a: torch.Tensor, b: torch.Tensor, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace code ``dim`` of two residual tensors (..., C) by sin(a)cos(b) and cos(a)sin(b).

    Their difference is sin(a - b), so an L1-type loss between the two results sees the heading error
    through a sine: 0 for a half-turn error, which the direction classifier handles instead.
    """
    sa, ca = torch.sin(a[..., dim:dim + 1]), torch.cos(a[..., dim:dim + 1])
    sb, cb = torch.sin(b[..., dim:dim + 1]), torch.cos(b[..., dim:dim + 1])
    a2 = torch.cat([a[..., :dim], sa * cb, a[..., dim + 1:]], dim=-1)
    b2 = torch.cat([b[..., :dim], ca * sb, b[..., dim + 1:]], dim=-1)
    return a2, b2


def direction_bins(yaw: torch.Tensor, num_bins: int, dir_offset: float) -> torch.Tensor:
    """Heading -> its direction bin (long): the turn from ``dir_offset`` split into ``num_bins`` equal bins."""
    turned = limit_period(yaw - dir_offset, 0.0, 2 * math.pi)
    return torch.floor(turned / (2 * math.pi / num_bins)).long().clamp(0, num_bins - 1)


def apply_direction(yaw: torch.Tensor, bins: torch.Tensor, num_bins: int, dir_offset: float,
                    dir_limit_offset: float) -> torch.Tensor:
    """Decoded headings and their predicted direction bins -> headings in that bin.

    The heading is wrapped into one period (2 pi / num_bins) from ``dir_offset``, then moved by whole periods
    into the predicted bin, as OpenPCDet's AnchorHeadTemplate.generate_predicted_boxes does.
    """
    period = 2 * math.pi / num_bins
    wrapped = limit_period(yaw - dir_offset, dir_limit_offset, period)
    return wrapped + dir_offset + period * bins.to(yaw.dtype)
