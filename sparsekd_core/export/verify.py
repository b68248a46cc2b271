"""Numerical checks of exported files: onnxruntime on the files against torch on the same voxels, per output map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backends.graphs import head_maps, output_names
from ..backends.inputs import graph_inputs
from ..backends.ort_runner import import_onnxruntime, session_options
from ..ops.voxelize import VoxelBatch, Voxelizer
from .autoware import (ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUT, HEAD_OUTPUTS, MAX_POINTS_PER_PILLAR,
                       AutowareLayout, autoware_head_maps, encoder_input, scatter)


def _session(path: str | Path):
    return import_onnxruntime().InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def map_difference(a, b) -> float:
    """max |onnxruntime - torch| over a map, divided by the map's largest |torch value| where that exceeds 1: float32
    rounding grows with the values (a heatmap logit of -140 comes out 3.5e-4 apart from the two), so a map of large
    values is held to the same relative precision as one of small values is held to absolutely."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} from onnxruntime, {b.shape} from torch")
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max())) if a.size else 0.0


@torch.no_grad()
def check_dense_file(model: torch.nn.Module, path: str | Path, points: torch.Tensor) -> dict[str, float]:
    """onnxruntime vs torch (map_difference) per head map for the dense ONNX at ``path`` on ``points``."""
    model = model.cpu().eval()
    vb = model.voxelizer_test([points])
    (inputs,) = graph_inputs(model, vb, model.cfg.is_pillar)
    sess = _session(path)
    names = output_names(model.cfg)
    got = sess.run(list(names), {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})
    want = head_maps(model.forward_voxels(vb).heads, model.cfg)
    return {name: map_difference(g, w.numpy()) for name, g, w in zip(names, got, want)}


def time_lag_column(model: torch.nn.Module) -> int | None:
    features = list(model.cfg.point_features)
    return features.index("time_lag") if "time_lag" in features else None


def autoware_voxels(model: torch.nn.Module, points: torch.Tensor) -> VoxelBatch:
    """The pillars Autoware's preprocessing would give the encoder: at most 32 points per pillar, and only
    x, y, z and the time lag (the model's other point features zero, as the exported encoder sees them)."""
    vox = model.cfg.voxelization
    voxelizer = Voxelizer(vox.voxel_size, vox.point_cloud_range, min(vox.max_points_per_voxel, MAX_POINTS_PER_PILLAR),
                          vox.max_voxels_test, len(model.cfg.point_features))
    pts = points.clone()
    lag = time_lag_column(model)
    for col in range(3, pts.shape[1]):
        if col != lag:
            pts[:, col] = 0
    return voxelizer([pts])


@torch.no_grad()
def check_autoware_files(model: torch.nn.Module, encoder_path: str | Path, head_path: str | Path,
                         layout: AutowareLayout, points: torch.Tensor) -> tuple[dict[str, float], dict]:
    """Run Autoware's pipeline on the exported files with onnxruntime (its encoder input and scatter
    reproduced in torch) and torch on the same pillars.

    Returns (map_difference of onnxruntime and torch for pillar_features and each of the six head maps, the onnxruntime
    head maps by name).
    """
    model = model.cpu().eval()
    vb = autoware_voxels(model, points)
    enc = _session(encoder_path)
    head = _session(head_path)
    feats = encoder_input(vb, layout.voxel_size, layout.point_cloud_range, time_lag_column(model))
    (pillars,) = enc.run([ENCODER_OUTPUT], {ENCODER_INPUT: feats.numpy()})
    spatial = scatter(torch.from_numpy(pillars), vb.coords, layout.grid_xy)
    got = dict(zip(HEAD_OUTPUTS, head.run(list(HEAD_OUTPUTS), {HEAD_INPUT: spatial.numpy()})))
    want_pillars = model.vfe(vb)
    want = dict(zip(HEAD_OUTPUTS, autoware_head_maps(model.forward_voxels(vb).head)))
    diffs = {ENCODER_OUTPUT: map_difference(pillars[:, 0, :], want_pillars.numpy())}
    diffs.update({name: map_difference(got[name], want[name].numpy()) for name in HEAD_OUTPUTS})
    return diffs, got
