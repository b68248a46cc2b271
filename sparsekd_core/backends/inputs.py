"""What a dense graph is fed for a VoxelBatch, and how its outputs become HeadOutputs again."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..config import ModelConfig
from ..models.center_head import HeadOutput
from ..ops.voxelize import VoxelBatch
from .graphs import head_outputs


def graph_inputs(model: torch.nn.Module, vb: VoxelBatch, takes_voxels: bool) -> list[tuple[torch.Tensor, ...]]:
    """One input tuple per run of the graph.

    Pillar graphs take one cloud: the batch is split by the coords' batch column (set to 0 in each part).
    BEV graphs take the whole batch's BEV map, computed here by the model's torch (spconv) stages.
    """
    if not takes_voxels:
        return [(model.bev_input(vb).contiguous(),)]
    if vb.batch_size == 1:
        return [(vb.voxels.contiguous(), vb.num_points.int(), vb.coords.int())]
    parts = []
    for b in range(vb.batch_size):
        keep = vb.coords[:, 0] == b
        coords = vb.coords[keep].int()
        coords[:, 0] = 0
        parts.append((vb.voxels[keep].contiguous(), vb.num_points[keep].int(), coords))
    return parts


def join_outputs(runs: Iterable[Sequence[torch.Tensor]], cfg: ModelConfig) -> list[HeadOutput]:
    """Output tuples of successive runs (graphs.output_names order) -> one HeadOutput per task head, the runs
    concatenated along the batch."""
    runs = list(runs)
    if len(runs) == 1:
        return head_outputs(runs[0], cfg)
    return head_outputs([torch.cat(maps, dim=0) for maps in zip(*runs)], cfg)
