"""Clear overhead: a person's box is dropped when the LiDAR sees something solid just above their head.

A standing person or a cyclist has open air above the head. A sign post, a lamp post or a tree trunk does not: its
plate, lamp or trunk goes on up. Networks trained on simulated streets put confident Pedestrian and Cyclist boxes on
the lower part of such posts and trunks in real sweeps, and those boxes outrank most true ones (docs/results.md,
"Clear overhead"). ``head.post.clear_overhead`` names the classes the Detector checks: a box of such a class is
dropped when at least :data:`MIN_RETURNS` returns lie over its footprint, widened by :data:`MARGIN` on each side,
between :data:`FROM_TOP` and :data:`TO_TOP` above the box's top.

The window was set from street geometry, not fitted to any sweep: for a 1.7 m person it spans 2.2-3.0 m above the
ground, where sign plates hang over walkways (lower edge 2.2-2.5 m) and trunks and posts continue. It starts 0.5 m
over the box so that a head the box cuts short, a raised hand or an umbrella is not counted, and it stops below
most street-tree canopies. A person standing under something lower (an awning at 2.5 m, a bus shelter's roof, a low
branch) is dropped too: the price of the check, and the reason it is a per-class setting one can switch off.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .geometry.boxes import points_in_boxes

#: the window over a box, metres above its top: from FROM_TOP to TO_TOP
FROM_TOP = 0.5
TO_TOP = 1.3
#: metres the box's footprint is widened by on each side
MARGIN = 0.1
#: returns in the window that drop the box (one stray return, a bird or a wire, does not)
MIN_RETURNS = 3


def overhead_returns(points_xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 3+) points, (M, 7+) boxes -> (M,) number of returns in each box's overhead window."""
    boxes = np.asarray(boxes, dtype=np.float64)[:, :7].reshape(-1, 7)
    window = boxes.copy()
    window[:, 2] = boxes[:, 2] + boxes[:, 5] / 2 + (FROM_TOP + TO_TOP) / 2
    window[:, 3:5] = boxes[:, 3:5] + 2 * MARGIN
    window[:, 5] = TO_TOP - FROM_TOP
    return points_in_boxes(points_xyz, window).sum(axis=0)


def clear_overhead(points_xyz: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                   check_labels: Sequence[int]) -> np.ndarray:
    """(M,) bool: True for the boxes to keep, i.e. every box whose label is not in ``check_labels`` and every
    checked box with fewer than :data:`MIN_RETURNS` returns over it."""
    keep = np.ones(len(boxes), dtype=bool)
    if not len(check_labels) or not len(boxes):
        return keep
    checked = np.flatnonzero(np.isin(np.asarray(labels), list(check_labels)))
    if len(checked):
        keep[checked] = overhead_returns(points_xyz, np.asarray(boxes)[checked]) < MIN_RETURNS
    return keep
