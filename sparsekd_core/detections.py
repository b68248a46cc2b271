"""The result of a detector on one point cloud: plain numpy, no torch, no ROS."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np


@dataclass
class Detections:
    """3D boxes in the frame of the points they were found in (REP 103, see docs/architecture.md).

    boxes:  (M, 7) float32, (x, y, z, dx, dy, dz, yaw), gravity centre, full extents.
    scores: (M,) float32 in [0, 1].
    labels: (M,) int64, indices into ``class_names``.
    class_names: names of the model's classes, from the checkpoint.
    velocities: (M, 2) float32 (vx, vy) in m/s in the same frame, for models that regress velocity; else None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: Sequence[str] = field(default_factory=tuple)
    velocities: Optional[np.ndarray] = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 7)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        if self.velocities is not None:
            self.velocities = np.asarray(self.velocities, dtype=np.float32).reshape(-1, 2)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)) or \
                (self.velocities is not None and len(self.velocities) != len(self.boxes)):
            raise ValueError(
                f"Detections: boxes {self.boxes.shape}, scores {self.scores.shape}, labels {self.labels.shape}"
                f"{'' if self.velocities is None else f' and velocities {self.velocities.shape}'} must have the "
                "same length"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, class_names: Sequence[str] = (), with_velocity: bool = False) -> "Detections":
        return cls(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names,
                   np.zeros((0, 2), np.float32) if with_velocity else None)

    @property
    def names(self) -> list[str]:
        """Class name of each box."""
        return [self.class_names[i] for i in self.labels]

    def select(self, mask: np.ndarray) -> "Detections":
        """The detections where ``mask`` (bool or index array) holds."""
        return Detections(self.boxes[mask], self.scores[mask], self.labels[mask], self.class_names,
                          None if self.velocities is None else self.velocities[mask])

    def count_per_class(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}

    def to_dict(self) -> dict:
        """JSON-ready form (``velocities`` only for models that regress them)."""
        out = {
            "class_names": list(self.class_names),
            "boxes": self.boxes.tolist(),
            "scores": self.scores.tolist(),
            "labels": self.labels.tolist(),
            "names": self.names,
        }
        if self.velocities is not None:
            out["velocities"] = self.velocities.tolist()
        return out
