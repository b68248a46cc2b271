"""spconv import point, with the compatibility shims its CPU path needs.

1. spconv 2.3.x asks for ``torch.cuda.current_stream()`` unconditionally in its backward
   (and hash) ops, which raises on a CPU-only torch build even though the CPU
   gather-matmul-scatter path behind it needs no stream. We hand those ops stream 0
   (the default stream handle spconv uses for CPU work) when CUDA is not available.
2. spconv's CPU scatter-add in ``indice_conv`` / ``indice_conv_backward`` races when torch
   runs more than one intra-op thread: a strided SparseConv3d disagreed with a dense conv3d
   reference in 3 of 30 trials at 2 threads (max error 0.53) and never at 1 thread. Those two
   ops run single-threaded on CPU tensors; everything around them keeps its threads.
3. A CUDA build of spconv gives every conv layer the implicit-GEMM algorithm, which runs on CUDA tensors
   only, so the same model on CPU tensors (``device: cpu`` on a GPU machine, the FLOP counter, a check
   against the CPU) failed with "implicit gemm only support cuda". Such a layer runs the native
   algorithm, spconv's CPU algorithm, for CPU input; the weights' layout is the same for both.
Everything else imports spconv from here so the shims are applied exactly once.
"""
from __future__ import annotations

import functools
import logging
import warnings

import torch

# spconv calls torch.fx.is_fx_tracing() on every forward, which torch 2.13 answers with a
# deprecation warning per call; it says nothing about our code.
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
# spconv's SparseConvTensor.dense() indexes with a list; torch warns about it on every call.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing", module="spconv")

import spconv.pytorch as spconv  # noqa: F401  (re-exported)
from spconv.core import ConvAlgo
from spconv.pytorch import ops as _spconv_ops
from spconv.pytorch.conv import SparseConvolution as _SparseConvolution
from spconv.pytorch import hash as _spconv_hash
from spconv.pytorch.utils import PointToVoxel  # noqa: F401  (re-exported)

_original_get_current_stream = _spconv_ops.get_current_stream


def _current_stream_or_default() -> int:
    if torch.cuda.is_available():
        return _original_get_current_stream()
    return 0


_spconv_ops.get_current_stream = _current_stream_or_default
_spconv_hash.get_current_stream = _current_stream_or_default


def _single_threaded_on_cpu(fn):
    @functools.wraps(fn)
    def wrapper(features, *args, **kwargs):
        threads = torch.get_num_threads()
        if features.is_cuda or threads == 1:
            return fn(features, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(features, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    wrapper._sparsekd_single_threaded = True
    return wrapper


for _name in ("indice_conv", "indice_conv_backward"):
    if not getattr(getattr(_spconv_ops, _name), "_sparsekd_single_threaded", False):
        setattr(_spconv_ops, _name, _single_threaded_on_cpu(getattr(_spconv_ops, _name)))


def _native_algorithm_on_cpu(forward):
    @functools.wraps(forward)
    def wrapper(self, input, *args, **kwargs):
        if self.algo == ConvAlgo.Native or input.features.is_cuda:
            return forward(self, input, *args, **kwargs)
        algo, self.algo = self.algo, ConvAlgo.Native
        try:
            return forward(self, input, *args, **kwargs)
        finally:
            self.algo = algo

    wrapper._sparsekd_native_on_cpu = True
    return wrapper


if not getattr(_SparseConvolution.forward, "_sparsekd_native_on_cpu", False):
    _SparseConvolution.forward = _native_algorithm_on_cpu(_SparseConvolution.forward)

__all__ = ["spconv", "PointToVoxel"]
