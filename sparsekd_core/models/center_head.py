"""CenterHead: per-class centre heatmaps and box regression on the BEV map, and its loss.

One shared conv, then one task head per class group (OpenPCDet's CLASS_NAMES_EACH_HEAD; a single group of all
classes by default). Each task head has a small conv tower per output: the heatmap of its classes and the
regression maps (centre offset, z, log dims, yaw as cos/sin, and velocity when the config asks for it); with
``heading: axis_dir`` the rot map holds the box axis (cos 2t, sin 2t) and a ``direction`` tower its front end
(models/heading.py).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch
from torch import nn

from ..config import HeadConfig
from . import heading
from .losses import clamped_sigmoid, direction_loss, focal_loss, reg_l1_loss
from .targets import CenterTargets

# Regression outputs in the order of the regression codes (and of code_weights); "vel" only with velocity.
REG_HEADS = (("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2))
VELOCITY_HEAD = ("vel", 2)
DIRECTION_HEAD = ("direction", 1)  # heading axis_dir only: logit > 0 = the other end of the axis


@dataclass
class HeadOutput:
    """Raw maps of one task head on the (H, W) BEV grid.

    heatmap: (B, C_task, H, W) logits of the task's classes; center: (B, 2, H, W) sub-cell offset;
    center_z: (B, 1, H, W) metres; dim: (B, 3, H, W) log extents; rot: (B, 2, H, W) (cos yaw, sin yaw);
    vel: (B, 2, H, W) (vx, vy) in m/s, or None for a model without velocity;
    direction: (B, 1, H, W) front-end logit of a ``heading: axis_dir`` model, whose rot is then (cos 2t, sin 2t);
    None for ``sin_cos``.
    """

    heatmap: torch.Tensor
    center: torch.Tensor
    center_z: torch.Tensor
    dim: torch.Tensor
    rot: torch.Tensor
    vel: Optional[torch.Tensor] = None
    direction: Optional[torch.Tensor] = None

    @property
    def grid_hw(self) -> tuple[int, int]:
        return tuple(self.heatmap.shape[-2:])

    def regression(self) -> torch.Tensor:
        """(B, 8 or 10, H, W): center, center_z, dim, rot (, vel) stacked in code order."""
        maps = [self.center, self.center_z, self.dim, self.rot] + ([self.vel] if self.vel is not None else [])
        return torch.cat(maps, dim=1)

    def contiguous(self) -> "HeadOutput":
        """The same maps as contiguous tensors (pillar maps come channels-last from the scatter's permute)."""
        return HeadOutput(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).contiguous())
                             for f in fields(self)})


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU())


class TaskHead(nn.ModuleDict):
    """The conv towers of one class group: (B, C, H, W) shared features -> HeadOutput.

    Initialised as the reference (OpenPCDet's SeparateHead): the heatmap's last bias at -2.19, so every cell
    starts at p = sigmoid(-2.19) = 0.1 and the focal loss is stable; every conv of a regression tower with
    kaiming_normal_ at its defaults (fan_in, gain sqrt(2)) and zero bias.
    """

    def __init__(self, channels: int, num_classes: int, cfg: HeadConfig):
        outputs = (("heatmap", num_classes, cfg.num_hm_conv),) + tuple(
            (n, c, cfg.num_reg_conv) for n, c in REG_HEADS + ((VELOCITY_HEAD,) if cfg.velocity else ())
            + ((DIRECTION_HEAD,) if cfg.heading == "axis_dir" else ()))
        towers = {}
        for name, out_ch, num_conv in outputs:
            layers = [_conv_bn_relu(channels, channels) for _ in range(num_conv - 1)]
            layers.append(nn.Conv2d(channels, out_ch, 3, padding=1, bias=True))
            towers[name] = nn.Sequential(*layers)
        super().__init__(towers)
        for name, tower in self.items():
            if name == "heatmap":
                nn.init.constant_(tower[-1].bias, -2.19)
                continue
            for m in tower.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        return HeadOutput(**{name: tower(x) for name, tower in self.items()})


class CenterHead(nn.Module):
    """(B, C_in, H, W) BEV features -> one HeadOutput per class group (``class_groups``, class indices)."""

    def __init__(self, in_channels: int, class_groups: Sequence[Sequence[int]], cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.class_groups = [list(g) for g in class_groups]
        ch = cfg.shared_channels
        self.shared_conv = _conv_bn_relu(in_channels, ch)
        self.heads = nn.ModuleList(TaskHead(ch, len(group), cfg) for group in self.class_groups)

    def forward(self, x: torch.Tensor) -> list[HeadOutput]:
        x = self.shared_conv(x)
        return [head(x) for head in self.heads]

    def loss(self, outs: Sequence[HeadOutput], targets: Sequence[CenterTargets]) -> dict[str, torch.Tensor]:
        """Loss terms (scalars) summed over the task heads, as the reference does: hm (focal), loc (weighted L1),
        with ``heading: axis_dir`` dir (binary cross-entropy of the front end at object centres, times
        loss.dir_weight), and their sum 'total'. ``targets``: one CenterTargets per head
        (BEVDetector.assign_targets)."""
        if len(outs) != len(targets):
            raise ValueError(f"CenterHead.loss: {len(outs)} head outputs but {len(targets)} target sets")
        lc = self.cfg.loss
        terms: dict[str, torch.Tensor] = {}
        for out, tg in zip(outs, targets):
            per_code = reg_l1_loss(out.regression().float(), tg.indices, tg.mask,
                                   heading.regression_targets(tg.boxes, self.cfg.heading))
            head_terms = {"hm": focal_loss(clamped_sigmoid(out.heatmap), tg.heatmap) * lc.cls_weight,
                          "loc": (per_code * per_code.new_tensor(lc.code_weights)).sum() * lc.loc_weight}
            if out.direction is not None:
                target = heading.direction_targets(tg.boxes[..., 6], tg.boxes[..., 7])
                head_terms["dir"] = direction_loss(out.direction, tg.indices, tg.mask, target) * lc.dir_weight
            terms = {k: v + terms[k] if k in terms else v for k, v in head_terms.items()}
        terms["total"] = sum(terms.values())
        return terms


def upgrade_single_head_state_dict(state_dict: dict, prefix: str = "head.") -> dict:
    """A state_dict written before multi-head support (checkpoint format 1: one head, its towers at
    ``head.heads.<output>``) with today's names (``head.heads.0.<output>``). The parameter order is unchanged,
    so optimiser states saved with it still line up."""
    old = prefix + "heads."
    outputs = {name for name, _ in REG_HEADS} | {"heatmap", VELOCITY_HEAD[0], DIRECTION_HEAD[0]}

    def rename(key: str) -> str:
        if key.startswith(old) and key[len(old):].split(".", 1)[0] in outputs:
            return old + "0." + key[len(old):]
        return key

    return {rename(k): v for k, v in state_dict.items()}
