"""Export a model's dense part to ONNX (any model), or a pillar model to Autoware's lidar_centerpoint layout.

Every written ONNX passes onnx's full checker, and is run with onnxruntime against torch on a real frame
(the largest difference per output map, relative where the map's values exceed 1: verify.map_difference; recorded
in ``<out>/export_report.json`` and checked against a tolerance).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..backends.onnx_io import dense_onnx, save_onnx, to_onnx
from ..checkpoint import load_model
from ..config import load_model_config
from ..data.point_files import model_points, read_point_file
from ..inference import SAMPLE_DATA_DIR, resolve_checkpoint
from ..models.detector import build_detector
from . import autoware as aw
from .autoware_params import write_param_files
from .errors import ExportError
from .verify import check_autoware_files, check_dense_file

FORMATS = ("onnx", "autoware")
DEFAULT_FRAME = SAMPLE_DATA_DIR / "kitti" / "training" / "velodyne_reduced" / "000008.bin"
DEFAULT_TOLERANCE = 1e-3


@dataclass
class ExportReport:
    format: str
    model: str
    files: list[str]
    inputs: dict[str, dict]
    outputs: dict[str, dict]
    max_diff: dict[str, float] = field(default_factory=dict)
    frame: str = ""
    tolerance: float = DEFAULT_TOLERANCE
    notes: list[str] = field(default_factory=list)
    autoware: str = ""

    @property
    def ok(self) -> bool:
        return all(v <= self.tolerance for v in self.max_diff.values())


def load_source(source: str, untrained: bool = False, seed: int = 0):
    """A checkpoint path or bundled zoo name -> (model on CPU, name); with ``untrained``, a zoo config name
    (or YAML path) with random weights."""
    if untrained:
        torch.manual_seed(seed)
        cfg = load_model_config(source)
        return build_detector(cfg).eval(), cfg.name
    path = resolve_checkpoint(source)
    model, _ = load_model(path, "cpu")
    name = model.cfg.name if Path(source).suffix in (".pth", ".pt") else str(source)
    return model, name


def frame_points(model: torch.nn.Module, frame: str | Path = DEFAULT_FRAME) -> torch.Tensor:
    """A frame's points in the model's feature order, inside its range."""
    f = read_point_file(frame)
    pts, _, _ = model_points(f.points, f.fields, model.cfg.point_features)
    r = model.cfg.voxelization.point_cloud_range
    inside = ((pts[:, :3] >= r[:3]) & (pts[:, :3] < r[3:])).all(axis=1)
    if not inside.any():
        raise ExportError(f"no point of {frame} lies inside {model.cfg.name}'s range {r}: pass --frame with a "
                          "cloud that covers it")
    return torch.from_numpy(pts[inside].copy())


def _signature(proto) -> tuple[dict, dict]:
    """Inputs and outputs of an ONNX graph: {name: {"shape": [dims, names for dynamic axes], "dtype": str}}."""
    from onnx.helper import tensor_dtype_to_np_dtype

    def describe(v):
        t = v.type.tensor_type
        return {"shape": [d.dim_param or d.dim_value for d in t.shape.dim],
                "dtype": str(tensor_dtype_to_np_dtype(t.elem_type))}

    return ({i.name: describe(i) for i in proto.graph.input}, {o.name: describe(o) for o in proto.graph.output})


def export_onnx(model: torch.nn.Module, out_dir: Path, name: str, frame: str | Path = DEFAULT_FRAME,
                tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """``<out>/<name>.onnx``: the dense part (pillar models: voxels on; voxel models: BEV map on)."""
    proto = dense_onnx(model, name)
    path = save_onnx(proto, out_dir / f"{name}.onnx")
    ins, outs = _signature(proto)
    notes = [] if model.cfg.is_pillar else [
        "voxel model: the sparse 3D backbone (spconv) stays outside; feed the BEV map it gives (HeightCompression)"]
    report = ExportReport("onnx", name, [path.name], ins, outs, frame=str(frame), tolerance=tolerance, notes=notes)
    report.max_diff = check_dense_file(model, path, frame_points(model, frame))
    return report


def export_autoware(model: torch.nn.Module, out_dir: Path, name: str, frame: str | Path = DEFAULT_FRAME,
                    tolerance: float = DEFAULT_TOLERANCE, allow_patch: bool = False, class_names=None,
                    max_voxels: int | None = None, score_threshold: float = 0.35,
                    trt_precision: str = "fp16") -> ExportReport:
    """The two ONNX files and three parameter files of Autoware's lidar_centerpoint (see export/autoware.py)."""
    layout = aw.check_autoware(model, allow_patch, class_names, max_voxels)
    if trt_precision not in ("fp16", "fp32"):
        raise ExportError(f"trt_precision must be fp16 or fp32 (got {trt_precision!r})")
    model = model.cpu().eval()
    with torch.no_grad():
        vb = model.voxelizer_test([frame_points(model, frame)])
        feats = aw.encoder_input(vb, layout.voxel_size, layout.point_cloud_range)  # example input: shapes only
        spatial = model.bev_input(vb)
    meta = {"model": name, "class_names": list(model.cfg.class_names), "autoware": aw.AUTOWARE_REF}
    enc = to_onnx(aw.AutowareEncoder(model), (feats,), [aw.ENCODER_INPUT], [aw.ENCODER_OUTPUT],
                  {aw.ENCODER_INPUT: {0: "num_voxels", 1: "num_max_points"}, aw.ENCODER_OUTPUT: {0: "num_voxels"}},
                  {**meta, "graph": "autoware_encoder"})
    names = (aw.HEAD_INPUT,) + aw.HEAD_OUTPUTS
    head = to_onnx(aw.AutowareHead(model), (spatial,), [aw.HEAD_INPUT], list(aw.HEAD_OUTPUTS),
                   {n: {0: "batch_size", 2: "H", 3: "W"} for n in names}, {**meta, "graph": "autoware_head"})
    out_dir.mkdir(parents=True, exist_ok=True)
    enc_path = save_onnx(enc, out_dir / aw.encoder_file(name))
    head_path = save_onnx(head, out_dir / aw.head_file(name))
    params = write_param_files(out_dir, name, layout, score_threshold, trt_precision)
    ins, outs = _signature(enc)
    head_ins, head_outs = _signature(head)
    report = ExportReport("autoware", name, [p.name for p in [enc_path, head_path, *params]], {**ins, **head_ins},
                          {**outs, **head_outs}, frame=str(frame), tolerance=tolerance, notes=list(layout.notes),
                          autoware=aw.AUTOWARE_REF)
    report.max_diff, _ = check_autoware_files(model, enc_path, head_path, layout, frame_points(model, frame))
    return report


def export(source: str, fmt: str, out_dir: str | Path, name: str | None = None, untrained: bool = False,
           **options) -> ExportReport:
    """Load ``source`` (checkpoint path or bundled zoo name; a zoo config with ``untrained``), export it as
    ``fmt`` into ``out_dir`` and write ``export_report.json`` there."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    model, default_name = load_source(source, untrained)
    name = name or default_name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        report = export_onnx(model, out_dir, name, **{k: v for k, v in options.items() if k in ("frame", "tolerance")})
    else:
        report = export_autoware(model, out_dir, name, **options)
    (out_dir / "export_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


__all__ = ["FORMATS", "ExportError", "ExportReport", "export", "export_autoware", "export_onnx", "load_source"]
