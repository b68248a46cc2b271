"""Map to bird's-eye view: sparse 3D features or pillar features -> a dense (B, C, H, W) map."""
from __future__ import annotations

import torch
from torch import nn


class HeightCompression(nn.Module):
    """Dense-ify the 3D backbone output and fold height into channels: (B, C, D, H, W) -> (B, C*D, H, W)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.out_channels = num_features

    def forward(self, sparse_tensor) -> torch.Tensor:
        dense = sparse_tensor.dense()
        b, c, d, h, w = dense.shape
        if c * d != self.out_channels:
            raise ValueError(f"HeightCompression: got {c} x {d} = {c * d} BEV channels, "
                             f"config says {self.out_channels}")
        return dense.view(b, c * d, h, w)


class PointPillarScatter(nn.Module):
    """Scatter pillar features (V, C) to their cells of a (B, C, ny, nx) canvas."""

    def __init__(self, num_features: int, grid_size_xyz):
        super().__init__()
        self.out_channels = num_features
        self.nx, self.ny = int(grid_size_xyz[0]), int(grid_size_xyz[1])

    def forward(self, pillar_features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        c = self.out_channels  # a constant, not the tensor's shape: exported graphs keep static map shapes
        canvas = pillar_features.new_zeros(batch_size, self.ny * self.nx, c)
        cell = coords[:, 2].long() * self.nx + coords[:, 3].long()  # coords are (b, z, y, x)
        canvas[coords[:, 0].long(), cell] = pillar_features
        return canvas.permute(0, 2, 1).reshape(batch_size, c, self.ny, self.nx).contiguous()


def crop_windows(bev: torch.Tensor, offsets: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) map -> (B, C, h, w): per sample the window whose corner is at ``offsets`` (B, 2) cells
    (x, y), for training on BEV windows (data/window.py)."""
    h, w = size_hw
    crops = []
    for b in range(bev.shape[0]):
        ox, oy = int(offsets[b, 0]), int(offsets[b, 1])
        if ox < 0 or oy < 0 or oy + h > bev.shape[2] or ox + w > bev.shape[3]:
            raise ValueError(f"BEV window at cells ({ox}, {oy}) of size {w} x {h} leaves the {bev.shape[3]} x "
                             f"{bev.shape[2]} map")
        crops.append(bev[b, :, oy:oy + h, ox:ox + w])
    return torch.stack(crops)
