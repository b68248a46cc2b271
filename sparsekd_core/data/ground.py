"""The ground height of a dataset: where the road is, in the frame its points are in.

A checkpoint records it (meta ``ground_z``, written by the trainer) so that a robot can compare the
ground its own sensor sees with the ground the model was trained on (geometry/ground.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.data.infos import FrameInfo, load_points
from sparsekd_core.geometry.ground import estimate_ground

__all__ = ["dataset_ground_z"]


def dataset_ground_z(infos: Sequence[FrameInfo], root: str | Path, frames: int = 16) -> float | None:
    """Median ground height (m) over up to ``frames`` evenly spaced frames of ``infos``; None if none has one."""
    if not infos:
        return None
    picks = np.unique(np.linspace(0, len(infos) - 1, min(frames, len(infos))).round().astype(int))
    heights = [g.height for g in (estimate_ground(load_points(infos[i], root)) for i in picks) if g is not None]
    return float(np.median(heights)) if heights else None
