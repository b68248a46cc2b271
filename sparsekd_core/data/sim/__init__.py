"""Simulated LiDAR scenes: generated streets, road users and a spinning LiDAR, written as KITTI/Waymo.

Modules, from the bottom up: ``version`` (which simulator made a street), ``meshes`` (triangle meshes from numpy
templates), ``sizes`` (box sizes from KITTI/Waymo/nuScenes statistics, vehicle body types), ``actors`` (road users
and unlabelled look-alikes: meshes, class names; pedalling riders, ``--pedalling-riders``; real bicycles,
``--real-bicycles``), ``materials`` (the world's reflectivities), ``clutter`` (dense person-sized sidewalk clutter,
``--street-clutter``), ``road_furniture`` (islands, posts, cones, boards, bins on the carriageway,
``--road-furniture``), ``world`` (the static street, its clutter and furniture), ``placement`` (road users without
overlaps), ``ego_body`` (the recording vehicle and its rig under a roof sensor), ``raycast`` and ``raycast_torch``
(the ray casters: open3d, or plain torch on CPU or CUDA), ``edge_returns`` (mixed pixels on silhouettes,
``--edge-returns``), ``sensor`` (presets, mounting, the scan, intensity, ray drop), ``scene`` (snapshot frames),
``sequence`` (a 10 Hz drive), ``writer`` (KITTI/Waymo files), ``preview`` (bird's-eye PNGs), ``generate`` (whole
datasets; the ``sparsekd-sim`` command).

Quick use::

    from sparsekd_core.data.sim import SnapshotScene, DriveScene, PRESETS, generate
    frame = SnapshotScene(PRESETS["hdl64"], seed=0, scene_index=0).frame(0)
    frame.points, frame.boxes, frame.kinds, frame.num_points
"""
from sparsekd_core.data.sim.generate import generate
from sparsekd_core.data.sim.scene import SimFrame, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS, SensorPreset, get_preset
from sparsekd_core.data.sim.sequence import DriveScene

__all__ = ["generate", "SimFrame", "SnapshotScene", "DriveScene", "PRESETS", "SensorPreset", "get_preset"]
