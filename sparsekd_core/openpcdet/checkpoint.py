"""OpenPCDet / SparseKD checkpoint files: what they hold and how to read them safely.

``tools/train_utils/train_utils.py`` (checkpoint_state) saves a dict with ``model_state`` (the state_dict, from
``model.module`` under DDP), ``epoch``, ``it``, ``optimizer_state`` (the whole Adam state in training checkpoints)
and ``version`` (``"pcdet+<version>"``), in torch's older non-zip format when torch >= 1.4, often with CUDA
tensors. A bare state_dict, or one wrapped as ``state_dict`` / ``model``, is accepted too, and a ``module.`` prefix
(a DDP model saved directly) is removed.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch


class OpenPCDetCheckpointError(ValueError):
    """The checkpoint file cannot be read or holds no model weights; the message says what was found."""


@dataclass
class ReferenceCheckpoint:
    """model_state: the weights (CPU tensors, ``module.`` removed); version: ``"pcdet+0.5.2+..."`` or None;
    epoch / it as saved; notes: what reading it involved."""

    model_state: dict[str, torch.Tensor]
    version: Optional[str]
    epoch: Optional[int] = None
    it: Optional[int] = None
    notes: list[str] = field(default_factory=list)

    def pcdet_version(self) -> Optional[tuple[int, ...]]:
        """(major, minor, patch) of the OpenPCDet that saved it, when ``version`` names one."""
        m = re.match(r"pcdet\+(\d+)\.(\d+)(?:\.(\d+))?", self.version or "")
        return tuple(int(g or 0) for g in m.groups()) if m else None


def _numpy_data_globals() -> list:
    """numpy scalars and arrays, under the names numpy 1.x and 2.x pickle them with. OpenPCDet's one-cycle schedule
    writes numpy floats into the optimiser's param groups, so training checkpoints hold some; they are data."""
    import numpy as np
    from numpy._core import multiarray

    out: list = [np.ndarray, np.dtype]
    for fn in (multiarray.scalar, multiarray._reconstruct):
        out += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    out += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool")]
    return out


def _load(path: Path):
    try:
        # weights_only: a checkpoint is data; refusing arbitrary pickled objects keeps a downloaded file harmless.
        with torch.serialization.safe_globals(_numpy_data_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):
            raise OpenPCDetCheckpointError(f"{path} is not a readable PyTorch checkpoint ({str(e).splitlines()[0]}); "
                                           "the file may be truncated or not a .pth at all") from e
        unsupported = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        raise OpenPCDetCheckpointError(
            f"{path} holds Python objects that are not plain tensors and numbers ({unsupported}); "
            "sparsekd-import reads checkpoints with torch.load(weights_only=True) and will not run code from a file. "
            "Re-save only the weights: torch.save({'model_state': ckpt['model_state'], 'version': ckpt['version']}, "
            "'weights.pth') in the environment that wrote it") from e
    except Exception as e:
        raise OpenPCDetCheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}); the file may be truncated "
            "or not a .pth at all") from e


def read_reference_checkpoint(path: str | Path) -> ReferenceCheckpoint:
    """Load an OpenPCDet / SparseKD checkpoint on the CPU (see the module doc for the layouts accepted)."""
    path = Path(path)
    if not path.is_file():
        raise OpenPCDetCheckpointError(f"checkpoint not found: {path}")
    raw = _load(path)
    if not isinstance(raw, dict):
        raise OpenPCDetCheckpointError(f"{path} holds a {type(raw).__name__}, not a checkpoint dict")
    if raw.get("format") == "sparsekd":
        raise OpenPCDetCheckpointError(f"{path} is already a sparsekd checkpoint: use it directly (no import needed)")
    notes = []
    for key in ("model_state", "state_dict", "model"):
        if isinstance(raw.get(key), dict):
            state, found = raw[key], key
            break
    else:
        if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
            state, found = raw, None
        else:
            keys = ", ".join(sorted(map(str, raw))[:8])
            raise OpenPCDetCheckpointError(
                f"{path} has no model weights: OpenPCDet checkpoints keep them under 'model_state' "
                f"(found keys: {keys}). An optimizer-only file (*_optim.pth) has none")
    if found != "model_state":
        where = "the top level" if found is None else repr(found)
        notes.append(f"weights read from {where} (OpenPCDet uses 'model_state')")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("'module.' prefix (a DDP-wrapped model) removed")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise OpenPCDetCheckpointError(
            f"{path}: model weight {bad[0]!r} is a {type(state[bad[0]]).__name__}, not a tensor")
    version = raw.get("version")
    return ReferenceCheckpoint({k: v.detach().cpu() for k, v in state.items()},
                               version if isinstance(version, str) else None,
                               raw.get("epoch") if isinstance(raw.get("epoch"), int) else None,
                               raw.get("it") if isinstance(raw.get("it"), int) else None, notes)
