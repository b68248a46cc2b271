"""Checkpoints: one file holds everything needed to run a model.

Payload (a dict saved with torch.save, loadable with weights_only=True):
  format: "sparsekd", format_version: int, config: ModelConfig as a dict, state_dict,
  class_names, point_features, voxel_size, point_cloud_range, meta (free-form: epoch, metrics, provenance),
  and, for training checkpoints only, "training" (optimizer, scheduler, epoch, RNG states).
Writes are atomic (temp file + rename) so a crash never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, ModelConfig, load_model_config, model_config_from_dict
from .models.center_head import upgrade_single_head_state_dict

FORMAT = "sparsekd"
# 2: CenterHead has one task head per class group (head.heads.<i>.<output>); format 1 files (a single head at
#    head.heads.<output>) are upgraded when read.
FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used; the message says why and what to do."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def make_payload(cfg: ModelConfig, state_dict: dict, meta: dict | None = None, fp16: bool = False) -> dict:
    sd = {k: (v.detach().cpu().half() if fp16 and v.is_floating_point() else v.detach().cpu())
          for k, v in state_dict.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "state_dict": sd,
        "class_names": list(cfg.class_names),
        "point_features": list(cfg.point_features),
        "voxel_size": list(cfg.voxelization.voxel_size),
        "point_cloud_range": list(cfg.voxelization.point_cloud_range),
        "meta": dict(meta or {}),
    }


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict | None = None, fp16: bool = False,
                    training: dict | None = None) -> Path:
    """Write a self-contained checkpoint of ``model`` (a BEVDetector). ``fp16`` halves the file size."""
    model = getattr(model, "module", model)  # unwrap DDP
    payload = make_payload(model.cfg, model.state_dict(), meta, fp16)
    if training is not None:
        payload["training"] = training
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | Path) -> dict:
    """Load and check a checkpoint payload. Raises CheckpointError with the reason and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, wrong pickle...
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {e}). The file may be truncated or corrupt: "
            "copy it again or re-export it with sparsekd-train."
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a sparsekd checkpoint (no 'format: {FORMAT}' marker). A checkpoint from OpenPCDet or "
            "SparseKD holds only weights: convert it with its training config, sparsekd-import CKPT --config CFG.yaml "
            "--out OUT.pth, and use OUT.pth."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, newer than this sparsekd_ros understands "
            f"({FORMAT_VERSION}). Upgrade sparsekd_ros to load it."
        )
    missing = [k for k in ("config", "state_dict", "class_names", "point_features") if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: the file is incomplete; re-export it.")
    if version < 2:
        payload["state_dict"] = upgrade_single_head_state_dict(payload["state_dict"])
        payload["format_version"] = FORMAT_VERSION
    return payload


def config_from_payload(payload: dict, source: str = "<checkpoint>") -> ModelConfig:
    try:
        return model_config_from_dict(payload["config"], source=f"{source} (embedded config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from e


def load_state_strict(model: torch.nn.Module, state_dict: dict, source: str = "<checkpoint>") -> None:
    """Load weights, explaining a mismatch (missing, unexpected or wrongly shaped tensors)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} with another shape (e.g. {'; '.join(wrong[:3])})")
        raise CheckpointError(
            f"{source}: the weights do not fit the model config: {', '.join(parts)}. "
            "The config and the state_dict come from different models."
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()}, strict=True)


def model_from_payload(payload: dict, source: str = "<checkpoint>"):
    """A read_checkpoint payload -> its BEVDetector (eval mode, CPU) with its weights."""
    from .models.detector import build_detector

    model = build_detector(config_from_payload(payload, source))
    load_state_strict(model, payload["state_dict"], source)
    return model.eval()


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Checkpoint file -> (BEVDetector in eval mode on ``device``, payload)."""
    payload = read_checkpoint(path)
    return model_from_payload(payload, str(path)).to(device), payload


def write_untrained_checkpoint(model: str, path: str | Path, seed: int = 0) -> Path:
    """A checkpoint with randomly initialised weights (for tests and timing, not for detection)."""
    from .models.detector import build_detector

    torch.manual_seed(seed)
    cfg = load_model_config(model)
    det = build_detector(cfg)
    return save_checkpoint(path, det, meta={"untrained": True, "seed": seed,
                                            "note": "random weights: for tests and timing only"})


def deflate_checkpoint(path: Path) -> Path:
    """Recompress a torch.save file's zip entries with deflate, in place (atomically), world-readable.

    torch.save writes its zip uncompressed; torch.load reads deflated entries as well (its zip reader is
    miniz), so the file stays an ordinary checkpoint, about 8% smaller for fp16 weights: what lets
    cp_pillar_v0.64 (5.22 M parameters, 10.45 MB as raw fp16) fit the 10 MB cap.
    """
    tmp = path.with_name(f".{path.name}.deflate.tmp")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for entry in src.infolist():
                dst.writestr(entry.filename, src.read(entry.filename))
        tmp.chmod(0o644)  # shipped in the package: readable by everyone
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def record_post_settings(source: str | Path, out: str | Path, settings: dict, meta_key: str, note: str) -> Path:
    """Write ``source`` to ``out`` (the same path is fine) with ``settings`` merged into its ``head.post`` and
    ``note`` (how they were chosen) as meta ``meta_key``.

    The weights are copied as stored (fp16 stays fp16, bit for bit) and the file is written deflated, so a bundled
    model stays under its size cap. The new config is validated first: a setting the model refuses (a class it
    lacks, a score outside [0, 1]) raises CheckpointError and nothing is written.
    """
    payload = read_checkpoint(source)
    config = dict(payload["config"])
    head = dict(config.get("head") or {})
    head["post"] = {**dict(head.get("post") or {}), **settings}
    config["head"] = head
    config_from_payload({**payload, "config": config}, source=str(source))  # raises before anything is written
    payload["config"] = config
    payload["meta"] = {**dict(payload.get("meta") or {}), meta_key: str(note)}
    return deflate_checkpoint(Path(atomic_torch_save(payload, out)))


def record_operating_thresholds(source: str | Path, out: str | Path, thresholds: dict[str, float], note: str) -> Path:
    """:func:`record_post_settings` of ``thresholds`` as the operating point (``head.post.operating_thresholds``,
    meta "operating_point")."""
    operating = {str(k): float(v) for k, v in thresholds.items()}
    return record_post_settings(source, out, {"operating_thresholds": operating}, "operating_point", note)
