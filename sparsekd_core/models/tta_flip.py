"""Test-time flip (``head.post.tta_flip``): the network also sees each cloud's mirror image, y -> -y, and the two
views' CenterHead maps are averaged before one decode.

CenterPoint's test-time augmentation (Yin et al. 2021, "Center-based 3D Object Detection and Tracking", double flip)
in its one-flip form: a street mirrored left to right is still a street, so the mirror view is a second, partly
independent look at the same objects, and averaging the two lowers the noise of the maps (measured: car boxes
better on simulated and real streets; false pedestrians and cyclists on clutter survive it, docs/results.md "A
test-time flip"). It needs a point-cloud range symmetric about y = 0, so that row i of the mirror's map is row
H - 1 - i of the first's (``ModelConfig.tta_flip_problem``). Turning a mirror map back, per channel:

- every map: rows reversed;
- ``center``: the y offset o within its cell becomes 1 - o (the object's mirrored y falls as far from the cell's far
  edge as it fell from its near one), the x offset stays;
- ``rot``: its second channel is negated: mirroring turns a heading t into -t, and both codes (cos t, sin t) and
  (cos 2t, sin 2t) keep their cosine and negate their sine;
- ``direction`` (axis_dir): kept, since t and -t lie on the same side of the axis end that the logit names (the one
  with cos t >= 0);
- ``vel``: vy negated;
- ``center_z``, ``dim``: kept.

Heatmaps are averaged as probabilities (their logits are stored back, as decode applies the sigmoid), every other
map as it is. Boxes then come from one decode of the averaged maps, with the usual score threshold and NMS.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Sequence

import torch

from .center_head import HeadOutput


def mirror_points(points: torch.Tensor) -> torch.Tensor:
    """(N, F) points -> their mirror image y -> -y (a copy; every other feature kept)."""
    out = points.clone()
    out[:, 1] = -out[:, 1]
    return out


def unmirror(out: HeadOutput) -> HeadOutput:
    """Maps computed on mirrored clouds -> the same maps in the clouds' own frame (the module docstring's rules)."""
    maps = {f.name: getattr(out, f.name) for f in fields(out)}
    back = {name: None if m is None else torch.flip(m.float(), dims=[2]) for name, m in maps.items()}
    back["center"] = torch.stack([back["center"][:, 0], 1.0 - back["center"][:, 1]], dim=1)
    back["rot"] = torch.stack([back["rot"][:, 0], -back["rot"][:, 1]], dim=1)
    if back["vel"] is not None:
        back["vel"] = torch.stack([back["vel"][:, 0], -back["vel"][:, 1]], dim=1)
    return HeadOutput(**back)


def average(a: HeadOutput, b: HeadOutput) -> HeadOutput:
    """Two HeadOutputs of the same clouds in the same frame -> one: heatmaps as the logit of the mean probability,
    every other map as the mean."""
    merged = {}
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None:
            merged[f.name] = None
        elif f.name == "heatmap":
            merged[f.name] = torch.logit((torch.sigmoid(x.float()) + torch.sigmoid(y.float())) / 2, eps=1e-6)
        else:
            merged[f.name] = (x.float() + y.float()) / 2
    return HeadOutput(**merged)


def _samples(out: HeadOutput, part: slice) -> HeadOutput:
    """The maps of the samples ``part`` of a batch."""
    return HeadOutput(**{f.name: None if getattr(out, f.name) is None else getattr(out, f.name)[part]
                         for f in fields(out)})


def merge_flipped(heads: Sequence[HeadOutput]) -> list[HeadOutput]:
    """Maps of a batch of 2 N clouds, the N clouds followed by their N mirror images (:func:`mirror_points`, same
    order) -> maps of the N clouds, each the average of its two views."""
    merged = []
    for out in heads:
        n = out.heatmap.shape[0]
        if n % 2:
            raise ValueError(f"merge_flipped: a batch of {n} maps cannot be N clouds and their N mirror images")
        merged.append(average(_samples(out, slice(0, n // 2)), unmirror(_samples(out, slice(n // 2, n)))))
    return merged
