"""Inference backends for the dense part of a detector.

``torch`` (default) runs the whole model eagerly. ``onnxruntime`` and ``tensorrt`` export the dense part
(backends/graphs.py: pillar models from the voxels on, voxel models from the BEV map on) to ONNX at load
time and run it there; voxelisation, the sparse 3D backbone of voxel models, decoding and NMS stay torch.
A runner maps a VoxelBatch to the head maps (one HeadOutput per task head), so the Detector decodes every
backend the same way.

This module imports no torch, so that light tools (the ROS node's parameter table) can name the backends.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from ..models.center_head import HeadOutput
    from ..ops.voxelize import VoxelBatch

BACKENDS = ("torch", "onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "BackendError", "DenseRunner", "check_backend", "make_dense_runner"]


class BackendError(RuntimeError):
    """A backend cannot run here; the message names what is missing and the fix."""


class DenseRunner(Protocol):
    name: str
    takes_voxels: bool  # pillar graphs take voxels; voxel models' graphs take the BEV map

    def run(self, graph_inputs_list: list[tuple[torch.Tensor, ...]]) -> list[HeadOutput]: ...

    def __call__(self, vb: VoxelBatch) -> list[HeadOutput]: ...


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    return backend


def make_dense_runner(model: torch.nn.Module, backend: str, device: torch.device, fp16: bool = False,
                      threads: int | None = None) -> DenseRunner | None:
    """The runner for ``backend``; None for torch (the Detector calls the model itself).

    ``threads``: CPU threads of onnxruntime's intra-op pool (default: torch's, so both backends get the same).
    """
    check_backend(backend)
    if backend == "torch":
        return None
    if backend == "onnxruntime":
        from .ort_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model, device, threads=threads)
    from .trt_runner import TensorRTRunner

    return TensorRTRunner(model, device, fp16=fp16)
