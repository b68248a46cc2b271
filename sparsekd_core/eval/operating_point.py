"""A detector's operating point: the score threshold per class that a robot should publish boxes at.

AP integrates over every threshold, so it cannot say where to cut; the node has to. The operating point here is
the threshold with the best F1 (the harmonic mean of precision and recall, 2 TP / (2 TP + FP + FN)) over a grid,
per class, counted by the benchmark's own matching (``kitti.kitti_counts``: BEV IoU, moderate by default). Ties go
to the lower threshold (more recall for the same balance). Choose it on validation data of the kind the robot
will see, never on the frames used to report accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 0.0

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def threshold_grid(low: float, high: float, step: float) -> np.ndarray:
    """low, low + step, ... up to high (inclusive, to the rounding of 1e-9), rounded to 6 decimals."""
    if not (0.0 <= low <= high <= 1.0) or step <= 0:
        raise ValueError(f"an operating-point grid needs 0 <= low <= high <= 1 and step > 0, got {low}, {high}, {step}")
    n = int(np.floor((high - low) / step + 1e-9)) + 1
    return np.round(low + step * np.arange(n), 6)


def operating_points(counts: Mapping[str, Mapping[str, np.ndarray]],
                     thresholds: Sequence[float]) -> dict[str, list[OperatingPoint]]:
    """Per class, one OperatingPoint per threshold from ``kitti.kitti_counts``'s TP/FP/FN arrays."""
    grid = [float(t) for t in thresholds]
    out = {}
    for cls, c in counts.items():
        if not (len(c["tp"]) == len(c["fp"]) == len(c["fn"]) == len(grid)):
            raise ValueError(f"{cls}: counts for {len(c['tp'])} thresholds, grid of {len(grid)}")
        out[cls] = [OperatingPoint(t, int(tp), int(fp), int(fn))
                    for t, tp, fp, fn in zip(grid, c["tp"], c["fp"], c["fn"])]
    return out


def best_f1(points: Sequence[OperatingPoint]) -> OperatingPoint | None:
    """The point of highest F1, the lowest threshold among equals; None when no point has a true positive
    (no ground truth found at any threshold: nothing to choose from)."""
    found = [p for p in points if p.tp > 0]
    if not found:
        return None
    return max(found, key=lambda p: (round(p.f1, 12), -p.threshold))


def operating_table(points: Mapping[str, Sequence[OperatingPoint]]) -> str:
    """Printable precision / recall / F1 per class and threshold, the best F1 of each class marked."""
    lines = []
    for cls, pts in points.items():
        best = best_f1(pts)
        lines.append(f"{cls}: threshold  TP  FP  FN  precision  recall  F1")
        for p in pts:
            mark = "  <- best F1" if best is not None and p.threshold == best.threshold else ""
            lines.append(f"  {p.threshold:9.2f} {p.tp:4d} {p.fp:4d} {p.fn:4d}  {p.precision:9.3f} {p.recall:7.3f} "
                         f"{p.f1:5.3f}{mark}")
        if best is None:
            lines.append("  (no true positive at any threshold: no operating point)")
    return "\n".join(lines)


def best_thresholds(points: Mapping[str, Sequence[OperatingPoint]]) -> dict[str, float]:
    """Class -> its best-F1 threshold, for the classes that have one (what a checkpoint records)."""
    best = {cls: best_f1(pts) for cls, pts in points.items()}
    return {cls: p.threshold for cls, p in best.items() if p is not None}


def class_thresholds_text(points: Mapping[str, Sequence[OperatingPoint]]) -> str:
    """The best-F1 thresholds as the node's ``class_score_thresholds`` value, e.g. "Car:0.4,Pedestrian:0.35"."""
    return ",".join(f"{cls}:{t:g}" for cls, t in best_thresholds(points).items())
