"""Training recipes: a YAML that fixes what to train and how (model, teacher, KD, epochs, batch size, data),
so a paper-scale run is one ``sparsekd-train --recipe NAME --data ROOT --teacher T.pth``.

The zoo's recipes live in ``sparsekd_core/configs/recipes/`` (the reference Waymo, KITTI and nuScenes schedules);
``sparsekd-train --list-recipes`` lists them. Command-line flags override a recipe's values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import CONFIG_DIR, ConfigError, bundled_names, from_dict, read_yaml, resolve_bundled_yaml

RECIPE_DIR = CONFIG_DIR / "recipes"


@dataclass
class TrainRecipe:
    """One recipe file.

    model: the student (or the detector trained alone), zoo name or YAML relative to the recipe file.
    teacher_model: the zoo model the teacher checkpoint must be (checked when --teacher is given).
    teacher: teacher checkpoint path (usually given on the command line).
    kd: KD recipe spec for ``--kd`` (none, sparsekd, a comma list, or a YAML relative to the recipe file).
    dataset: the layout the recipe is meant for ("kitti", "waymo" or "nuscenes"), checked against --data.
    waymo_interval: keep every k-th Waymo frame (the paper trains on 20% of the frames: 5).
    epochs, batch_size (per GPU), lr: the schedule (None = the model config's ``train`` values).
    eval_every: evaluate every N epochs (0 = at the end only).
    paper: the published figure this recipe reproduces (free-form, for the summary and README).
    """

    model: str
    description: str = ""
    teacher_model: Optional[str] = None
    teacher: Optional[str] = None
    kd: str = "none"
    dataset: Optional[str] = None
    waymo_interval: int = 1
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    eval_every: int = 0
    paper: dict[str, Any] = field(default_factory=dict)


def list_recipes() -> list[str]:
    return bundled_names(RECIPE_DIR)


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    return resolve_bundled_yaml(name_or_path, RECIPE_DIR, "recipe")


def _relative(value: str | None, base: Path) -> str | None:
    """Recipe-relative YAML paths become absolute; names are kept."""
    if value and str(value).endswith((".yaml", ".yml")) and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value


def load_recipe(name_or_path: str | Path) -> TrainRecipe:
    """A bundled recipe by name, or a recipe YAML path -> TrainRecipe (strict: unknown keys are errors)."""
    path = resolve_recipe_path(name_or_path)
    recipe = from_dict(TrainRecipe, read_yaml(path), source=str(path))
    recipe.model = _relative(recipe.model, path.parent)
    recipe.kd = _relative(recipe.kd, path.parent) or "none"
    if recipe.dataset not in (None, "kitti", "waymo", "nuscenes"):
        raise ConfigError(f"{path}: dataset must be kitti, waymo or nuscenes (got {recipe.dataset!r})")
    if recipe.waymo_interval < 1:
        raise ConfigError(f"{path}: waymo_interval must be >= 1")
    return recipe
