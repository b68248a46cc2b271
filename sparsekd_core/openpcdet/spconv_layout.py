"""Sparse-conv weight layouts across spconv versions, and how the layout of a checkpoint is decided.

A 3D sparse conv with kernel (k1, k2, k3) stores its weight as
  1.x          (k1, k2, k3, C_in, C_out)   spconv 1.x ("RSCK")
  2.x-native   (k1, k2, k3, C_out, C_in)   spconv 2.0 / 2.1 with the native algorithm ("RSKC")
  2.x          (C_out, k1, k2, k3, C_in)   spconv 2.x implicit GEMM, and every layer from spconv 2.2 ("KRSC"; ours)
(spconv/pytorch/conv.py; OpenPCDet's Detector3DTemplate._load_state_dict converts between them.)

A single layer whose C_in equals C_out cannot tell 1.x from 2.x-native by its shape, so a layout is never
guessed from one layer. It is decided for the whole checkpoint, which one spconv wrote: a ``--spconv-layout`` flag
wins; otherwise the checkpoint's ``version`` narrows the choice (OpenPCDet before 0.5 ran only spconv 1.x), and
the layout must be the only one under which *every* sparse conv of the checkpoint has the shape the model needs.
If two layouts still fit (every layer square, say), the import stops and asks for the flag.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

LAYOUTS = {
    "1.x": "spconv 1.x (k, k, k, C_in, C_out)",
    "2.x-native": "spconv 2.0/2.1 native algorithm (k, k, k, C_out, C_in)",
    "2.x": "spconv 2.x implicit GEMM / spconv >= 2.2 (C_out, k, k, k, C_in)",
}


class SpconvLayoutError(ValueError):
    """The sparse-conv layout of a checkpoint cannot be decided, or the weights fit none."""


def source_shape(layout: str, ours: Sequence[int]) -> tuple[int, ...]:
    """The shape a weight of our shape (C_out, k1, k2, k3, C_in) has in ``layout``."""
    c_out, *kernel, c_in = ours
    return {"1.x": (*kernel, c_in, c_out), "2.x-native": (*kernel, c_out, c_in), "2.x": tuple(ours)}[layout]


def to_ours(weight: torch.Tensor, layout: str) -> torch.Tensor:
    """A sparse-conv weight in ``layout`` -> ours, (C_out, k1, k2, k3, C_in), contiguous."""
    n = weight.dim()
    if layout == "1.x":       # (k.., C_in, C_out) -> (C_out, k.., C_in)
        weight = weight.permute(n - 1, *range(n - 2), n - 2)
    elif layout == "2.x-native":  # (k.., C_out, C_in) -> (C_out, k.., C_in)
        weight = weight.permute(n - 2, *range(n - 2), n - 1)
    elif layout != "2.x":
        raise SpconvLayoutError(f"unknown spconv layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    return weight.contiguous()


@dataclass
class LayoutDecision:
    layout: str
    reason: str


def decide_layout(weights: dict[str, torch.Tensor], expected: dict[str, Sequence[int]],
                  pcdet_version: Optional[tuple[int, ...]], flag: Optional[str] = None) -> LayoutDecision:
    """The layout of the sparse-conv ``weights`` (checkpoint key -> tensor), whose shapes in our layout are
    ``expected`` (same keys). See the module doc for the rule; raises SpconvLayoutError naming the layer."""
    if not weights:
        return LayoutDecision("2.x", "no sparse convs")
    if flag is not None and flag != "auto":
        if flag not in LAYOUTS:
            raise SpconvLayoutError(f"--spconv-layout {flag!r}: use one of auto, {', '.join(LAYOUTS)}")
        for key, w in weights.items():
            if tuple(w.shape) != source_shape(flag, expected[key]):
                raise SpconvLayoutError(
                    f"{key} has shape {tuple(w.shape)}, but in the {LAYOUTS[flag]} layout the model needs "
                    f"{source_shape(flag, expected[key])}: the flag names another layout, or the config is not the "
                    "checkpoint's")
        return LayoutDecision(flag, "given by --spconv-layout")
    allowed = list(LAYOUTS)
    why = "the checkpoint names no OpenPCDet version"
    if pcdet_version is not None:
        why = f"saved by OpenPCDet {'.'.join(map(str, pcdet_version))}"
        if pcdet_version < (0, 5):
            allowed = ["1.x"]  # spconv 2 support arrived in OpenPCDet 0.5.0
            why += ", which ran only spconv 1.x"
    fitting = [layout for layout in allowed
               if all(tuple(w.shape) == source_shape(layout, expected[k]) for k, w in weights.items())]
    if len(fitting) == 1:
        layout = fitting[0]
        telling = sum(1 for k in weights
                      if sum(source_shape(lo, expected[k]) == source_shape(layout, expected[k]) for lo in LAYOUTS) == 1)
        return LayoutDecision(layout, f"{why}; all {len(weights)} sparse convs fit only the {LAYOUTS[layout]} layout "
                                      f"({telling} of them by their shape alone)")
    if not fitting:
        key = next(iter(weights))
        shapes = ", ".join(f"{lo}: {source_shape(lo, expected[key])}" for lo in allowed)
        raise SpconvLayoutError(
            f"the sparse convs fit no spconv layout ({why}); e.g. {key} has shape {tuple(weights[key].shape)} where "
            f"the model needs {shapes}. The config is probably not the one this checkpoint was trained with")
    raise SpconvLayoutError(
        f"the sparse-conv weights fit more than one spconv layout ({', '.join(fitting)}; {why}): every layer has "
        "as many input as output channels, so their shapes cannot tell. Say which spconv trained the model: "
        f"--spconv-layout {' or '.join(fitting)} ({'; '.join(f'{lo} = {LAYOUTS[lo]}' for lo in fitting)})")
