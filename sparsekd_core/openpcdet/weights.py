"""An OpenPCDet state_dict -> ours, for the model its config describes.

Module names differ only at the top (``backbone_3d`` -> ``backbone3d``, ``backbone_2d`` -> ``backbone2d``,
``dense_head`` -> ``head``, ``heads_list.<i>.hm`` -> ``heads.<i>.heatmap``; an anchor head's ``conv_cls``,
``conv_box`` and ``conv_dir_cls`` keep their names); below that the layers are the same.
Then, exactly (nothing is approximated):
  * sparse-conv weights are brought from the checkpoint's spconv layout to ours (spconv_layout.py);
  * a sparse conv's bias that our layer does not have (OpenPCDet's SparseBasicBlock convs) is folded into the
    running mean of the BatchNorm right after it: BN(x + b) = BN'(x) with mean' = mean - b, in eval mode and, since a
    constant shift leaves batch statistics' normalisation unchanged, in train mode too;
  * a head conv without bias (``USE_BIAS_BEFORE_NORM: False``) gets a zero bias;
  * a model trained on intensity in 0..N gets N folded into the weights that read the intensity column (the first
    sparse conv of a voxel model, the first PFN linear of a pillar model), so it takes 0..1 like ours.
Keys only distillation uses (SparseKD's ``kd_adapt_block.*``, ``dense_head_aux.*``), ``global_step`` and spconv's
voxel-count record are left out and listed. Anything else that does not fit is an error naming the checkpoint key,
its module, both shapes and the config setting that decides it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..ops.spconv_compat import spconv
from .spconv_layout import LayoutDecision, decide_layout, to_ours

IGNORED_PREFIXES = {
    "kd_adapt_block.": "SparseKD's KD adapter block (distillation only)",
    "dense_head_aux.": "SparseKD's auxiliary dense head (distillation only)",
}
IGNORED_KEYS = {"global_step": "OpenPCDet's training step counter"}
IGNORED_SUFFIXES = {".max_num_voxels_during_training": "spconv's record of voxel counts"}
TOP_RENAMES = (("vfe.", "vfe."), ("backbone_3d.", "backbone3d."), ("backbone_2d.", "backbone2d."),
               ("dense_head.shared_conv.", "head.shared_conv."),
               ("dense_head.conv_cls.", "head.conv_cls."), ("dense_head.conv_box.", "head.conv_box."),
               ("dense_head.conv_dir_cls.", "head.conv_dir_cls."))  # AnchorHeadSingle's 1x1 convs
THEIR_MODULE = {"vfe": "vfe", "backbone3d": "backbone_3d", "backbone2d": "backbone_2d", "head": "dense_head"}
HEAD_KEY = re.compile(r"^dense_head\.heads_list\.(\d+)\.(\w+)\.(.+)$")
# What decides the shapes of each module's weights in an OpenPCDet config (for errors).
SETTINGS = {
    "vfe": "DATA_CONFIG.POINT_FEATURE_ENCODING.used_feature_list and MODEL.VFE.NUM_FILTERS",
    "backbone_3d": "MODEL.BACKBONE_3D (NAME, NUM_FILTERS, LAYER_NUMS, WIDTH) and the point features",
    "backbone_2d": "MODEL.BACKBONE_2D (LAYER_NUMS, NUM_FILTERS, NUM_UPSAMPLE_FILTERS, WIDTH) and "
                   "MODEL.MAP_TO_BEV.NUM_BEV_FEATURES",
    "dense_head": "CLASS_NAMES, MODEL.DENSE_HEAD (CenterHead: CLASS_NAMES_EACH_HEAD, SHARED_CONV_CHANNEL, "
                  "NUM_HM_CONV, SEPARATE_HEAD_CFG; AnchorHeadSingle: ANCHOR_GENERATOR_CONFIG sizes and rotations, "
                  "NUM_DIR_BINS)",
}


class WeightsError(ValueError):
    """The checkpoint's weights do not fit the model its config describes; the message names the key and module."""


@dataclass
class ConvertedWeights:
    """state_dict: ours, loads with strict=True. ignored: (key, why) left out. folded: the sparse-conv biases folded
    into BN running means. zero_biases: head conv biases set to zero. layout: the spconv layout decision."""

    state_dict: dict[str, torch.Tensor]
    layout: LayoutDecision
    ignored: list[tuple[str, str]] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    zero_biases: list[str] = field(default_factory=list)


def our_key(key: str) -> Optional[str]:
    """An OpenPCDet state_dict key -> ours, or None when it belongs to no module we have."""
    m = HEAD_KEY.match(key)
    if m:
        index, output, rest = m.groups()
        return f"head.heads.{index}.{'heatmap' if output == 'hm' else output}.{rest}"
    for theirs, ours in TOP_RENAMES:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def _ignored(key: str) -> Optional[str]:
    if key in IGNORED_KEYS:
        return IGNORED_KEYS[key]
    for prefix, why in IGNORED_PREFIXES.items():
        if key.startswith(prefix):
            return why
    for suffix, why in IGNORED_SUFFIXES.items():
        if key.endswith(suffix):
            return why
    return None


def _module_of(key: str) -> str:
    return "dense_head" if key.startswith("dense_head") else key.split(".", 1)[0]


def _norm_after(model: nn.Module, conv_name: str) -> Optional[str]:
    """The BatchNorm that directly follows conv ``conv_name`` in our model (its sibling ``bnK`` for ``convK`` in a
    residual block, the next child in a sequence), or None."""
    parent_name, _, child = conv_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    names = [n for n, _ in parent.named_children()]
    if child.startswith("conv") and child[4:].isdigit() and f"bn{child[4:]}" in names:
        candidate = f"bn{child[4:]}"
    elif child in names and names.index(child) + 1 < len(names):
        candidate = names[names.index(child) + 1]
    else:
        return None
    if isinstance(getattr(parent, candidate), nn.modules.batchnorm._BatchNorm):
        return f"{parent_name}.{candidate}" if parent_name else candidate
    return None


def _intensity_weight(model: nn.Module) -> tuple[str, int]:
    """(key, input axis) of the weight that reads the raw point features first."""
    if getattr(model, "backbone3d", None) is not None:
        return "backbone3d.conv_input.0.weight", -1  # (C_out, k, k, k, C_in)
    return "vfe.pfn_layers.0.linear.weight", 1       # (C_out, C_in); raw point features come first


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module, *, pcdet_version=None,
                       spconv_layout: Optional[str] = None, intensity_max: float = 1.0) -> ConvertedWeights:
    """Map an OpenPCDet ``model_state`` onto ``model`` (our BEVDetector built from the imported config)."""
    own = model.state_dict()
    ignored, renamed, origin, problems = [], {}, {}, []
    for key, value in source.items():
        why = _ignored(key)
        if why is not None:
            ignored.append((key, why))
            continue
        ours = our_key(key)
        if ours is None:
            problems.append(f"{key}: module '{_module_of(key)}' is not part of a model that sparsekd_ros runs "
                            "(vfe, backbone_3d, backbone_2d, dense_head); the config describes another model")
            continue
        renamed[ours], origin[ours] = value, key

    # sparse convs: one layout for the whole checkpoint
    sparse = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, spconv.conv.SparseConvolution)}
    present = {k: renamed[k] for k in sparse if k in renamed}
    layout = decide_layout({origin[k]: v for k, v in present.items()},
                           {origin[k]: tuple(own[k].shape) for k in present}, pcdet_version, spconv_layout)
    for k, v in present.items():
        renamed[k] = to_ours(v, layout.layout)

    # biases our layers do not have: fold a sparse conv's bias into the BN after it
    folded = []
    for k in [k for k in renamed if k.endswith(".bias") and k not in own]:
        conv = k[: -len(".bias")]
        norm = _norm_after(model, conv) if f"{conv}.weight" in sparse else None
        if norm is None:
            continue  # reported as unexpected below
        bias, mean_key = renamed.pop(k), f"{norm}.running_mean"
        if mean_key not in renamed or renamed[mean_key].shape != bias.shape:
            problems.append(f"{origin[k]}: a bias of shape {tuple(bias.shape)} cannot fold into "
                            f"{origin.get(mean_key, mean_key)} (shape "
                            f"{tuple(renamed[mean_key].shape) if mean_key in renamed else 'missing'})")
            continue
        renamed[mean_key] = (renamed[mean_key].double() - bias.double()).to(renamed[mean_key].dtype)
        folded.append(origin[k])

    # head convs saved without bias (USE_BIAS_BEFORE_NORM: False): ours have one, zero is the same network
    zero_biases = []
    for k in own:
        if k.startswith("head.") and k.endswith(".bias") and k not in renamed and f"{k[:-5]}.weight" in renamed:
            conv = model.get_submodule(k[:-5])
            if isinstance(conv, nn.Conv2d) and _norm_after(model, k[:-5]) is not None:
                renamed[k] = torch.zeros_like(own[k])
                zero_biases.append(k)

    missing = [k for k in own if k not in renamed]
    unexpected = [k for k in renamed if k not in own]
    wrong = [k for k in own if k in renamed and tuple(renamed[k].shape) != tuple(own[k].shape)]
    for k in unexpected:
        module = _module_of(origin[k])
        problems.append(f"{origin[k]} (module '{module}') has no place in the model the config describes "
                        f"(check {SETTINGS.get(module, 'the config')})")
    for k in missing:
        module = THEIR_MODULE[k.split(".", 1)[0]]
        problems.append(f"the model the config describes needs {k} (module '{module}'), which the checkpoint lacks "
                        f"(check {SETTINGS.get(module, 'the config')})")
    for k in wrong:
        module = _module_of(origin[k])
        problems.append(f"{origin[k]} (module '{module}') has shape {tuple(renamed[k].shape)} where the model the "
                        f"config describes needs {tuple(own[k].shape)} (check {SETTINGS.get(module, 'the config')})")
    if problems:
        more = f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise WeightsError(f"the checkpoint does not fit its config ({len(problems)} problems):\n  "
                           + "\n  ".join(problems[:8]) + more)

    if intensity_max != 1.0:
        key, axis = _intensity_weight(model)
        column = list(model.cfg.point_features).index("intensity")
        w = renamed[key].clone()
        w.select(axis % w.dim(), column).mul_(intensity_max)
        renamed[key] = w
    state = {k: renamed[k].to(own[k].dtype) for k in own}
    return ConvertedWeights(state, layout, ignored, folded, zero_biases)
