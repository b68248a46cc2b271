"""Widening: a wide model (a teacher) starts out as a narrower model of the same structure (its student).

The inverse of TGI (kd/tgi.py). TGI's channel maps say which of the wide model's channels each channel of the narrow
model is (the first ones of each layer, TGI's ``first`` mode). Widening writes the narrow model's weights into those
channels and sets to zero every weight from a channel the narrow model lacks into one it has. The narrow model's
channels inside the wide one then compute exactly what the narrow model computes, whatever the other channels hold,
and the wide model's outputs (whose final convs keep every channel) equal the narrow model's. The other channels keep
the wide model's own random initialisation; they start to count as training moves their zeroed weights (the
zero-initialised variant of Net2Net's function-preserving widening: Chen, Goodfellow, Shlens, ICLR 2016).

What it is for: a teacher grown from its student when only the student is left (a bundled student whose teacher was
never shipped), so that the teacher's training on new scenes starts from everything the student already knows.
"""
from __future__ import annotations

import torch
from torch import nn

from .tgi import LayerMap, TGIError, channel_maps, mapped_tensors, weight_dims


def _widen_tensor(key: str, wide: torch.Tensor, narrow: torch.Tensor, lm: LayerMap) -> torch.Tensor:
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return narrow.clone()
    out = lm.outputs.index.to(wide.device)
    result = wide.detach().clone()
    if lm.kind == "norm" or leaf == "bias":
        return result.index_copy_(0, out, narrow.to(result.dtype))
    if leaf != "weight":
        raise TGIError(f"{key}: widening does not know how to widen a tensor called {leaf!r}")
    out_dim, in_dim = (d % wide.dim() for d in weight_dims(lm.kind))
    rows = result.index_select(out_dim, out).zero_()  # the narrow model's outputs see none of the new inputs ...
    rows.index_copy_(in_dim, lm.inputs.index.to(wide.device), narrow.to(result.dtype))  # ... and its own weights
    return result.index_copy_(out_dim, out, rows)


def widen(wide: nn.Module, narrow: nn.Module) -> None:
    """Load ``narrow``'s weights into ``wide`` (in place) so that ``wide`` computes what ``narrow`` does.

    wide, narrow: BEVDetectors of the same structure on the same grid (voxels and range), ``narrow`` no wider
    anywhere (a student of ``wide``), with the same classes in the same heads. Raises TGIError naming the layer
    when ``narrow`` has a part ``wide`` lacks (its outputs could then not be reproduced), when a layer cannot be
    mapped, or when the grids differ.
    """
    layers, fresh = channel_maps(wide, narrow, "first")
    grids = [(list(m.cfg.voxelization.voxel_size), list(m.cfg.voxelization.point_cloud_range))
             for m in (wide, narrow)]
    if grids[0] != grids[1]:
        raise TGIError(f"cannot widen across grids: voxels and range {grids[1]} (narrow) against {grids[0]} (wide); "
                       "the wide model would not compute what the narrow one does. Widen into a config on the "
                       "narrow model's grid")
    if fresh:
        raise TGIError(f"cannot widen: the narrow model has {', '.join(fresh)}, which the wide model lacks "
                       "(e.g. a heading tower of another heading code); give both the same head")
    theirs = narrow.state_dict()  # keyed as the wide one: the two share their module names
    state = wide.state_dict()
    with torch.no_grad():
        for key, tensor, lm in mapped_tensors(wide, layers):
            state[key] = _widen_tensor(key, tensor, theirs[key], lm)
    wide.load_state_dict(state, strict=True)
