"""Training on bird's-eye-view windows: a random part of the model's range per sample.

A CenterPoint detector is convolutional from its BEV map on, so a model that will look at 80 x 80 m can
learn from 40 x 40 m windows of its training frames at a quarter of the cost of each step: the expensive
dense 2D backbone and head then run on the window only. For pillar models the window is exact, not an
approximation: its origin sits on the model's coarsest BEV cell boundary (``align``), points keep their
absolute coordinates (the VFEs see x, y, z as they are), and the map cells inside the window hold what the
full map would hold, apart from the zero padding at the window's edges (the same as at the range's edges).
For voxel models it is close but not exact: their sparse 3D convolutions reach further than the ``margin``
of points kept around the window (the trainer keeps one coarsest cell, e.g. 1.6 m, where the 3D receptive
field is over 3 m), so cells near the window's edges differ slightly from the whole map's, as cells near
the range's edges do.

The dataset draws one window per sample (:meth:`BevWindow.draw`), keeps the points in it plus a ``margin``
(context for the sparse 3D convolutions of voxel models), keeps the boxes whose centre lies inside, and
expresses those boxes in window coordinates (minus the window's offset from the range's corner), which is
where the model's cropped maps put them (``CenterPointDetector.bev_window``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm
from typing import Sequence

import numpy as np


def common_alignment(cells: Sequence[float]) -> float:
    """The shortest length (metres) that is a whole number of each of ``cells``: the step a window shared by
    models of different grids must move in, so that it starts on a cell boundary of every one of their maps
    (0.64 m and 1.28 m cells give 1.28 m; 1.28 m and 2.048 m give 10.24 m). Cells are read to the micrometre."""
    if not cells or any(not c > 0 for c in cells):
        raise ValueError(f"BEV window: cell sizes must be positive, got {list(cells)}")
    exact = [Fraction(round(float(c) * 1_000_000), 1_000_000) for c in cells]
    numerator, denominator = exact[0].numerator, exact[0].denominator
    for f in exact[1:]:  # lcm of reduced fractions: lcm of the numerators over gcd of the denominators
        numerator, denominator = lcm(numerator, f.numerator), gcd(denominator, f.denominator)
    return numerator / denominator


@dataclass(frozen=True)
class BevWindow:
    """size: (x, y) metres of the window; align: metres its offset is a multiple of (a whole number of every
    model's coarsest cell: common_alignment); margin: metres of points kept around it; point_cloud_range: the
    model's (6,) range the window moves within."""

    size: tuple[float, float]
    align: float
    point_cloud_range: tuple[float, ...]
    margin: float = 0.0

    def __post_init__(self):
        r = self.point_cloud_range
        for axis, name in ((0, "x"), (1, "y")):
            extent = r[axis + 3] - r[axis]
            if not 0 < self.size[axis] <= extent + 1e-6:
                raise ValueError(f"BEV window {name} size {self.size[axis]} m must be within (0, {extent:g}] m, the "
                                 "model's range")
            for value, what in ((self.size[axis], "window size"), (extent, "range extent")):
                steps = value / self.align
                if abs(steps - round(steps)) > 1e-6:
                    raise ValueError(f"BEV window: the {what} along {name} ({value:g} m) must be a multiple of "
                                     f"{self.align:g} m, the step on which the BEV cells of the model(s) line up "
                                     "(data.window.common_alignment); pick another size")

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """(2,) offset (metres) of a uniformly drawn aligned window from the range's (x, y) corner."""
        r = self.point_cloud_range
        steps = [int(round((r[a + 3] - r[a] - self.size[a]) / self.align)) for a in (0, 1)]
        return np.array([rng.integers(0, s + 1) * self.align for s in steps], np.float32)

    def apply(self, points: np.ndarray, boxes: np.ndarray, keep: np.ndarray, offset: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop to the window at ``offset``: points (N, F) within it plus the margin, ``keep`` (M,) bool
        narrowed to boxes whose centre lies inside, and the boxes (M, 7) moved into window coordinates."""
        lo = np.asarray(self.point_cloud_range[:2], np.float32) + offset
        hi = lo + np.asarray(self.size, np.float32)
        m = self.margin
        inside = ((points[:, 0] >= lo[0] - m) & (points[:, 0] < hi[0] + m)
                  & (points[:, 1] >= lo[1] - m) & (points[:, 1] < hi[1] + m))
        centre_in = np.all((boxes[:, :2] >= lo) & (boxes[:, :2] < hi), axis=1)
        moved = boxes.copy()
        moved[:, :2] -= offset
        return points[inside], moved, keep & centre_in
