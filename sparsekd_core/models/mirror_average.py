"""Test-time mirror averaging: a CenterHead's heatmap averaged with the heatmap of the same cloud mirrored left to
right (y -> -y), mirrored back onto the map.

A detector trained with flip augmentation should answer a mirrored street with the mirrored boxes. On what it was
trained for it nearly does, so averaging costs it little there; on what lies outside it (a real shrub to a model
trained on simulated streets) its two answers disagree more, and the average lowers a score that only one of them
gave. This is the heatmap half of CenterPoint's "double flip" test-time augmentation (Yin et al. 2021), with one
mirror instead of three. Boxes are regressed from the unmirrored pass only: centre offsets, heading and the
front-end logit would each need their own mirror rule, and the box placed on a peak is the unmirrored model's.

The map's rows must mirror onto rows: a point cloud range symmetric in y whose rows cover it exactly, so that row
j's centre mirrors onto row H-1-j's.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch

from ..config import ModelConfig
from .center_head import HeadOutput


def mirror_problem(cfg: ModelConfig) -> str | None:
    """Why ``cfg``'s maps cannot be mirror averaged, or None when they can."""
    if cfg.is_anchor:
        return (f"{cfg.name} has an anchor head; mirror averaging reads a CenterHead's heatmap (switch "
                "head.post.mirror_average off)")
    r, v = cfg.voxelization.point_cloud_range, cfg.voxelization.voxel_size
    if not math.isclose(r[1], -r[4], abs_tol=1e-6):
        return (f"{cfg.name}'s point cloud range is not symmetric in y ({r[1]} .. {r[4]}), so a left-right mirror "
                "moves objects out of its map (switch head.post.mirror_average off)")
    stride = cfg.head.feature_stride  # voxels per head cell, as decode.decode_maps places boxes
    cell, rows = v[1] * stride, -(-cfg.voxelization.grid_size()[1] // stride)
    if not math.isclose(rows * cell, r[4] - r[1], abs_tol=1e-4):
        return (f"{cfg.name}'s head map has {rows} rows of {cell:g} m, which do not tile its y range "
                f"{r[1]} .. {r[4]} exactly, so mirrored rows do not land on rows (switch head.post.mirror_average off)")
    return None


def mirror_points(points: torch.Tensor) -> torch.Tensor:
    """(N, F) points with x y z first -> the same points mirrored left to right (y negated), other features kept."""
    mirrored = points.clone()
    mirrored[:, 1] = -mirrored[:, 1]
    return mirrored


def average_mirrored(heads: Sequence[HeadOutput], n: int) -> list[HeadOutput]:
    """Maps of 2n samples (n clouds, then the same n mirrored) -> maps of the n clouds: each heatmap's scores
    (sigmoid) averaged with its mirror's, flipped back along the rows, and returned as logits; every regression
    map the unmirrored pass's."""
    out = []
    for h in heads:
        if h.heatmap.shape[0] != 2 * n:
            raise ValueError(f"expected maps of {2 * n} samples (clouds, then mirrored clouds), got "
                             f"{h.heatmap.shape[0]}")
        scores = torch.sigmoid(h.heatmap[:n].float())
        mirrored = torch.sigmoid(h.heatmap[n:].float()).flip(-2)
        mean = ((scores + mirrored) / 2).clamp(1e-6, 1 - 1e-6)
        kept = {f: (None if getattr(h, f) is None else getattr(h, f)[:n])
                for f in ("center", "center_z", "dim", "rot", "vel", "direction")}
        out.append(replace(h, heatmap=torch.logit(mean).to(h.heatmap.dtype), **kept))
    return out
