"""A 10 Hz drive: the ego vehicle drives along the street while the other road users move too.

Everyone who moves keeps to a lane strip at that strip's speed (placement.py), so the drive is free
of collisions for its whole length: vehicles at 5-15 m/s, cyclists at 3-7 m/s, pedestrians at
0.9-1.7 m/s, parked cars and standing people still. The static world is built once; each frame
only moves the road users and the sensor. Track ids stay the same through the drive.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sparsekd_core.data.sim.placement import Densities, EgoState, populate
from sparsekd_core.data.sim.scene import SceneBase, SimFrame, SimOptions, frame_rng, sample_mounting
from sparsekd_core.data.sim.sensor import SensorPreset
from sparsekd_core.data.sim.sizes import SizeSampler

#: Fastest road user (m/s): how far users may come from to enter the sensor's range during the drive.
MAX_SPEED = 15.0


class DriveScene(SceneBase):
    """One drive of ``num_frames`` frames at the preset's rate (10 Hz)."""

    def __init__(self, preset: SensorPreset, seed: int, scene_index: int, num_frames: int,
                 density: Densities = Densities(), options: SimOptions = SimOptions()):
        self.num_frames = int(num_frames)
        self.duration = self.num_frames / preset.rate_hz
        rng = frame_rng(seed, scene_index, 0, 4)
        ego_speed = float(rng.uniform(7.0, 12.0))
        reach = preset.max_range + MAX_SPEED * self.duration + 30.0
        drive = ego_speed * self.duration
        super().__init__(preset, seed, scene_index, (-reach, drive + reach), needs_bike_lane=True, options=options)
        lanes = [lane for lane in self.layout.lanes_of("travel") if lane.direction > 0]
        lane = lanes[int(rng.integers(len(lanes)))]
        self.ego0 = EgoState(0.0, lane.y_centre, 0.0, ego_speed, lane)
        self.actors = populate(self.world, rng, (-reach + 20.0, drive + reach - 20.0), self.ego0, sequence=True,
                               library=self.library, sizes=SizeSampler(rng, self.style), density=density,
                               close=self.people_rng("close_people", 0))
        self.mounting = sample_mounting(preset, options, rng)  # one mounting for the whole drive
        self._boxes0 = np.array([a.box for a in self.actors]).reshape(-1, 7)
        self._velocity = np.array([a.velocity for a in self.actors]).reshape(-1, 3)

    def ego_at(self, timestamp: float) -> EgoState:
        """The ego state ``timestamp`` seconds into the drive (constant speed along +x in its lane)."""
        return replace(self.ego0, x=self.ego0.x + self.ego0.speed * timestamp)

    def boxes_at(self, timestamp: float) -> np.ndarray:
        """(A, 7) world boxes of all road users at ``timestamp`` (constant velocities: see Actor.at_time)."""
        boxes = self._boxes0.copy()
        boxes[:, :3] += self._velocity * timestamp
        return boxes

    def frame(self, frame_index: int) -> SimFrame:
        if not 0 <= frame_index < self.num_frames:
            raise IndexError(f"frame {frame_index} outside the drive's {self.num_frames} frames")
        timestamp = frame_index / self.preset.rate_hz
        rng = frame_rng(self.seed, self.scene_index, frame_index, 2)
        return self.render(frame_index, timestamp, self.ego_at(timestamp), self.actors,
                           self.boxes_at(timestamp), rng, mounting=self.mounting)
