"""Small model configs for training-step tests: a few seconds a step on one CPU thread."""
from __future__ import annotations

#: cp_voxel_xxs_sim on 0.2 m voxels over a 12.8 m square: goes through spconv and the dense 2D part
TINY_VOXEL = """\
base: cp_voxel_xxs_sim
voxelization:
  voxel_size: [0.2, 0.2, 0.1]
  point_cloud_range: [0.0, -6.4, -3.0, 12.8, 6.4, 1.0]
"""
