"""CenterHead: per-class centre heatmaps and box regression on the BEV map, its loss and its decoding."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import HeadConfig
from .losses import clamped_sigmoid, focal_loss, reg_l1_loss
from .targets import CenterTargets

# Regression outputs in the order of the 8 regression codes (and of code_weights).
REG_HEADS = (("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2))


@dataclass
class HeadOutput:
    """Raw head maps on the (H, W) BEV grid.

    heatmap: (B, C, H, W) logits; center: (B, 2, H, W) sub-cell offset; center_z: (B, 1, H, W) metres;
    dim: (B, 3, H, W) log extents; rot: (B, 2, H, W) (cos yaw, sin yaw).
    """

    heatmap: torch.Tensor
    center: torch.Tensor
    center_z: torch.Tensor
    dim: torch.Tensor
    rot: torch.Tensor

    def regression(self) -> torch.Tensor:
        """(B, 8, H, W): center, center_z, dim, rot stacked in code order."""
        return torch.cat([self.center, self.center_z, self.dim, self.rot], dim=1)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU())


class CenterHead(nn.Module):
    """(B, C_in, H, W) BEV features -> HeadOutput. One shared conv, then a small conv tower per output."""

    def __init__(self, in_channels: int, num_classes: int, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.shared_channels
        self.shared_conv = _conv_bn_relu(in_channels, ch)
        self.heads = nn.ModuleDict()
        outputs = (("heatmap", num_classes, cfg.num_hm_conv),) + tuple((n, c, cfg.num_reg_conv) for n, c in REG_HEADS)
        for name, out_ch, num_conv in outputs:
            layers = [_conv_bn_relu(ch, ch) for _ in range(num_conv - 1)]
            final = nn.Conv2d(ch, out_ch, 3, padding=1, bias=True)
            layers.append(final)
            self.heads[name] = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self):
        for name, head in self.heads.items():
            if name == "heatmap":
                # default init, and every cell starts at p = sigmoid(-2.19) = 0.1 so the focal loss is stable
                nn.init.constant_(head[-1].bias, -2.19)
                continue
            for m in head.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        x = self.shared_conv(x)
        return HeadOutput(**{name: head(x) for name, head in self.heads.items()})

    def loss(self, out: HeadOutput, targets: CenterTargets) -> dict[str, torch.Tensor]:
        """Loss terms (scalars): hm (focal), loc (weighted L1), and their weighted sum 'total'."""
        lc = self.cfg.loss
        hm = focal_loss(clamped_sigmoid(out.heatmap), targets.heatmap) * lc.cls_weight
        per_code = reg_l1_loss(out.regression().float(), targets.indices, targets.mask, targets.boxes)
        weights = per_code.new_tensor(lc.code_weights)
        loc = (per_code * weights).sum() * lc.loc_weight
        return {"hm": hm, "loc": loc, "total": hm + loc}
