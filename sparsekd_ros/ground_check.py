"""The node's mounting check: the ground the sensor sees, in the model's frame, against the ground the
model was trained on; a message that names the parameter to set when they disagree.

Runs on the first cloud and then every ``period_s``; the estimate is sparsekd_core's
(geometry/ground.py), on the points as the model gets them (after ``sensor_to_model``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sparsekd_core.geometry.ground import estimate_ground

__all__ = ["GroundCheck", "GroundReport"]

_TILT_WARN_DEG = 4.0  # ground steeper than this in the model frame: the sensor is probably tilted (roads: < 4)


@dataclass(frozen=True)
class GroundReport:
    ok: bool
    text: str


class GroundCheck:
    """expected_z: the model's ground z (None: unknown, only the seen ground is logged); source: where it
    comes from; tolerance: metres of disagreement before a warning; period_s: seconds between checks
    after the first (0: only the first cloud)."""

    def __init__(self, expected_z: float | None, source: str, tolerance: float = 0.3, period_s: float = 30.0):
        self.expected_z, self.source, self.tolerance, self.period_s = expected_z, source, tolerance, period_s
        self._next: float | None = None  # time.monotonic() of the next check; None: the first cloud

    def due(self) -> bool:
        now = time.monotonic()
        if self._next is not None and (now < self._next or self.period_s <= 0):
            return False
        self._next = now + self.period_s
        return True

    def check(self, model_points: np.ndarray, sensor_to_model: tuple[float, ...]) -> GroundReport | None:
        """A report on these points (already in the model frame); None when they show too little ground."""
        seen = estimate_ground(model_points)
        if seen is None:
            return None
        line = (f"ground seen at z {seen.height:+.2f} m in the model frame (tilt {seen.tilt_deg:.1f} deg: "
                f"pitch {seen.pitch_deg:+.1f}, roll {seen.roll_deg:+.1f}; {seen.inliers} of {seen.cells} cells)")
        if self.expected_z is None:
            return GroundReport(True, f"{line}; the model's ground is unknown ({self.source})")
        line += f", model expects {self.expected_z:+.2f} m ({self.source})"
        x, y, z, roll, pitch, yaw = sensor_to_model
        problems = []
        diff = self.expected_z - seen.height
        if abs(diff) > self.tolerance:
            where = "higher" if diff > 0 else "lower"
            problems.append(
                f"the ground is {abs(diff):.2f} m {'lower' if diff > 0 else 'higher'} than the model expects: the "
                f"sensor sits {where} than in the training data. Set sensor_to_model z to {z + diff:+.2f} (now "
                f"{z:+.2f}), e.g. -p sensor_to_model:=[{x:g},{y:g},{z + diff:.2f},{roll:g},{pitch:g},{yaw:g}]")
        if seen.tilt_deg > _TILT_WARN_DEG:
            problems.append(
                f"the ground is tilted {seen.tilt_deg:.1f} deg in the model frame: if the sensor is, level it with "
                f"sensor_to_model roll/pitch (about {roll - np.radians(seen.roll_deg):+.3f} / "
                f"{pitch + np.radians(seen.pitch_deg):+.3f} rad; now {roll:g} / {pitch:g})")
        if problems:
            return GroundReport(False, f"{line}. " + "; ".join(problems))
        return GroundReport(True, line)
