"""Anchors of an anchor head: every class's anchor boxes at every cell of the head's BEV map.

Layout (OpenPCDet's AnchorGenerator with one bottom height per class, so that imported weights line up): the
anchors form an (H, W, A, 7) tensor, row y, column x, then A anchors per cell: class by class (in class_names
order), within a class size by size, within a size rotation by rotation. The head's maps hold A blocks of
channels in the same order, so flattening both as (y, x, a) pairs every prediction with its anchor.

Positions: with ``align_center`` the anchors sit at cell centres; without (OpenPCDet's default) the W columns
are spread evenly from the range's first x edge to its last, so their spacing is (xmax - xmin) / (W - 1),
slightly more than a cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import AnchorClassConfig


@dataclass(frozen=True)
class AnchorLayout:
    """Where each class's anchors are among the A anchors of a cell: class i holds ``slices[i]``."""

    per_class: tuple[int, ...]

    @property
    def num_anchors(self) -> int:
        return sum(self.per_class)

    def slice_of(self, class_index: int) -> slice:
        start = sum(self.per_class[:class_index])
        return slice(start, start + self.per_class[class_index])

    def class_of_anchor(self) -> torch.Tensor:
        """(A,) long: the class index of each anchor slot of a cell."""
        return torch.repeat_interleave(torch.arange(len(self.per_class)), torch.tensor(self.per_class))


def anchor_layout(classes: list[AnchorClassConfig]) -> AnchorLayout:
    return AnchorLayout(tuple(len(c.sizes) * len(c.rotations) for c in classes))


def _positions(lo: float, hi: float, n: int, align_center: bool) -> torch.Tensor:
    """n anchor positions from lo to hi, as OpenPCDet computes them (a float32 arange, whose rounding moves the
    last ones by up to ~1e-5 m on a 150 m range): the same anchors, so the same near-ties in assignment."""
    if align_center:
        step = (hi - lo) / n
        start = lo + step / 2
    else:
        step = (hi - lo) / max(n - 1, 1)
        start = lo
    out = torch.arange(start, hi + 1e-5, step=step, dtype=torch.float32)[:n]
    if len(out) != n:  # float steps can fall a position short; then exact multiples
        out = (start + step * torch.arange(n, dtype=torch.float64)).float()
    return out


def class_anchors(cfg: AnchorClassConfig, map_hw: tuple[int, int], point_cloud_range) -> torch.Tensor:
    """(H, W, sizes x rotations, 7) anchors of one class on an (H, W) map over ``point_cloud_range``."""
    h, w = map_hw
    r = point_cloud_range
    xs = _positions(r[0], r[3], w, cfg.align_center)
    ys = _positions(r[1], r[4], h, cfg.align_center)
    sizes = torch.tensor(cfg.sizes, dtype=torch.float32)  # (S, 3)
    rots = torch.tensor(cfg.rotations, dtype=torch.float32)  # (R,)
    s, n_rot = len(sizes), len(rots)
    out = torch.zeros(h, w, s, n_rot, 7, dtype=torch.float32)
    out[..., 0] = xs.view(1, w, 1, 1)
    out[..., 1] = ys.view(h, 1, 1, 1)
    out[..., 2] = cfg.bottom_height
    out[..., 3:6] = sizes.view(1, 1, s, 1, 3)
    out[..., 2] += out[..., 5] / 2  # bottom face -> gravity centre
    out[..., 6] = rots.view(1, 1, 1, n_rot)
    return out.reshape(h, w, s * n_rot, 7)


def generate_anchors(classes: list[AnchorClassConfig], map_hw: tuple[int, int], point_cloud_range) -> torch.Tensor:
    """(H, W, A, 7) anchors of every class on the head's (H, W) map (see the module docstring for the order)."""
    return torch.cat([class_anchors(c, map_hw, point_cloud_range) for c in classes], dim=2)
