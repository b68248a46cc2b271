"""The vehicle that carries the sensor: a box lying on it is the vehicle's own returns, not a road user.

A roof LiDAR sees its own vehicle in every sweep (roof edges, mirrors, a rack: on KITTI a few dozen returns 1.5-2.7 m
from the sensor), and a model can read that cluster as a car standing where the robot is. No road user can stand
inside the robot, so a detected box whose bird's-eye footprint lies on the vehicle's footprint by at least
``OVERLAP`` of its own area is dropped. The footprint is the vehicle with what sticks out of it (mirrors, a rack):
KITTI's own returns include clusters at the rear roof corners 1.2 m either side of the sensor, on which a model
puts pedestrians. A road user beside the vehicle does not come close: a pedestrian 0.3 m from the door stays clear
of it, a car parked alongside too.

The footprint is a rectangle in the model's frame (the sensor's, after the node's sensor_to_model; x forward, y left),
``OwnVehicle(x_min, x_max, y_min, y_max)``. ``CAR_ROOF`` is the vehicle the bundled models are trained for: the
simulator puts a hatchback, sedan or SUV 3.9-4.9 m long and 1.7-1.95 m wide under a roof sensor that sits 5% of the
length behind to 15% ahead of its middle, with a rig whose fixtures reach up to 0.3 m beyond the body's sides
(data/sim/ego_body.py); the rectangle is a mid-size one of those, 4.4 m long with the sensor 0.2 m ahead of its
middle, 1.8 m wide plus 0.3 m of rig on either side. A robot of another size gives its own; a sensor on no vehicle
(a pole, a hand-held rig), none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: A box with at least this share of its BEV area on the vehicle's footprint is dropped.
OVERLAP = 0.25


@dataclass(frozen=True)
class OwnVehicle:
    """The footprint of the sensor's vehicle in the model frame (metres)."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def __post_init__(self) -> None:
        values = (self.x_min, self.x_max, self.y_min, self.y_max)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"the own vehicle's footprint must be finite numbers, got {list(values)}")
        if not (self.x_min < 0.0 < self.x_max and self.y_min < 0.0 < self.y_max):
            raise ValueError(f"the own vehicle's footprint [x_min, x_max, y_min, y_max] = {list(values)} must hold "
                             "the sensor (x_min < 0 < x_max, y_min < 0 < y_max): the vehicle carries it; e.g. "
                             f"{CAR_ROOF.as_list()} for a car with the sensor on its roof")

    @classmethod
    def parse(cls, values: Sequence[float]) -> "OwnVehicle | None":
        """From [x_min, x_max, y_min, y_max]; four zeros (or nothing) mean no vehicle: None."""
        values = [float(v) for v in values]
        if not values or values == [0.0] * 4:
            return None
        if len(values) != 4:
            raise ValueError(f"the own vehicle's footprint takes 4 numbers [x_min, x_max, y_min, y_max], got "
                             f"{len(values)}; four zeros for none")
        return cls(*values)

    def as_list(self) -> list[float]:
        return [self.x_min, self.x_max, self.y_min, self.y_max]

    def box(self) -> np.ndarray:
        """(1, 7) the footprint as a box (x, y, z, dx, dy, dz, yaw); z and its height do not matter in BEV."""
        return np.array([[(self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2, 0.0,
                          self.x_max - self.x_min, self.y_max - self.y_min, 1.0, 0.0]], np.float32)

    def covers(self, boxes: np.ndarray) -> np.ndarray:
        """(K,) bool: which of the (K, 7) boxes lie on the footprint by at least OVERLAP of their BEV area."""
        from sparsekd_core.geometry.iou import intersection_bev  # torch: loaded when boxes are judged, so the
        # commands that take --own-vehicle answer --help without it

        boxes = np.asarray(boxes, np.float32).reshape(-1, 7)
        if not len(boxes):
            return np.zeros(0, bool)
        area = np.maximum(boxes[:, 3] * boxes[:, 4], 1e-6)
        return intersection_bev(boxes, self.box())[:, 0] >= OVERLAP * area


#: The vehicle the bundled models are trained for (see the module docstring); the node's default.
CAR_ROOF = OwnVehicle(-2.4, 2.0, -1.2, 1.2)
