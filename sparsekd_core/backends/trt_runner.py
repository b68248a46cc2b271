"""TensorRT backend: the dense graph's ONNX built into a TensorRT engine (cached on disk), run on torch's CUDA memory.

Only where the ``tensorrt`` Python package and a CUDA GPU exist; elsewhere a BackendError says which is missing.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch

from ..models.center_head import HeadOutput
from ..ops.voxelize import VoxelBatch
from . import BackendError
from .graphs import BEV_INPUT, PILLAR_INPUTS, dense_graph, output_names
from .inputs import graph_inputs, join_outputs
from .onnx_io import dense_onnx

ENGINE_CACHE = Path(os.environ.get("SPARSEKD_TRT_CACHE", Path.home() / ".cache" / "sparsekd" / "tensorrt"))
_WORKSPACE_BYTES = 4 << 30
MAX_BATCH = 8  # clouds per call a BEV-map engine accepts


def _import_trt():
    try:
        import tensorrt
    except ImportError as e:
        raise BackendError("backend 'tensorrt' needs NVIDIA TensorRT's Python package (pip install tensorrt, "
                           "matching your CUDA) and a CUDA GPU; use backend onnxruntime or torch here") from e
    return tensorrt


def _torch_dtype(trt, dtype):
    return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
            trt.int64: torch.int64, trt.bool: torch.bool}[dtype]


def build_engine(onnx_bytes: bytes, profile_shapes: dict[str, tuple[tuple, tuple, tuple]], fp16: bool,
                 cache_dir: Path | None = ENGINE_CACHE) -> bytes:
    """ONNX bytes -> a serialized TensorRT engine.

    ``profile_shapes``: (min, opt, max) shapes of every dynamic input. Engines are cached in ``cache_dir``
    under a hash of the ONNX, the shapes, the precision, the TensorRT version and the GPU's name.
    """
    trt = _import_trt()
    key = hashlib.sha256(onnx_bytes + repr((sorted(profile_shapes.items()), fp16, trt.__version__,
                                            torch.cuda.get_device_name())).encode()).hexdigest()[:24]
    cached = cache_dir / f"{key}.engine" if cache_dir else None
    if cached is not None and cached.exists():
        return cached.read_bytes()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8; implicit in 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse the exported ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile_shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile_shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise BackendError("TensorRT failed to build an engine from the exported ONNX (see its log above)")
    engine = bytes(engine)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(engine)
        tmp.replace(cached)
    return engine


class TensorRTRunner:
    """VoxelBatch -> HeadOutput through a TensorRT engine of the model's dense graph (fp16 on request).

    ``build_s`` records export plus engine build (or cache load) time.
    """

    name = "tensorrt"

    def __init__(self, model: torch.nn.Module, device: torch.device, fp16: bool = False,
                 cache_dir: Path | None = ENGINE_CACHE):
        if device.type != "cuda" or not torch.cuda.is_available():
            raise BackendError(f"backend 'tensorrt' runs on a CUDA GPU only (device is {device}, torch sees "
                               f"{'a' if torch.cuda.is_available() else 'no'} CUDA GPU); use device cuda, or backend "
                               "onnxruntime/torch on a CPU")
        trt = _import_trt()
        t0 = time.perf_counter()
        self.model, self.device = model, device
        self.takes_voxels = bool(model.cfg.is_pillar)
        proto = dense_onnx(model)
        if self.takes_voxels:  # the voxel count is the one dynamic axis
            vox = model.cfg.voxelization
            p, f, hi = vox.max_points_per_voxel, len(model.cfg.point_features), vox.max_voxels_test
            opt = min(hi, 32000)  # a dense 360-degree sweep; kernels are tuned for this count
            shapes = {"voxels": ((1, p, f), (opt, p, f), (hi, p, f)), "num_points": ((1,), (opt,), (hi,)),
                      "coords": ((1, 4), (opt, 4), (hi, 4))}
        else:  # the batch is the one dynamic axis of the BEV map: tuned for 1 cloud, up to MAX_BATCH
            _, c, h, w = dense_graph(model).example_inputs[0].shape
            shapes = {BEV_INPUT: ((1, c, h, w), (1, c, h, w), (MAX_BATCH, c, h, w))}
        with torch.cuda.device(device):
            engine_bytes = build_engine(proto.SerializeToString(), shapes, fp16, cache_dir)
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_bytes)
            self.context = self.engine.create_execution_context()
        self.trt = trt
        self.input_names = list(PILLAR_INPUTS if self.takes_voxels else (BEV_INPUT,))
        self.output_names = list(output_names(model.cfg))
        self.build_s = time.perf_counter() - t0

    def _run(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        ctx = self.context
        keep = []
        for name, t in zip(self.input_names, inputs):
            t = t.to(self.device, _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))).contiguous()
            keep.append(t)
            ctx.set_input_shape(name, tuple(t.shape))
            ctx.set_tensor_address(name, t.data_ptr())
        outputs = []
        for name in self.output_names:
            out = torch.empty(tuple(ctx.get_tensor_shape(name)), device=self.device,
                              dtype=_torch_dtype(self.trt, self.engine.get_tensor_dtype(name)))
            ctx.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not ctx.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise BackendError("TensorRT execution failed (see its log)")
        return [o.float() for o in outputs]

    def run(self, graph_inputs_list: list[tuple[torch.Tensor, ...]]) -> list[HeadOutput]:
        """The engine on already prepared inputs (see backends/inputs.py), one run per tuple."""
        return join_outputs((self._run(inputs) for inputs in graph_inputs_list), self.model.cfg)

    def __call__(self, vb: VoxelBatch) -> list[HeadOutput]:
        return self.run(graph_inputs(self.model, vb, self.takes_voxels))
