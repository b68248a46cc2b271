"""onnxruntime backend: the dense graph exported at load time, run by onnxruntime (CPU, or CUDA where present)."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..models.center_head import HeadOutput
from ..ops.voxelize import VoxelBatch
from . import BackendError
from .graphs import BEV_INPUT, PILLAR_INPUTS, output_names
from .inputs import graph_inputs, join_outputs
from .onnx_io import dense_onnx

_NP_TO_ORT = {torch.float32: np.float32, torch.int32: np.int32}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendError("backend 'onnxruntime' needs the onnxruntime package: pip install -r requirements.txt "
                           "(CPU), or onnxruntime-gpu for its CUDA provider") from e
    return onnxruntime


def session_options(threads: int | None = None):
    """All graph optimisations (constant folding, Conv+BN/activation fusion, NCHWc conv layout on x86),
    as many intra-op threads as torch uses unless told otherwise, and no spinning: idle pool threads that
    spin hold the cores that torch's voxelisation, decoding and NMS need next (and other nodes on a robot)."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: the CPU provider warns about every unfused node otherwise
    return so


def providers_for(device: torch.device) -> list:
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise BackendError(
                f"backend 'onnxruntime' on {device}: this onnxruntime has no CUDA provider (providers: "
                f"{', '.join(available)}). Install onnxruntime-gpu for your CUDA version instead of onnxruntime, "
                "or use device cpu.")
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeRunner:
    """VoxelBatch -> HeadOutput through an onnxruntime session of the model's dense graph.

    ``export_s`` and ``session_s`` record what loading cost (export to ONNX, session creation).
    """

    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, device: torch.device, threads: int | None = None,
                 profile: bool = False):
        ort = import_onnxruntime()
        self.model, self.device = model, device
        t0 = time.perf_counter()
        self.takes_voxels = bool(model.cfg.is_pillar)
        proto = dense_onnx(model)
        t1 = time.perf_counter()
        so = session_options(threads)
        so.enable_profiling = profile
        self.session = ort.InferenceSession(proto.SerializeToString(), so, providers=providers_for(device))
        self.export_s, self.session_s = t1 - t0, time.perf_counter() - t1
        self.input_names = list(PILLAR_INPUTS if self.takes_voxels else (BEV_INPUT,))
        self.output_names = list(output_names(model.cfg))

    def _run_cpu(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feed = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs)}
        return [torch.from_numpy(a) for a in self.session.run(self.output_names, feed)]

    def _run_cuda(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        # IOBinding on torch's CUDA memory: no host round trip. Output shapes are static but for the batch.
        binding = self.session.io_binding()
        dev_id = self.device.index or 0
        inputs = [t.contiguous() for t in inputs]
        for n, t in zip(self.input_names, inputs):
            binding.bind_input(n, "cuda", dev_id, _NP_TO_ORT[t.dtype], tuple(t.shape), t.data_ptr())
        batch = 1 if self.takes_voxels else inputs[0].shape[0]
        outputs = []
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        for name in self.output_names:
            shape = tuple(batch if isinstance(d, str) or d is None else int(d) for d in shapes[name])
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            binding.bind_output(name, "cuda", dev_id, np.float32, shape, out.data_ptr())
            outputs.append(out)
        torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch's stream
        self.session.run_with_iobinding(binding)
        return outputs

    def run(self, graph_inputs_list: list[tuple[torch.Tensor, ...]]) -> list[HeadOutput]:
        """The graph on already prepared inputs (see backends/inputs.py), one run per tuple."""
        run = self._run_cuda if self.device.type == "cuda" else self._run_cpu
        return join_outputs((run(inputs) for inputs in graph_inputs_list), self.model.cfg)

    def __call__(self, vb: VoxelBatch) -> list[HeadOutput]:
        return self.run(graph_inputs(self.model, vb, self.takes_voxels))

    def end_profiling(self) -> str:
        """Path of onnxruntime's JSON profile (when made with profile=True)."""
        return self.session.end_profiling()
