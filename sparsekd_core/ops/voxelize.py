"""Voxelisation with spconv's PointToVoxel (CPU and CUDA): points -> voxels, per sample, batched."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .spconv_compat import PointToVoxel


@dataclass
class VoxelBatch:
    """Voxels of a batch of point clouds.

    voxels:     (V, P, F) float32, the points of each voxel padded with zeros (P = max points per voxel).
    num_points: (V,) int32, real points per voxel.
    coords:     (V, 4) int32, (batch index, z, y, x) voxel indices.
    batch_size: number of point clouds.
    """

    voxels: torch.Tensor
    num_points: torch.Tensor
    coords: torch.Tensor
    batch_size: int


class Voxelizer:
    """Wraps spconv's PointToVoxel for one grid; one generator per device, created on first use."""

    def __init__(self, voxel_size, point_cloud_range, max_points_per_voxel: int, max_voxels: int, num_features: int):
        self.voxel_size = [float(v) for v in voxel_size]
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.max_points_per_voxel = int(max_points_per_voxel)
        self.max_voxels = int(max_voxels)
        self.num_features = int(num_features)
        self._generators: dict[str, PointToVoxel] = {}

    def _generator(self, device: torch.device) -> PointToVoxel:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = PointToVoxel(
                vsize_xyz=self.voxel_size,
                coors_range_xyz=self.point_cloud_range,
                num_point_features=self.num_features,
                max_num_voxels=self.max_voxels,
                max_num_points_per_voxel=self.max_points_per_voxel,
                device=device,
            )
        return self._generators[key]

    def __getstate__(self) -> dict:
        """A copy (pickle, deepcopy, a worker process) leaves the generators behind: they are scratch buffers sized
        for ``max_voxels`` (~120 MB for cp_voxel_s), rebuilt on first use, and a copy must not share them."""
        return {**self.__dict__, "_generators": {}}

    def __call__(self, points: list[torch.Tensor]) -> VoxelBatch:
        """points: list of (N_i, F) float32 tensors, all on one device."""
        device = points[0].device if points else torch.device("cpu")
        gen = self._generator(device)
        voxels, nums, coords = [], [], []
        for b, pts in enumerate(points):
            if pts.shape[0] == 0:
                continue
            v, c, n = gen(pts.contiguous())
            voxels.append(v)
            nums.append(n)
            coords.append(torch.nn.functional.pad(c, (1, 0), value=b))
        if not voxels:
            p, f = self.max_points_per_voxel, self.num_features
            return VoxelBatch(
                torch.zeros((0, p, f), device=device), torch.zeros(0, dtype=torch.int32, device=device),
                torch.zeros((0, 4), dtype=torch.int32, device=device), len(points),
            )
        return VoxelBatch(torch.cat(voxels), torch.cat(nums).int(), torch.cat(coords).int(), len(points))
