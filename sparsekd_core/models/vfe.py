"""Voxel feature encoders: voxels (V, P, F) -> one feature vector per voxel (V, C)."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.voxelize import VoxelBatch

#: Under the CPU's bf16 autocast (training), the PointNet's matmuls see the pillar count rounded up to a multiple of
#: this: oneDNN builds and caches a bf16 matmul primitive per input shape, and pillar counts differ every step (an
#: unbounded cache grew a cp_pillar_sim360 run by ~15 MB a step). Rounded, a run meets a few dozen shapes.
BF16_PILLAR_BUCKET = 2048


def _bucketed_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)`` for (V, P, C) ``x``; under CPU autocast computed on V rounded up to BF16_PILLAR_BUCKET rows,
    the extra ones zero and cut off again: what comes back holds x's V rows only (BatchNorm after it sees none)."""
    v = x.shape[0]
    if not torch.is_autocast_enabled("cpu") or v == 0:
        return linear(x)
    rows = -(-v // BF16_PILLAR_BUCKET) * BF16_PILLAR_BUCKET
    return linear(nn.functional.pad(x, (0, 0, 0, 0, 0, rows - v)))[:v]


class MeanVFE(nn.Module):
    """Mean of the points in each voxel: (V, P, F) -> (V, F). No parameters."""

    def __init__(self, num_point_features: int):
        super().__init__()
        self.out_channels = num_point_features

    def forward(self, vb: VoxelBatch) -> torch.Tensor:
        summed = vb.voxels.sum(dim=1)
        return summed / vb.num_points.clamp(min=1).to(summed.dtype).unsqueeze(1)


class PFNLayer(nn.Module):
    """PointNet layer of PointPillars: linear + BN + ReLU per point, then max over the pillar.

    Non-final layers concatenate each point's feature with the pillar max, so they use half the
    channels per point.
    """

    def __init__(self, in_channels: int, out_channels: int, use_norm: bool, last: bool):
        super().__init__()
        self.last = last
        units = out_channels if last else out_channels // 2
        self.linear = nn.Linear(in_channels, units, bias=not use_norm)
        self.norm = nn.BatchNorm1d(units, eps=1e-3, momentum=0.01) if use_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (V, P, C_in) -> (V, 1, C_out) when last, else (V, P, C_out)."""
        x = _bucketed_linear(self.linear, x)
        if not isinstance(self.norm, nn.Identity):  # Identity once the norm is folded into the linear (export)
            v, p, c = x.shape
            x = self.norm(x.reshape(v * p, c)).reshape(v, p, c)
        x = torch.relu(x)
        x_max = x.max(dim=1, keepdim=True).values
        if self.last:
            return x_max
        return torch.cat([x, x_max.expand_as(x)], dim=2)


class PillarVFE(nn.Module):
    """PointPillars encoder: per point (features, offset to pillar mean, offset to pillar centre) -> PFN layers.

    Input points carry absolute x y z and the model's features; output (V, filters[-1]).
    """

    def __init__(self, num_point_features: int, filters: list[int], voxel_size, point_cloud_range,
                 use_norm: bool = True, with_distance: bool = False):
        super().__init__()
        self.with_distance = with_distance
        in_ch = num_point_features + 6 + (1 if with_distance else 0)
        chans = [in_ch] + list(filters)
        self.pfn_layers = nn.ModuleList(
            PFNLayer(chans[i], chans[i + 1], use_norm, last=(i == len(chans) - 2)) for i in range(len(chans) - 1)
        )
        self.register_buffer("voxel_size", torch.tensor(voxel_size, dtype=torch.float32), persistent=False)
        self.register_buffer("offset", torch.tensor(
            [voxel_size[i] / 2 + point_cloud_range[i] for i in range(3)], dtype=torch.float32), persistent=False)
        self.in_channels = in_ch
        self.out_channels = filters[-1]

    def decorate(self, vb: VoxelBatch) -> torch.Tensor:
        """(V, P, F) voxels -> (V, P, in_channels) per-point inputs of the PFN layers, padded points zero.

        Per point: its own features, its offset to the pillar's point mean (3), its offset to the pillar
        centre (3) and, with ``with_distance``, its distance to the sensor.
        """
        voxels, num = vb.voxels, vb.num_points
        p = voxels.shape[1]
        mask = (torch.arange(p, device=voxels.device)[None, :] < num[:, None]).unsqueeze(-1).to(voxels.dtype)
        xyz = voxels[:, :, :3]
        mean = (xyz * mask).sum(dim=1, keepdim=True) / num.clamp(min=1).to(voxels.dtype).view(-1, 1, 1)
        # coords are (b, z, y, x); pillar centre in metres
        centre = vb.coords[:, [3, 2, 1]].to(voxels.dtype) * self.voxel_size + self.offset
        parts = [voxels, xyz - mean, xyz - centre[:, None, :]]
        if self.with_distance:
            parts.append(xyz.norm(dim=2, keepdim=True))
        return torch.cat(parts, dim=2) * mask  # padded points contribute zeros

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(V, P, in_channels) decorated points -> (V, 1, filters[-1]): the PFN layers, max over each pillar."""
        for layer in self.pfn_layers:
            x = layer(x)
        return x

    def forward(self, vb: VoxelBatch) -> torch.Tensor:
        return self.encode(self.decorate(vb)).squeeze(1)
