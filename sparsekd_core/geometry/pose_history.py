"""Poses of a moving frame over time, and the pose at any stamp between them (odometry -> a cloud's stamp).

Translation is interpolated linearly and rotation spherically (scipy's Slerp) between the two poses that
bracket the stamp. A stamp a little after the newest pose (a cloud that arrives before the odometry that
covers it) holds the newest pose for up to ``hold`` seconds; earlier than the oldest kept pose, or later than
that, there is no pose: the caller must not pretend to know where the sensor was.
"""
from __future__ import annotations

import bisect
from collections import deque

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sparsekd_core.geometry.transforms import RigidTransform

__all__ = ["PoseHistory"]


class PoseHistory:
    """Stamped poses (T_fixed<-moving) of the last ``span`` seconds; ``at(stamp)`` interpolates."""

    def __init__(self, span: float = 5.0, hold: float = 0.2):
        self.span, self.hold = float(span), float(hold)
        self._stamps: deque[float] = deque()
        self._poses: deque[RigidTransform] = deque()

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp: float, pose: RigidTransform) -> None:
        """Keep ``pose`` at ``stamp`` (seconds); an older stamp than the newest (a replayed bag) starts over."""
        if self._stamps and stamp <= self._stamps[-1]:
            if stamp == self._stamps[-1]:
                return
            self._stamps.clear()
            self._poses.clear()
        self._stamps.append(float(stamp))
        self._poses.append(pose)
        while self._stamps and self._stamps[0] < stamp - self.span:
            self._stamps.popleft()
            self._poses.popleft()

    def at(self, stamp: float) -> RigidTransform | None:
        """The pose at ``stamp``, or None when the kept poses do not cover it (see the module doc)."""
        if not self._stamps or stamp < self._stamps[0]:
            return None
        if stamp >= self._stamps[-1]:
            return self._poses[-1] if stamp - self._stamps[-1] <= self.hold else None
        i = bisect.bisect_right(list(self._stamps), stamp)
        t0, t1 = self._stamps[i - 1], self._stamps[i]
        p0, p1 = self._poses[i - 1], self._poses[i]
        w = (stamp - t0) / (t1 - t0)
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([p0.rotation, p1.rotation])))
        return RigidTransform(slerp([w]).as_matrix()[0], (1 - w) * p0.translation + w * p1.translation)
