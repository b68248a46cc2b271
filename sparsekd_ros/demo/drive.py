"""The demo's simulated drive: ``sparsekd-sim --sequence`` through its Python API, in KITTI layout.

The whole drive goes to the val split (it is evaluation data), so its frames are in time order and
its labels carry what the KITTI metric needs (2D boxes, truncation, occlusion from the simulator's
KITTI-like camera).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsekd_core.data.infos import FrameInfo
from sparsekd_core.data.kitti_format import KittiLayout

__all__ = ["Drive", "simulate_drive"]

SPLIT = "val"


@dataclass
class Drive:
    """A simulated drive on disk.

    root: the KITTI root (root/training/velodyne/NNNNNN.bin ...). infos: per frame, in time order, the
    labels as the metrics take them. points: the frames' point files (float32 x y z intensity 0..1).
    rate_hz: the sensor rate. sim_seconds: wall time of the simulation.
    """

    root: Path
    infos: list[FrameInfo]
    points: list[Path]
    rate_hz: float
    sim_seconds: float

    def __len__(self) -> int:
        return len(self.infos)

    def gt(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``'s labelled (M, 7) LiDAR boxes and names, DontCare left out."""
        annos = self.infos[i].annos
        keep = annos.names != "DontCare"
        return annos.boxes_lidar[keep], annos.names[keep]


def simulate_drive(out: str | Path, frames: int = 100, seed: int = 0, preset: str = "hdl64",
                   progress: bool = True, workers: int | None = None) -> Drive:
    """Simulate a ``frames``-frame 10 Hz drive into ``out``/kitti and read its labels back."""
    from sparsekd_core.data.kitti_infos import build_kitti_infos
    from sparsekd_core.data.sim.generate import generate
    from sparsekd_core.data.sim.sensor import get_preset

    out = Path(out)
    summary = generate(out, frames=frames, preset=preset, fmt="kitti", seed=seed, val_fraction=1.0, sequence=True,
                       progress=progress, workers=workers)
    root = out / "kitti"
    infos = build_kitti_infos(root, SPLIT, workers=2, progress=False)
    layout = KittiLayout(root, "training")
    points = [layout.points_path(info.frame_id) for info in infos]
    return Drive(root, infos, points, get_preset(preset).rate_hz, summary.seconds)
