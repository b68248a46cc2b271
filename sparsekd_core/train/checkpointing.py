"""Training checkpoints: written atomically, the last N kept, and everything needed to resume exactly.

A training checkpoint is an ordinary model checkpoint (``sparsekd_core.checkpoint.save_checkpoint``: the
file alone runs the model) with a ``training`` section holding the run's state:

    epoch, batch_in_epoch, global_step     where the run stands (the next batch to train on)
    optimizer, scheduler, grad_scaler      their state_dicts
    extra_state                            trainable state outside the model (KD adapters), by name
    rng                                    torch CPU (and CUDA) generators, numpy's global MT19937 and
                                           python's ``random``, as tensors / lists of ints
    run                                    the run's settings, so that a resume with other settings is refused

Everything in it is a tensor, a number, a string, a list or a dict, so the file still loads with
``torch.load(weights_only=True)``. Files are ``ckpt_e{epoch}_s{global_step}.pth`` in the run directory; an
interrupted write leaves only a hidden temp file behind, never a half-written checkpoint.
"""
from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, read_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

CKPT_PATTERN = re.compile(r"^ckpt_e(\d+)_s(\d+)\.pth$")


# ---------------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """Every random generator the training loop may draw from, in a weights_only-loadable form."""
    np_state = np.random.get_state(legacy=False)
    if np_state["bit_generator"] != "MT19937":
        raise RuntimeError(f"numpy's global generator is {np_state['bit_generator']}, expected MT19937")
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": int(npst["pos"])},
        "has_gauss": int(npst["has_gauss"]),
        "gauss": float(npst["gauss"]),
    })
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            log.warning("checkpoint holds CUDA RNG states for %d devices, this machine has %d: not restored",
                        len(cuda_states), torch.cuda.device_count())


# ---------------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class CheckpointRef:
    """A training checkpoint file of a run directory."""

    path: Path
    epoch: int
    global_step: int


def list_checkpoints(directory: str | Path) -> list[CheckpointRef]:
    """The run's training checkpoints, oldest (lowest global step) first."""
    directory = Path(directory)
    refs = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = CKPT_PATTERN.match(p.name)
            if m and p.is_file():
                refs.append(CheckpointRef(p, int(m.group(1)), int(m.group(2))))
    return sorted(refs, key=lambda r: (r.global_step, r.epoch))


class CheckpointManager:
    """Writes ``ckpt_e{epoch:03d}_s{step:07d}.pth`` into ``directory`` and keeps the newest ``keep_last``.

    ``keep_last`` <= 0 keeps every checkpoint.
    """

    def __init__(self, directory: str | Path, keep_last: int = 3):
        self.directory = Path(directory)
        self.keep_last = int(keep_last)

    def path_for(self, epoch: int, global_step: int) -> Path:
        return self.directory / f"ckpt_e{epoch:03d}_s{global_step:07d}.pth"

    def save(self, model: torch.nn.Module, training: dict[str, Any], meta: dict | None = None) -> Path:
        """Atomically write a checkpoint of ``model`` with ``training`` state (needs epoch and global_step),
        then delete the oldest ones beyond ``keep_last``."""
        path = self.path_for(int(training["epoch"]), int(training["global_step"]))
        save_checkpoint(path, model, meta=meta, training=training)
        self.prune()
        return path

    def prune(self) -> list[Path]:
        """Delete all but the newest ``keep_last`` checkpoints; returns what was deleted."""
        if self.keep_last <= 0:
            return []
        refs = list_checkpoints(self.directory)
        doomed = [r.path for r in refs[:-self.keep_last]] if len(refs) > self.keep_last else []
        for p in doomed:
            p.unlink(missing_ok=True)
        return doomed

    def latest(self) -> Path | None:
        """The newest checkpoint that reads back (a corrupt newest file is skipped with a warning)."""
        for ref in reversed(list_checkpoints(self.directory)):
            try:
                payload = read_checkpoint(ref.path)
            except CheckpointError as e:
                log.warning("skipping unreadable checkpoint %s: %s", ref.path, e)
                continue
            if "training" in payload:
                return ref.path
        return None


def read_training_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint and check it carries training state; raises CheckpointError saying what to do."""
    payload = read_checkpoint(path)
    training = payload.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(
            f"{path} holds model weights only (no optimiser/schedule state), so training cannot resume from it. "
            "Resume from a ckpt_e*_s*.pth file of the run directory, or start a new run.")
    missing = [k for k in ("epoch", "batch_in_epoch", "global_step", "optimizer", "scheduler", "rng")
               if k not in training]
    if missing:
        raise CheckpointError(f"{path}: training state lacks {', '.join(missing)}; the file was not written by "
                              "sparsekd-train (or is from an incompatible version).")
    return payload
