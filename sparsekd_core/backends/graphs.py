"""The dense part of a detector as a torch module with plain tensor inputs and outputs, ready for ONNX.

- Pillar models: ``voxels, num_points, coords`` of one cloud -> head maps. The graph holds the pillar
  encoder, the scatter to the BEV canvas, the 2D backbone and the head: everything after voxelisation.
- Voxel models: the BEV map -> head maps (2D backbone and head). The sparse 3D backbone before it stays
  spconv (sparse convolutions have no ONNX operator).

The head maps come out head by head (one task head per class group), each in :data:`HEAD_MAPS` order (the
fields of ``HeadOutput``; ``vel`` only for models with velocity, ``direction`` only for ``heading: axis_dir``);
:func:`output_names` names them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from ..config import ModelConfig
from ..models.center_head import HeadOutput
from ..models.vfe import PFNLayer, PillarVFE
from ..ops.voxelize import VoxelBatch

HEAD_MAPS = ("heatmap", "center", "center_z", "dim", "rot", "vel", "direction")
PILLAR_INPUTS = ("voxels", "num_points", "coords")
BEV_INPUT = "bev_features"


def map_names(cfg: ModelConfig) -> tuple[str, ...]:
    """The maps of one task head: HEAD_MAPS, without vel for a model that regresses no velocity and without
    direction for a model with the reference's (cos t, sin t) heading."""
    return tuple(m for m in HEAD_MAPS if (m != "vel" or cfg.head.velocity)
                 and (m != "direction" or cfg.head.heading == "axis_dir"))


def output_names(cfg: ModelConfig) -> tuple[str, ...]:
    """Graph output names: the maps of each task head in order, suffixed _<head> when there are several."""
    groups = len(cfg.class_groups())
    return tuple(m if groups == 1 else f"{m}_{i}" for i in range(groups) for m in map_names(cfg))


def head_maps(outs: list[HeadOutput], cfg: ModelConfig) -> tuple[torch.Tensor, ...]:
    """Every task head's maps, flat, in :func:`output_names` order."""
    return tuple(getattr(out, m) for out in outs for m in map_names(cfg))


def head_outputs(maps, cfg: ModelConfig) -> list[HeadOutput]:
    """Maps in :func:`output_names` order (any backend's outputs) -> one HeadOutput per task head."""
    maps, n = list(maps), len(map_names(cfg))
    return [HeadOutput(**dict(zip(map_names(cfg), maps[i:i + n]))) for i in range(0, len(maps), n)]


def _fold_zero_pads(seq: nn.Sequential) -> None:
    """ZeroPad2d(p) then Conv2d(padding=0) -> Conv2d(padding=p): the same sums, and one static-shaped op
    instead of a Pad whose pads the TorchScript exporter computes at run time (unknown map shapes after it)."""
    mods = list(seq)
    for i in range(len(mods) - 1):
        pad, conv = mods[i], mods[i + 1]
        if (isinstance(pad, nn.ZeroPad2d) and isinstance(conv, nn.Conv2d) and conv.padding == (0, 0)
                and conv.padding_mode == "zeros" and len(set(pad.padding)) == 1):
            seq[i] = nn.Identity()
            conv.padding = (pad.padding[0], pad.padding[0])


def inference_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``model`` simplified for export, with the same outputs.

    Pillar-encoder BatchNorms are folded into their linears (exact in eval mode; one op fewer per point and
    layer), and zero-padding layers into the convolutions after them. Conv + BatchNorm pairs are folded by
    the ONNX exporter and by every runtime, so they are left alone.
    """
    model = copy.deepcopy(model).eval()
    for layer in model.modules():
        if isinstance(layer, PFNLayer) and isinstance(layer.norm, nn.BatchNorm1d):
            layer.linear = fuse_linear_bn_eval(layer.linear, layer.norm)
            layer.norm = nn.Identity()
        elif isinstance(layer, nn.Sequential):
            _fold_zero_pads(layer)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class PillarDenseGraph(nn.Module):
    """(voxels (V, P, F) float32, num_points (V,) int32, coords (V, 4) int32 (0, z, y, x)) of ONE cloud
    -> head maps, each (1, n, H, W)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        model = inference_copy(model)
        if not isinstance(model.vfe, PillarVFE):
            raise TypeError("PillarDenseGraph needs a pillar model")
        self.vfe, self.to_bev, self.backbone2d, self.head = model.vfe, model.to_bev, model.backbone2d, model.head
        self.cfg = model.cfg

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor):
        vb = VoxelBatch(voxels, num_points, coords, 1)
        bev = self.to_bev(self.vfe(vb), coords, 1)
        return head_maps(self.head(self.backbone2d(bev)), self.cfg)


class BevDenseGraph(nn.Module):
    """bev_features (B, C, H, W) float32 -> head maps, each (B, n, H', W')."""

    def __init__(self, model: nn.Module):
        super().__init__()
        model = inference_copy(model)
        self.backbone2d, self.head = model.backbone2d, model.head
        self.cfg = model.cfg

    def forward(self, bev_features: torch.Tensor):
        return head_maps(self.head(self.backbone2d(bev_features)), self.cfg)


@dataclass
class DenseGraph:
    """A dense graph with its ONNX names, dynamic axes and example inputs (from a real voxelisation)."""

    module: nn.Module
    input_names: tuple[str, ...]
    example_inputs: tuple[torch.Tensor, ...]
    dynamic_axes: dict[str, dict[int, str]]
    output_names: tuple[str, ...]

    @property
    def takes_voxels(self) -> bool:
        return self.input_names == PILLAR_INPUTS


def example_points(model: nn.Module, n: int = 64) -> torch.Tensor:
    """A few points spread over the model's range (enough to give a non-empty voxelisation)."""
    r = torch.tensor(model.cfg.voxelization.point_cloud_range, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    pts = torch.zeros(n, len(model.cfg.point_features))
    pts[:, :3] = r[:3] + (r[3:] - r[:3]) * (0.05 + 0.9 * torch.rand(n, 3, generator=g))
    return pts


def dense_graph(model: nn.Module) -> DenseGraph:
    """The exportable dense part of a CenterPoint model, on the CPU (anchor-head models are refused)."""
    if model.cfg.is_anchor:
        from . import BackendError

        raise BackendError(f"{model.cfg.name} has an anchor head (SECOND / PointPillars): its dense graph cannot be "
                           "exported yet, so it runs on backend torch only (and has no ONNX or Autoware export)")
    model = model.cpu().eval()
    with torch.no_grad():
        vb = model.voxelizer_test([example_points(model)])
        if model.cfg.is_pillar:
            inputs = (vb.voxels, vb.num_points.int(), vb.coords.int())
            axes = {"voxels": {0: "num_voxels"}, "num_points": {0: "num_voxels"}, "coords": {0: "num_voxels"}}
            return DenseGraph(PillarDenseGraph(model), PILLAR_INPUTS, inputs, axes, output_names(model.cfg))
        bev = model.bev_input(vb)
    return DenseGraph(BevDenseGraph(model), (BEV_INPUT,), (bev,), {BEV_INPUT: {0: "batch"}}, output_names(model.cfg))
