"""torch module -> checked ONNX model (in memory), and back to disk."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import torch

from . import BackendError
from .graphs import dense_graph

OPSET = 17  # TensorRT 8.6+ and onnxruntime 1.14+ read it; Autoware's TensorRT builds it


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pinned in requirements.txt; a slim install may lack it
        raise BackendError("ONNX export needs the 'onnx' package: pip install -r requirements.txt") from e
    return onnx


def to_onnx(module: torch.nn.Module, inputs: Sequence[torch.Tensor], input_names: Sequence[str],
            output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]],
            metadata: Mapping[str, object] | None = None):
    """Trace ``module`` on ``inputs`` into an ONNX ModelProto, run onnx's full checker on it and attach
    ``metadata`` (JSON-encoded values) as metadata_props.

    Uses torch's TorchScript exporter (``dynamo=False``): for these graphs it exports in about 3 s on
    2 CPU cores where the torch.export-based one takes about 20 s and needs onnxscript; torch is pinned,
    so the deprecation has no effect here.
    """
    onnx = _onnx()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        with torch.no_grad():
            torch.onnx.export(module.eval(), tuple(inputs), buf, input_names=list(input_names),
                              output_names=list(output_names),
                              dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"sparsekd.{key}", json.dumps(value)
    proto.producer_name = "sparsekd_ros"
    return proto


def save_onnx(proto, path: str | Path) -> Path:
    """Write ``proto`` and check the written file once more with onnx's checker."""
    onnx = _onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def read_metadata(proto) -> dict[str, object]:
    """metadata_props written by :func:`to_onnx`, decoded."""
    return {e.key[len("sparsekd."):]: json.loads(e.value)
            for e in proto.metadata_props if e.key.startswith("sparsekd.")}


def dense_onnx(model: torch.nn.Module, name: str | None = None):
    """The dense part of ``model`` (see graphs.py) as a checked ONNX ModelProto."""
    g = dense_graph(model)
    axes = dict(g.dynamic_axes)
    if not g.takes_voxels:  # batch flows through to every head map
        axes.update({out: {0: "batch"} for out in g.output_names})
    cfg = model.cfg
    meta = {"model": name or cfg.name, "graph": "dense", "inputs": list(g.input_names),
            "outputs": list(g.output_names), "class_names": list(cfg.class_names),
            "point_features": list(cfg.point_features), "config": cfg.to_dict()}
    return to_onnx(g.module, g.example_inputs, g.input_names, g.output_names, axes, meta)
