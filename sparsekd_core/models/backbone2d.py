"""BaseBEVBackbone: a 2D CNN over the BEV map with multi-scale blocks, upsampled and concatenated."""
from __future__ import annotations

import torch
from torch import nn


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class BaseBEVBackbone(nn.Module):
    """(B, C_in, H, W) -> (B, sum(upsample_filters), H / s0, W / s0).

    Level i: a stride-``strides[i]`` 3x3 conv then ``layers[i]`` 3x3 convs with ``filters[i]`` channels;
    each level is brought back to the first level's resolution by a transposed conv (``upsample_strides[i]``)
    with ``upsample_filters[i]`` channels; the levels are concatenated.
    """

    def __init__(self, in_channels: int, layers, strides, filters, upsample_strides, upsample_filters):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        cin = in_channels
        for n, stride, c, up, cup in zip(layers, strides, filters, upsample_strides, upsample_filters):
            mods = [nn.ZeroPad2d(1), nn.Conv2d(cin, c, 3, stride=stride, padding=0, bias=False), _bn2d(c), nn.ReLU()]
            for _ in range(n):
                mods += [nn.Conv2d(c, c, 3, padding=1, bias=False), _bn2d(c), nn.ReLU()]
            self.blocks.append(nn.Sequential(*mods))
            if up >= 1:
                up = int(up)
                de = nn.ConvTranspose2d(c, cup, up, stride=up, bias=False)
            else:
                k = int(round(1 / up))
                de = nn.Conv2d(c, cup, k, stride=k, bias=False)
            self.deblocks.append(nn.Sequential(de, _bn2d(cup), nn.ReLU()))
            cin = c
        self.out_channels = sum(upsample_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ups = []
        for block, deblock in zip(self.blocks, self.deblocks):
            x = block(x)
            ups.append(deblock(x))
        return torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]
