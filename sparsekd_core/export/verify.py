"""Numerical checks of exported files: onnxruntime on the files against torch on the same voxels, per output map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backends.graphs import HEAD_MAPS, head_maps
from ..backends.inputs import graph_inputs
from ..backends.ort_runner import import_onnxruntime, session_options
from ..ops.voxelize import VoxelBatch, Voxelizer
from .autoware import (ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUT, HEAD_OUTPUTS, MAX_POINTS_PER_PILLAR,
                       AutowareLayout, autoware_head_maps, encoder_input, scatter)


def _session(path: str | Path):
    return import_onnxruntime().InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def _max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} from onnxruntime, {b.shape} from torch")
    return float(np.abs(a - b).max()) if a.size else 0.0


@torch.no_grad()
def check_dense_file(model: torch.nn.Module, path: str | Path, points: torch.Tensor) -> dict[str, float]:
    """Max |onnxruntime - torch| per head map for the dense ONNX at ``path`` on ``points`` (one cloud)."""
    model = model.cpu().eval()
    vb = model.voxelizer_test([points])
    (inputs,) = graph_inputs(model, vb, model.cfg.is_pillar)
    sess = _session(path)
    got = sess.run(list(HEAD_MAPS), {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})
    want = head_maps(model.forward_voxels(vb).head)
    return {name: _max_abs(g, w.numpy()) for name, g, w in zip(HEAD_MAPS, got, want)}


def autoware_voxels(model: torch.nn.Module, points: torch.Tensor) -> VoxelBatch:
    """The pillars Autoware's preprocessing would give the encoder: at most 32 points per pillar, and only
    x, y, z (the model's other point features zero, as the exported encoder sees them)."""
    vox = model.cfg.voxelization
    voxelizer = Voxelizer(vox.voxel_size, vox.point_cloud_range, min(vox.max_points_per_voxel, MAX_POINTS_PER_PILLAR),
                          vox.max_voxels_test, len(model.cfg.point_features))
    pts = points.clone()
    pts[:, 3:] = 0
    return voxelizer([pts])


@torch.no_grad()
def check_autoware_files(model: torch.nn.Module, encoder_path: str | Path, head_path: str | Path,
                         layout: AutowareLayout, points: torch.Tensor) -> tuple[dict[str, float], dict]:
    """Run Autoware's pipeline on the exported files with onnxruntime (its encoder input and scatter
    reproduced in torch) and torch on the same pillars.

    Returns (max |onnxruntime - torch| for pillar_features and each of the six head maps, the onnxruntime
    head maps by name).
    """
    model = model.cpu().eval()
    vb = autoware_voxels(model, points)
    enc = _session(encoder_path)
    head = _session(head_path)
    feats = encoder_input(vb, layout.voxel_size, layout.point_cloud_range)
    (pillars,) = enc.run([ENCODER_OUTPUT], {ENCODER_INPUT: feats.numpy()})
    spatial = scatter(torch.from_numpy(pillars), vb.coords, layout.grid_xy)
    got = dict(zip(HEAD_OUTPUTS, head.run(list(HEAD_OUTPUTS), {HEAD_INPUT: spatial.numpy()})))
    want_pillars = model.vfe(vb)
    want = dict(zip(HEAD_OUTPUTS, autoware_head_maps(model.forward_voxels(vb).head)))
    diffs = {ENCODER_OUTPUT: _max_abs(pillars[:, 0, :], want_pillars.numpy())}
    diffs.update({name: _max_abs(got[name], want[name].numpy()) for name in HEAD_OUTPUTS})
    return diffs, got
