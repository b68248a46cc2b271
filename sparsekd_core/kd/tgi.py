"""Teacher-guided initialisation (TGI): a narrow student starts from the teacher's weights.

Every layer of the student keeps a subset of the teacher's output channels; the subset chosen for a
layer's outputs fixes the next layer's kept *input* channels, so the narrowed network computes a
sub-network of the teacher (with the student's full width the result is the teacher itself).

How channels are chosen (``mode``):
  first     the first N output channels (what SparseKD's reference recipes use).
  bn_scale  the N channels whose BatchNorm (the one right after the conv) has the largest |gamma|.
  l1        the N output filters with the largest L1 norm, counted over the inputs already kept.

How the choice propagates, derived from the detector's module tree (no parameter names are listed):
  * sequences (nn.Sequential / spconv.SparseSequential / the 3D backbone's stages) are chains, in
    registration order: a conv's kept outputs are the next conv's kept inputs; a BN keeps its conv's.
  * a residual block (SparseBasicBlock) must hand back exactly the selection it received, so its last
    conv is forced onto the input's selection: the selection is chosen once per residual stage, by the
    stage's entry conv (conv_input for conv1, the strided conv of conv2..conv4).
  * HeightCompression folds height into channels (channel c at height d becomes BEV channel c*D + d),
    so a 3D selection of c's expands to all their D heights.
  * BaseBEVBackbone concatenates its deblocks: branch i's selection is offset by the teacher's width
    of the branches before it.
  * CenterHead: the shared conv feeds every task head and every tower in it; each tower's final conv keeps
    all its outputs. Teacher and student must group their classes into the same heads. A tower only the student
    has (the ``direction`` tower of a ``heading: axis_dir`` student under a ``sin_cos`` teacher) keeps the
    student's own initialisation; the rot tower is copied even when the two encode the heading differently (its
    hidden layers still see the heading; its last conv then learns the student's code).
  * AnchorHeadSingle: its class, box and direction convs all read the BEV features and keep all their outputs
    (one per anchor, class, code or bin); teacher and student must have the same anchors per cell.
  * PillarVFE: a non-final PFN layer outputs [per-point, pillar max] (twice its units); the next layer's
    kept inputs are the kept units in both halves.
Anything else with parameters, or a shape that does not fit, raises TGIError naming the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..models.anchor_head import AnchorHeadSingle
from ..models.backbone2d import BaseBEVBackbone
from ..models.backbone3d import SparseBasicBlock, VoxelResBackBone8x
from ..models.bev import HeightCompression, PointPillarScatter
from ..models.center_head import CenterHead
from ..models.detector import BEVDetector
from ..models.vfe import MeanVFE, PFNLayer, PillarVFE
from ..ops.spconv_compat import spconv

MODES = ("first", "bn_scale", "l1")

_SparseConv = spconv.conv.SparseConvolution
_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, _SparseConv)
_PASS_THROUGH = (nn.ReLU, nn.ZeroPad2d, nn.Identity, nn.Dropout)


class TGIError(RuntimeError):
    """The teacher's weights cannot be mapped onto the student; the message names the layer."""


@dataclass(frozen=True)
class Selection:
    """The teacher channels a student tensor keeps.

    total: the teacher's channel count at this point of the network.
    index: (k,) long, the kept teacher channels in the student's channel order (k = student's width).
    """

    total: int
    index: torch.Tensor

    @classmethod
    def full(cls, n: int) -> "Selection":
        return cls(n, torch.arange(n))

    def __len__(self) -> int:
        return int(self.index.numel())

    def is_identity(self) -> bool:
        return len(self) == self.total and bool(torch.equal(self.index, torch.arange(self.total)))


@dataclass
class LayerMap:
    """How one teacher module's own tensors map onto the student's module of the same name.

    kind: conv2d | deconv2d | linear | spconv | norm. inputs is None for norms (per-channel tensors only).
    """

    name: str
    kind: str
    inputs: Optional[Selection]
    outputs: Selection


@dataclass
class TGIResult:
    """state_dict: a complete student state_dict (loads with strict=True); layers: the map per module name;
    fresh: the student modules the teacher has no counterpart for, which keep the student's initialisation."""

    state_dict: dict[str, torch.Tensor]
    layers: dict[str, LayerMap]
    fresh: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- channel choice
def _conv_kind(m: nn.Module) -> str:
    if isinstance(m, _SparseConv):
        return "spconv"
    if isinstance(m, nn.ConvTranspose2d):
        return "deconv2d"
    if isinstance(m, nn.Conv2d):
        return "conv2d"
    return "linear"


def _io_channels(m: nn.Module) -> tuple[int, int]:
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    return int(m.in_channels), int(m.out_channels)


def weight_dims(kind: str) -> tuple[int, int]:
    """(output dim, input dim) of a weight: conv2d/linear (O, I, ...), deconv2d (I, O, k, k), spconv (O, k, k, k, I)."""
    return {"conv2d": (0, 1), "linear": (0, 1), "deconv2d": (1, 0), "spconv": (0, -1)}[kind]


def _filter_l1(weight: torch.Tensor, kind: str, inputs: Selection) -> torch.Tensor:
    """(C_out,) L1 norm of each output filter over the kept inputs."""
    out_dim, in_dim = weight_dims(kind)
    w = weight.detach().index_select(in_dim % weight.dim(), inputs.index.to(weight.device)).abs()
    w = w.movedim(out_dim, 0)
    return w.reshape(w.shape[0], -1).sum(dim=1)


def _top(importance: torch.Tensor, k: int) -> torch.Tensor:
    # A stable sort makes ties (e.g. freshly initialised BN gammas, all 1) resolve to the lowest index.
    return torch.argsort(importance.detach().float().cpu(), descending=True, stable=True)[:k]


# ----------------------------------------------------------------------------- planner
class _Planner:
    """Walks teacher and student module trees in step and records a LayerMap per parameterised module."""

    def __init__(self, teacher: nn.Module, student: nn.Module, mode: str, keep_order: bool):
        if mode not in MODES:
            raise TGIError(f"unknown TGI mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode, self.keep_order = mode, keep_order
        self.student_modules = dict(student.named_modules())
        self.layers: dict[str, LayerMap] = {}
        self.fresh: list[str] = []
        self.handlers: list[tuple[type, Callable]] = [
            (BEVDetector, self._detector),
            (MeanVFE, self._mean_vfe),
            (PillarVFE, self._pillar_vfe),
            (VoxelResBackBone8x, self._children_chain),
            (SparseBasicBlock, self._residual),
            (HeightCompression, self._height_compression),
            (PointPillarScatter, self._pillar_scatter),
            (BaseBEVBackbone, self._bev_backbone),
            (CenterHead, self._center_head),
            (AnchorHeadSingle, self._anchor_head),
            (nn.modules.batchnorm._BatchNorm, self._norm),
            (spconv.SparseSequential, self._children_chain),
            (nn.Sequential, self._children_chain),
            (nn.ModuleList, self._children_chain),
            (_PASS_THROUGH, lambda name, m, sel: sel),
        ]

    # -- dispatch
    def walk(self, name: str, module: nn.Module, sel: Optional[Selection]) -> Optional[Selection]:
        self._student(name, module)
        for types, handler in self.handlers:
            if isinstance(module, types):
                return handler(name, module, sel)
        if isinstance(module, _CONV_TYPES):
            raise TGIError(f"{name}: a {type(module).__name__} outside a sequence; TGI has no rule for it")
        raise TGIError(
            f"{name}: TGI has no rule for {type(module).__name__}; add a handler in sparsekd_core/kd/tgi.py "
            "that says how channels flow through it"
        )

    def _student(self, name: str, teacher_module: nn.Module) -> nn.Module:
        s = self.student_modules.get(name)
        if s is None:
            raise TGIError(f"{name or '<model>'}: the teacher has this {type(teacher_module).__name__}, the student "
                           "has no module of that name: the two models have different structures")
        if type(s) is not type(teacher_module):
            raise TGIError(f"{name}: teacher has a {type(teacher_module).__name__}, student a {type(s).__name__}")
        return s

    @staticmethod
    def _join(prefix: str, child: str) -> str:
        return f"{prefix}.{child}" if prefix else child

    # -- chains
    def _chain(self, prefix: str, children: list[tuple[str, nn.Module]], sel: Optional[Selection],
               force_last: Optional[Selection] = None) -> Optional[Selection]:
        """Walk children in order; a conv's BN is the next BatchNorm before the next conv."""
        conv_at = [i for i, (_, m) in enumerate(children) if isinstance(m, _CONV_TYPES)]
        if force_last is not None and not conv_at:
            raise TGIError(f"{prefix}: expected a conv whose outputs are fixed by the graph, found none")
        for i, (child, m) in enumerate(children):
            name = self._join(prefix, child)
            if isinstance(m, _CONV_TYPES):
                norm = None
                for _, nxt in children[i + 1:]:
                    if isinstance(nxt, _CONV_TYPES):
                        break
                    if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                        norm = nxt
                        break
                sel = self._conv(name, m, sel, norm, force_last if i == conv_at[-1] else None)
            else:
                sel = self.walk(name, m, sel)
        return sel

    def _children_chain(self, name, module, sel, force_last=None):
        return self._chain(name, list(module.named_children()), sel, force_last)

    # -- leaves
    def _conv(self, name: str, m: nn.Module, sel: Optional[Selection], norm: Optional[nn.Module],
              forced: Optional[Selection]) -> Selection:
        s = self._student(name, m)
        kind = _conv_kind(m)
        t_in, t_out = _io_channels(m)
        s_in, s_out = _io_channels(s)
        if getattr(m, "groups", 1) != 1:
            raise TGIError(f"{name}: grouped convolutions are not supported by TGI")
        if kind == "spconv" and (m.weight.shape[0] != t_out or m.weight.shape[-1] != t_in):
            raise TGIError(f"{name}: spconv weight {tuple(m.weight.shape)} is not (C_out, k, k, k, C_in); "
                           "this spconv version lays weights out differently: adapt weight_dims")
        if sel is None or sel.total != t_in:
            raise TGIError(f"{name}: the teacher layer takes {t_in} inputs but {None if sel is None else sel.total} "
                           "reach it: the module order does not match the data flow")
        if len(sel) != s_in:
            raise TGIError(f"{name}: the student layer takes {s_in} inputs but {len(sel)} teacher channels were kept "
                           "before it: the student's widths do not follow the teacher's structure")
        if s_out > t_out:
            raise TGIError(f"{name}: the student has {s_out} output channels, more than the teacher's {t_out}; "
                           "TGI can only narrow")
        if forced is not None:
            if forced.total != t_out or len(forced) != s_out:
                raise TGIError(f"{name}: its outputs must be the channels {len(forced)}/{forced.total} fixed by the "
                               f"graph, but the layer has {s_out}/{t_out}")
            out = forced
        else:
            out = Selection(t_out, self._choose(m, kind, sel, norm, s_out))
        self.layers[name] = LayerMap(name, kind, sel, out)
        return out

    def _choose(self, m: nn.Module, kind: str, inputs: Selection, norm: Optional[nn.Module], k: int) -> torch.Tensor:
        n = _io_channels(m)[1]
        if self.mode == "first" or k == n and self.keep_order:
            return torch.arange(k)
        if self.mode == "bn_scale" and norm is not None and getattr(norm, "weight", None) is not None:
            idx = _top(norm.weight.abs(), k)
        else:  # l1, or bn_scale on a layer without a (scaled) norm after it
            idx = _top(_filter_l1(m.weight, kind, inputs), k)
        return idx.sort().values if self.keep_order else idx

    def _norm(self, name, m, sel):
        s = self._student(name, m)
        if sel is None or m.num_features != sel.total or s.num_features != len(sel):
            raise TGIError(f"{name}: norm over {m.num_features} (teacher) / {s.num_features} (student) channels, "
                           f"but the selection before it keeps {None if sel is None else len(sel)} of "
                           f"{None if sel is None else sel.total}")
        self.layers[name] = LayerMap(name, "norm", None, sel)
        return sel

    # -- structures whose data flow is not a plain chain
    def _detector(self, name, m: BEVDetector, sel):
        return self._children_chain(name, m, Selection.full(len(m.cfg.point_features)))

    def _mean_vfe(self, name, m: MeanVFE, sel):
        if sel is None or not sel.is_identity() or sel.total != m.out_channels:
            raise TGIError(f"{name}: MeanVFE passes the {m.out_channels} point features through; "
                           "they cannot be narrowed")
        return sel

    def _pillar_vfe(self, name, m: PillarVFE, sel):
        layers = list(m.pfn_layers.named_children())
        in_ch = layers[0][1].linear.in_features
        if sel is None or sel.total != in_ch:
            sel = Selection.full(in_ch)  # point features + offsets, built inside the VFE
        for child, layer in layers:
            lname = self._join(self._join(name, "pfn_layers"), child)
            s_layer = self._student(lname, layer)
            if not isinstance(layer, PFNLayer) or s_layer.last != layer.last:
                raise TGIError(f"{lname}: teacher and student PFN layers differ in kind")
            units = self._children_chain(lname, layer, sel)
            if not layer.last:  # [per-point units, pillar max of the same units]
                sel = Selection(2 * units.total, torch.cat([units.index, units.index + units.total]))
            else:
                sel = units
        return sel

    def _residual(self, name, m, sel):
        out = self._children_chain(name, m, sel, force_last=sel)
        if out is None or not torch.equal(out.index, sel.index):
            raise TGIError(f"{name}: a residual block must return the selection it received")
        return out

    def _height_compression(self, name, m: HeightCompression, sel):
        s = self._student(name, m)
        depth, rem = divmod(m.out_channels, sel.total)
        if rem or s.out_channels != len(sel) * depth:
            raise TGIError(f"{name}: {sel.total} teacher 3D channels cannot fold into {m.out_channels} BEV channels "
                           f"with the student's {len(sel)} -> {s.out_channels} (height cells must match)")
        heights = torch.arange(depth)
        return Selection(m.out_channels, (sel.index[:, None] * depth + heights[None, :]).reshape(-1))

    def _pillar_scatter(self, name, m: PointPillarScatter, sel):
        s = self._student(name, m)
        if m.out_channels != sel.total or s.out_channels != len(sel):
            raise TGIError(f"{name}: scatter of {m.out_channels}/{s.out_channels} channels "
                           f"after a {sel.total}/{len(sel)} VFE")
        return sel

    def _bev_backbone(self, name, m: BaseBEVBackbone, sel):
        pieces, offset = [], 0
        for i, (block, deblock) in enumerate(zip(m.blocks, m.deblocks)):
            sel = self._children_chain(self._join(name, f"blocks.{i}"), block, sel)
            up = self._children_chain(self._join(name, f"deblocks.{i}"), deblock, sel)
            pieces.append(up.index + offset)
            offset += up.total
        return Selection(offset, torch.cat(pieces))

    def _center_head(self, name, m: CenterHead, sel):
        shared = self._children_chain(self._join(name, "shared_conv"), m.shared_conv, sel)
        student = self._student(name, m)
        if student.class_groups != m.class_groups:
            raise TGIError(f"{name}: the teacher's heads hold the classes {m.class_groups}, the student's "
                           f"{student.class_groups}: TGI needs the same class groups")
        for i, task in enumerate(m.heads):
            student_task = self._student(self._join(name, f"heads.{i}"), task)
            for tower_name, tower in task.items():
                keep_all = Selection.full(_io_channels(tower[-1])[1])
                self._children_chain(self._join(name, f"heads.{i}.{tower_name}"), tower, shared, force_last=keep_all)
            self.fresh += [self._join(name, f"heads.{i}.{t}") for t in student_task.keys() if t not in task]
        return None


    def _anchor_head(self, name, m: AnchorHeadSingle, sel):
        student = self._student(name, m)
        if student.num_anchors != m.num_anchors or student.num_classes != m.num_classes:
            raise TGIError(f"{name}: the teacher predicts {m.num_anchors} anchors x {m.num_classes} classes per cell, "
                           f"the student {student.num_anchors} x {student.num_classes}: TGI needs the same anchors")
        for child, conv in m.named_children():
            keep_all = Selection.full(_io_channels(conv)[1])
            self._conv(self._join(name, child), conv, sel, None, keep_all)
        return None


# ----------------------------------------------------------------------------- narrowing
def _narrow(key: str, tensor: torch.Tensor, lm: LayerMap) -> torch.Tensor:
    leaf = key.rsplit(".", 1)[-1]
    out = lm.outputs.index.to(tensor.device)
    if leaf == "num_batches_tracked":
        return tensor.clone()
    if lm.kind == "norm" or leaf == "bias":
        if tensor.dim() != 1:
            raise TGIError(f"{key}: expected a per-channel vector, got shape {tuple(tensor.shape)}")
        return tensor.index_select(0, out).clone()
    if leaf != "weight":
        raise TGIError(f"{key}: TGI does not know how to narrow a tensor called {leaf!r}")
    out_dim, in_dim = weight_dims(lm.kind)
    w = tensor.index_select(out_dim % tensor.dim(), out)
    return w.index_select(in_dim % tensor.dim(), lm.inputs.index.to(tensor.device)).clone()


def channel_maps(teacher: nn.Module, student: nn.Module, mode: str = "first",
                 keep_order: bool = True) -> tuple[dict[str, LayerMap], list[str]]:
    """Which teacher channels each student layer is (see the module docstring): a LayerMap per parameterised teacher
    module, and the student modules the teacher has no counterpart for. Raises TGIError when a layer cannot be
    mapped. TGI narrows the teacher's tensors by these maps; kd/widen.py writes a student's tensors into them."""
    planner = _Planner(teacher, student, mode, keep_order)
    with torch.no_grad():
        planner.walk("", teacher, None)
    return planner.layers, planner.fresh


def mapped_tensors(model: nn.Module, layers: dict[str, LayerMap]):
    """(key, tensor, LayerMap) for every tensor a LayerMap covers in ``model`` (the wide side of ``layers``): each
    module's own tensors, not its children's, which have their own LayerMaps."""
    modules = dict(model.named_modules())
    for name, lm in layers.items():
        for leaf, tensor in modules[name].state_dict().items():
            if "." not in leaf:
                yield f"{name}.{leaf}", tensor, lm


def teacher_guided_init(teacher: nn.Module, student: nn.Module, mode: str = "first",
                        keep_order: bool = True) -> TGIResult:
    """Build the student's initial state_dict from the teacher by channel selection.

    teacher, student: BEVDetector of the same structure (the student may be narrower anywhere; stride,
        voxel size and range may differ, they carry no weights).
    mode: first | bn_scale | l1 (see the module docstring).
    keep_order: keep the chosen channels in the teacher's order (True) or in order of importance (False; the
        student then holds a permutation of the teacher's channels, equally valid).
    Returns TGIResult; raises TGIError when a layer cannot be mapped.
    """
    layers, fresh = channel_maps(teacher, student, mode, keep_order)
    state = {key: _narrow(key, tensor.detach(), lm) for key, tensor, lm in mapped_tensors(teacher, layers)}
    expected = student.state_dict()
    for key, tensor in expected.items():
        if any(key.startswith(prefix + ".") for prefix in fresh):
            state[key] = tensor.detach().clone()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: {tuple(state[k].shape)} vs student {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise TGIError("TGI could not map every tensor: "
                       + "; ".join(p for p in (f"not produced: {missing[:5]}" if missing else "",
                                               f"not in the student: {unexpected[:5]}" if unexpected else "",
                                               f"wrong shape: {wrong[:5]}" if wrong else "") if p))
    return TGIResult(state, layers, fresh)


def apply_tgi(teacher: nn.Module, student: nn.Module, mode: str = "first", keep_order: bool = True) -> TGIResult:
    """teacher_guided_init, then load the result into ``student`` with strict=True."""
    result = teacher_guided_init(teacher, student, mode, keep_order)
    own = student.state_dict()
    student.load_state_dict({k: v.to(own[k].device, own[k].dtype) for k, v in result.state_dict.items()}, strict=True)
    return result
