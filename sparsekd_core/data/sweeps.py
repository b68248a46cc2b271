"""Multi-sweep input: the current LiDAR sweep and earlier ones merged into one cloud, each point tagged with its age.

A model with ``sweeps: N`` (config) sees the current sweep and up to N - 1 earlier ones. An earlier sweep is moved
into the current sensor frame with the sensor's motion between the two, ``T_cur<-prev = inv(T_fixed<-cur) @
T_fixed<-prev`` (both poses of the sensor in one fixed frame: the world of a dataset, odom on a robot), and its
points get ``time_lag`` = its age in seconds (0 for the current sweep), as OpenPCDet's nuScenes and Waymo
multi-frame loaders build their input. A sweep without a pose cannot be placed and is left out; a robot without
odometry passes the identity pose (a static sensor).

Datasets: ``infos.load_points(info, root, sweeps)`` merges a frame's earlier sweeps (Waymo: the frames before it
in its segment, waymo_format.read_frame_with_sweeps; nuScenes: its listed sweeps, nuscenes_format.read_points).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from sparsekd_core.geometry.transforms import RigidTransform

TIME_LAG = "time_lag"  # the point feature that carries a sweep's age in seconds (0 = the current sweep)


@dataclass(frozen=True)
class Sweep:
    """points: (N, F) in the sensor frame at ``stamp`` (s); pose: T_fixed<-sensor at ``stamp``, None if unknown."""

    points: np.ndarray
    stamp: float
    pose: Optional[RigidTransform]


def merge_sweeps(current: Sweep, earlier: Sequence[Sweep], time_lag_column: Optional[int]) -> tuple[np.ndarray, int]:
    """current + earlier sweeps -> (merged (N, F) float32 points in the current sensor frame, sweeps merged).

    ``time_lag_column``: the column that gets each sweep's age (current.stamp - sweep.stamp), or None for models
    without one. Earlier sweeps without a pose (or all of them, when the current sweep has none) are left out.
    """
    parts = [np.asarray(current.points, dtype=np.float32)]
    if time_lag_column is not None:
        parts[0] = parts[0].copy()
        parts[0][:, time_lag_column] = 0.0
    if current.pose is not None:
        to_current = current.pose.inverse()
        for sweep in earlier:
            if sweep.pose is None:
                continue
            moved = (to_current @ sweep.pose).apply_points(sweep.points)
            if time_lag_column is not None:
                moved[:, time_lag_column] = current.stamp - sweep.stamp
            parts.append(moved)
    merged = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return merged, len(parts)


class SweepBuffer:
    """The sweeps of a stream (the ROS node): ``merge(sweep)`` returns it merged with up to ``count - 1`` earlier
    ones and keeps it for the next calls.

    Earlier sweeps older than ``max_age`` seconds are dropped (a pause in the stream must not merge stale clouds);
    a stamp that is not newer than the last one (a bag replayed from the start) empties the buffer.
    """

    def __init__(self, count: int, time_lag_column: Optional[int], max_age: Optional[float] = None):
        if count < 1:
            raise ValueError(f"SweepBuffer: count must be at least 1 (got {count})")
        self.count, self.time_lag_column, self.max_age = int(count), time_lag_column, max_age
        self._earlier: deque[Sweep] = deque(maxlen=max(self.count - 1, 0))

    def __len__(self) -> int:
        return len(self._earlier)

    def merge(self, sweep: Sweep) -> tuple[np.ndarray, int]:
        """(merged points, number of sweeps in them) for ``sweep`` and the kept earlier ones; then keep ``sweep``."""
        if self._earlier and sweep.stamp <= self._earlier[-1].stamp:
            self._earlier.clear()
        earlier = [s for s in self._earlier if self.max_age is None or sweep.stamp - s.stamp <= self.max_age]
        merged = merge_sweeps(sweep, earlier[::-1], self.time_lag_column)
        if self._earlier.maxlen:
            self._earlier.append(sweep)
        return merged

