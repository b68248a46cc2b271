"""spconv import point, with the one compatibility shim CPU training needs.

spconv 2.3.x asks for ``torch.cuda.current_stream()`` unconditionally in its backward
(and hash) ops, which raises on a CPU-only torch build even though the CPU
gather-matmul-scatter path behind it needs no stream. We hand those ops stream 0
(the default stream handle spconv uses for CPU work) when CUDA is not available.
Everything else imports spconv from here so the shim is applied exactly once.
"""
from __future__ import annotations

import logging
import warnings

import torch

# spconv calls torch.fx.is_fx_tracing() on every forward, which torch 2.13 answers with a
# deprecation warning per call; it says nothing about our code.
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
# spconv's SparseConvTensor.dense() indexes with a list; torch warns about it on every call.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing", module="spconv")

import spconv.pytorch as spconv  # noqa: F401  (re-exported)
from spconv.pytorch import ops as _spconv_ops
from spconv.pytorch import hash as _spconv_hash
from spconv.pytorch.utils import PointToVoxel  # noqa: F401  (re-exported)

_original_get_current_stream = _spconv_ops.get_current_stream


def _current_stream_or_default() -> int:
    if torch.cuda.is_available():
        return _original_get_current_stream()
    return 0


_spconv_ops.get_current_stream = _current_stream_or_default
_spconv_hash.get_current_stream = _current_stream_or_default

__all__ = ["spconv", "PointToVoxel"]
