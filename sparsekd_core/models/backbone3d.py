"""The sparse 3D backbones of CenterPoint-Voxel (spconv), with a width multiplier.

VoxelResBackBone8x (channels = filters x width): conv_input (SubM) -> conv1 (residual blocks) -> conv2/conv3/conv4
(each a stride-2 SparseConv3d then residual blocks) -> conv_out (SparseConv3d (3,1,1) stride (2,1,1)).
``layers[i]`` counts the blocks of stage i. Output stride 8 in x/y.
VoxelBackBone8x: the same stages with plain SubM conv + BN + ReLU blocks instead of residual ones
(OpenPCDet's filters [16, 16, 32, 64, 64, 128], layers [1, 1, 3, 3, 3, 1]).
"""
from __future__ import annotations

from torch import nn

from ..ops.spconv_compat import spconv
from .fp32_islands import in_fp32_under_cpu_autocast


def _bn(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)


def _conv_bn_relu(cin, cout, kernel, indice_key, stride=1, padding=0, subm=True) -> spconv.SparseSequential:
    if subm:
        conv = spconv.SubMConv3d(cin, cout, kernel, bias=False, indice_key=indice_key)
    else:
        conv = spconv.SparseConv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False, indice_key=indice_key)
    return spconv.SparseSequential(conv, _bn(cout), nn.ReLU())


class SparseBasicBlock(spconv.SparseModule):
    """Residual block of two 3x3x3 submanifold convs (same channels in and out).

    The convs carry no bias: BN follows each, and spconv's CPU path cannot add one.
    """

    def __init__(self, channels: int, indice_key: str):
        super().__init__()
        self.conv1 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=indice_key)
        self.bn1 = _bn(channels)
        self.conv2 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=indice_key)
        self.bn2 = _bn(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        out = out.replace_feature(self.relu(self.bn2(out.features) + x.features))
        return out


class VoxelResBackBone8x(nn.Module):
    """Sparse voxels (V, C_in) on grid (z, y, x) -> sparse tensor at stride (16ish in z, 8 in x/y)."""

    def _block(self, cin: int, cout: int, stage: int):
        """One block of stage ``stage`` (1..4) after its entry: a residual block here."""
        assert cin == cout, "residual blocks keep their input's channels"
        return SparseBasicBlock(cout, f"res{stage}")

    def __init__(self, in_channels: int, grid_size_xyz, filters: list[int], layers: list[int]):
        super().__init__()
        f = filters
        # z gets one extra cell so the stride-2 convs end at 2 cells of height (as in the reference).
        self.sparse_shape = [int(grid_size_xyz[2]) + 1, int(grid_size_xyz[1]), int(grid_size_xyz[0])]
        self.conv_input = _conv_bn_relu(in_channels, f[0], 3, "subm1")
        self.conv1 = spconv.SparseSequential(*[self._block(f[0] if j == 0 else f[1], f[1], 1)
                                               for j in range(layers[1])])
        stages = []
        for i, (key, pad) in enumerate([("2", 1), ("3", 1), ("4", (0, 1, 1))], start=2):
            mods = [_conv_bn_relu(f[i - 1], f[i], 3, f"spconv{key}", stride=2, padding=pad, subm=False)]
            mods += [self._block(f[i], f[i], i) for _ in range(layers[i] - 1)]
            stages.append(spconv.SparseSequential(*mods))
        self.conv2, self.conv3, self.conv4 = stages
        self.conv_out = spconv.SparseSequential(
            spconv.SparseConv3d(f[4], f[5], (3, 1, 1), stride=(2, 1, 1), padding=0, bias=False,
                                indice_key="spconv_down2"),
            _bn(f[5]),
            nn.ReLU(),
        )
        self.out_channels = f[5]

    def forward(self, features, coords, batch_size: int):
        """features (V, C_in), coords (V, 4) int32 (b, z, y, x) -> SparseConvTensor (stride 8 in x/y)."""
        return in_fp32_under_cpu_autocast(self._forward, features, coords, batch_size=batch_size)

    def _forward(self, features, coords, batch_size: int):
        x = spconv.SparseConvTensor(features, coords.int(), self.sparse_shape, batch_size)
        x = self.conv_input(x)
        x = self.conv1(x)
        x = self.conv4(self.conv3(self.conv2(x)))
        return self.conv_out(x)


class VoxelBackBone8x(VoxelResBackBone8x):
    """VoxelResBackBone8x's stages with plain blocks: SubM conv 3x3x3 + BN + ReLU (OpenPCDet's post_act_block)."""

    def _block(self, cin: int, cout: int, stage: int):
        return _conv_bn_relu(cin, cout, 3, f"subm{stage}")
