"""Multiply-accumulate counts of a detector forward, in the thop style the SparseKD paper reports as GFLOPs.

Sparse convs cost (valid input-output pairs) x Cin x Cout, with the pairs read from spconv's own indice
pair counts after the forward; dense convs, transposed convs, linear layers and batch norms as thop counts
them (thop's transposed-conv rule, output elements x Cin x k x k, included).
Counted with forward hooks, so the number is for the frame you pass.

Two conventions for submanifold convs, both counted in the same forward:
- reference: spconv's reported pair count as is (``indice_pair_num.sum()``). spconv's native algorithm
  stores each symmetric neighbour pair once and leaves out the kernel centre, so this is about half the
  real work of a SubMConv3d; it is what thop-style counters over spconv report, and it reproduces the
  paper's GFLOPs (cp_voxel: 117.7 on ../shared/data's Waymo-like frame vs 114.8 in the paper; cp_pillar
  338.8 vs 333.9).
- all pairs: every (input, output) pair, centre included: 2 x reported + number of output voxels.
Count on the CPU (native algorithm); on CUDA spconv's implicit-gemm path stores pairs differently.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from spconv.pytorch.conv import SparseConvolution
from torch import nn

from ..ops import spconv_compat  # noqa: F401  (applies the CPU shim before any spconv forward)


@dataclass
class MacCount:
    """MACs of one forward: per top-level stage (reference convention), and totals in both conventions."""

    per_stage: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    total_all_pairs: float = 0.0


def _sparse_pairs(module, out) -> tuple[int, int]:
    """(reference, all) valid input-output pair counts of a spconv conv, from its stored indice data."""
    data = out.indice_dict.get(module.indice_key) if module.indice_key is not None else None
    if data is None or getattr(data, "indice_pair_num", None) is None:
        raise RuntimeError(
            f"{type(module).__name__}: no native indice pair counts (count MACs on the CPU, and give every "
            "spconv layer an indice_key)")
    reported = int(data.indice_pair_num.sum().item())
    if module.subm:
        return reported, 2 * reported + out.features.shape[0]
    return reported, reported


def count_macs(model: nn.Module, run) -> MacCount:
    """Run ``run()`` (a closure doing one forward of ``model``) under no_grad and count its MACs."""
    per_stage: dict[str, float] = defaultdict(float)
    extra_all_pairs = [0.0]
    handles = []

    def hook_for(stage: str):
        def hook(m, inputs, out):
            if isinstance(m, SparseConvolution):
                ref, full = _sparse_pairs(m, out)
                per_stage[stage] += ref * m.in_channels * m.out_channels
                extra_all_pairs[0] += (full - ref) * m.in_channels * m.out_channels
            elif isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                per_stage[stage] += out.numel() * (m.in_channels // m.groups) * kh * kw
            elif isinstance(m, nn.ConvTranspose2d):
                # thop counts a transposed conv like a conv over its *output* (out elements x Cin x k x k),
                # which overstates the real work by stride^2; the paper's pillar GFLOPs include it.
                kh, kw = m.kernel_size
                per_stage[stage] += out.numel() * (m.in_channels // m.groups) * kh * kw
            elif isinstance(m, nn.Linear):
                per_stage[stage] += out.numel() * m.in_features
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                per_stage[stage] += (2 if m.affine else 1) * out.numel()

        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (SparseConvolution, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm1d,
                            nn.BatchNorm2d)):
            handles.append(mod.register_forward_hook(hook_for(name.split(".")[0])))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    total = float(sum(per_stage.values()))
    return MacCount(dict(per_stage), total, total + extra_all_pairs[0])
