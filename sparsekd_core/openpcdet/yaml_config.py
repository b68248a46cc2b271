"""OpenPCDet's YAML configs, with their ``_BASE_CONFIG_`` includes resolved the way OpenPCDet resolves them.

OpenPCDet (pcdet/config.py, ``merge_new_config``) treats ``_BASE_CONFIG_`` at any level of a mapping: the base
file is read and its top-level keys *replace* those of the mapping at that level (a shallow update), then the
including file's own keys are merged in, recursively for mappings; any other value, lists included (e.g.
``DATA_PROCESSOR``), replaces what the base had. A base file's own ``_BASE_CONFIG_`` is not followed. The path is
relative to the working directory OpenPCDet runs from (its ``tools/`` folder, so ``cfgs/dataset_configs/x.yaml``);
here it is also tried against the config file's folder and each of its parents, so a config inside an OpenPCDet
checkout resolves from anywhere.

Written here rather than imported: OpenPCDet is not installable without its CUDA ops, and the rule is 15 lines.
"""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError, read_yaml

BASE_KEY = "_BASE_CONFIG_"


class OpenPCDetConfigError(ValueError):
    """An OpenPCDet config cannot be read or used; the message names the file or key and what to do."""


def _read(path: Path) -> dict:
    try:
        return read_yaml(path)
    except ConfigError as e:
        raise OpenPCDetConfigError(str(e)) from e


def find_base(base: str, config_file: Path, cwd: Path | None = None) -> Path:
    """The file a ``_BASE_CONFIG_`` value names: as OpenPCDet opens it (relative to the working directory),
    else relative to the config's folder or one of its parents. Error lists every place tried."""
    p = Path(base)
    if p.is_absolute():
        tried = [p]
    else:
        folder = config_file.resolve().parent
        tried = [(cwd or Path.cwd()) / p] + [d / p for d in (folder, *folder.parents)]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    shown = "\n  ".join(str(t) for t in tried[:6]) + ("\n  ..." if len(tried) > 6 else "")
    raise OpenPCDetConfigError(
        f"{config_file}: its {BASE_KEY} '{base}' was not found. OpenPCDet opens it relative to the folder it runs "
        f"from (tools/); tried:\n  {shown}\nRun from OpenPCDet's tools/ folder, keep the config inside an OpenPCDet "
        "checkout (tools/cfgs/...), or copy the base file beside the config at that relative path.")


def _merge(config: dict, new: dict, config_file: Path, cwd: Path | None) -> dict:
    if BASE_KEY in new:
        config.update(_read(find_base(str(new[BASE_KEY]), config_file, cwd)))
    for key, value in new.items():
        if not isinstance(value, dict):
            config[key] = value
            continue
        if not isinstance(config.get(key), dict):
            config[key] = {}
        _merge(config[key], value, config_file, cwd)
    return config


def load_openpcdet_config(path: str | Path, cwd: str | Path | None = None) -> dict:
    """An OpenPCDet YAML config file -> one plain dict with every ``_BASE_CONFIG_`` resolved (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise OpenPCDetConfigError(
            f"OpenPCDet config not found: {path}. Pass the YAML the checkpoint was trained with (e.g. "
            "tools/cfgs/waymo_models/centerpoint.yaml in an OpenPCDet or SparseKD checkout).")
    return _merge({}, _read(path), path, Path(cwd) if cwd is not None else None)
