"""KD recipes: typed settings for every distillation method, loaded from YAML and composable.

A recipe file (sparsekd_core/configs/kd/NAME.yaml or any path) is a mapping whose keys mirror KDRecipe:

    description: ...
    include: [pivotal, label, tgi]      # optional: recipes merged first, in order (names or paths)
    teacher_mode: train                 # train (BN on batch statistics; running stats frozen) | eval (default)
    centres_outside_map: drop           # drop | clamp (the reference's rule; see KDRecipe)
    logit: {enabled: true, hm_weight: 10.0, mask: {foreground: true, soft: true}, reg_weight: 0.2}
    fitnet: {...}  mimic: {...}  label: {...}  tgi: {...}
    family:                             # optional overrides for one model family, merged by for_student()
      pillar: {logit: {hm_weight: 7.0}}
      anchor: {logit: {hm_weight: 15.0}}  # anchor-head students, merged after voxel / pillar

``load_kd_recipe("logit,label,tgi")`` merges several recipes left to right (later keys win), so methods
compose. Loading is strict (sparsekd_core.config.from_dict): an unknown key or a wrong type is an error
that names the key and the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import (KD_DIR, ConfigError, ModelConfig, bundled_names, deep_merge, from_dict, read_yaml,
                      resolve_bundled_yaml)

# Backbone families (every model is one) and the head family "anchor" (anchor-head models), merged in that order.
FAMILIES = ("voxel", "pillar", "anchor")
TEACHER_MODES = ("eval", "train")
TGI_MODES = ("first", "bn_scale", "l1")
OUTSIDE_MAP = ("drop", "clamp")
ROI_SOURCES = ("gt", "teacher", "student")


@dataclass
class PivotalMask:
    """Which heatmap positions logit KD looks at, and how much each weighs (all off = the whole map, weight 1).

    The mask lives on the teacher's grid; "targets" are the teacher's ground-truth-only targets (as the reference's
    ``target_dicts_tea``), never the label-KD-augmented ones the student's detection loss uses.
    score_threshold: keep positions where the teacher's max class probability exceeds this (0 = off).
    rank: keep the teacher's top-``rank`` (class, position) scores per sample, as positions (-1 or 0 = off).
    foreground: keep positions where the target heatmap is > 0 for any class.
    soft: weight each position by the teacher's max class probability and, with ``foreground``, by the target
        heatmap's value there (max over classes: the gaussian, 1 at a centre, falling off at its edge), i.e.
        confidence x gaussian, as the reference's soft foreground mask.
    """

    score_threshold: float = 0.0
    rank: int = -1
    foreground: bool = False
    soft: bool = False


@dataclass
class LogitKDConfig:
    """Logit KD. Reference SparseKD: hm_weight 10 (voxel) / 7 (pillar), foreground + soft mask, reg_weight 0.2
    (0 for pillar students: regression KD compares the maps cell by cell and needs maps of the same size)."""

    enabled: bool = False
    hm_weight: float = 10.0
    mask: PivotalMask = field(default_factory=PivotalMask)
    reg_weight: float = 0.2
    code_weights: Optional[list[float]] = None  # None: the student's head.loss.code_weights


@dataclass
class FitNetConfig:
    """FitNet feature KD: MSE between adapted student and teacher BEV features (2D backbone outputs)."""

    enabled: bool = False
    weight: float = 0.1
    adapter_kernel: int = 1  # 1 or 3
    adapter_norm: bool = True
    adapter: str = "auto"  # auto (only when channels differ) | always


@dataclass
class MimicConfig:
    """ROI-pooled feature imitation: a grid x grid sample inside each ROI of both BEV maps, MSE."""

    enabled: bool = False
    weight: float = 0.1
    roi_source: str = "gt"  # gt | teacher | student
    grid: int = 7
    score_threshold: float = 0.3  # for teacher / student ROIs
    max_rois: int = 128  # per sample, highest scores first (ground truth: first ones)
    adapter_kernel: int = 1
    adapter_norm: bool = True


@dataclass
class LabelKDConfig:
    """Label KD: teacher boxes above per-class thresholds join the ground truth for the student's detection targets.

    score_thresholds: one value for every class, or one per class in the model's class order (score > threshold).
    nms: run the teacher's NMS on its boxes first. The reference does not (KD.NMS_CONFIG.ENABLED: False): every one
        of the teacher's top-K cells (K = its post.max_per_sample) above the thresholds becomes a box.
    teacher_first: put the teacher's boxes before the ground truth (the reference's GT_FIRST: False). The order only
        matters past the head's max_objects (500): the boxes after it get no target. False (ours) keeps the ground
        truth first, so a teacher that fills the cap cannot push the real labels out.
    drop_overlap_iou: drop a teacher box whose BEV IoU with some gt box exceeds this (None = keep all,
        as the reference does).
    """

    enabled: bool = False
    score_thresholds: list[float] = field(default_factory=lambda: [0.6])
    nms: bool = False
    teacher_first: bool = False
    drop_overlap_iou: Optional[float] = None


@dataclass
class TGIConfig:
    """Teacher-guided initialisation (kd/tgi.py): first | bn_scale | l1 channel selection."""

    enabled: bool = False
    mode: str = "first"


@dataclass
class KDRecipe:
    """A complete distillation recipe; every method is off unless its section enables it.

    teacher_mode: train runs the teacher's BN on the batch's statistics (the reference's TEACHER_MODE: train; its
        running statistics stay frozen here); eval on its stored ones.
    centres_outside_map: what target assignment does with a box whose centre lies outside the BEV map (in practice
        a label-KD teacher box: datasets already drop such ground truth). drop (ours): it gets no target, since no
        cell holds its centre. clamp (the reference, center_head.py): its centre moves into the border cell, whose
        heatmap peak and offset target (0.5) then describe a box that is not there.
    """

    name: str = "none"
    description: str = ""
    teacher_mode: str = "eval"
    centres_outside_map: str = "drop"
    logit: LogitKDConfig = field(default_factory=LogitKDConfig)
    fitnet: FitNetConfig = field(default_factory=FitNetConfig)
    mimic: MimicConfig = field(default_factory=MimicConfig)
    label: LabelKDConfig = field(default_factory=LabelKDConfig)
    tgi: TGIConfig = field(default_factory=TGIConfig)
    family: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_teacher(self) -> bool:
        return any(s.enabled for s in (self.logit, self.fitnet, self.mimic, self.label, self.tgi))

    @property
    def needs_teacher_forward(self) -> bool:
        """True when a training step runs the teacher (TGI alone only needs its weights once)."""
        return any(s.enabled for s in (self.logit, self.fitnet, self.mimic, self.label))

    def enabled_methods(self) -> list[str]:
        return [n for n in ("logit", "fitnet", "mimic", "label", "tgi") if getattr(self, n).enabled]

    def validate(self, source: str = "<recipe>") -> "KDRecipe":
        def fail(msg: str):
            raise ConfigError(f"{source}: {msg}")

        if self.teacher_mode not in TEACHER_MODES:
            fail(f"teacher_mode must be one of {TEACHER_MODES} (got {self.teacher_mode!r})")
        if self.centres_outside_map not in OUTSIDE_MAP:
            fail(f"centres_outside_map must be one of {OUTSIDE_MAP} (got {self.centres_outside_map!r})")
        if self.tgi.mode not in TGI_MODES:
            fail(f"tgi.mode must be one of {TGI_MODES} (got {self.tgi.mode!r})")
        if self.mimic.roi_source not in ROI_SOURCES:
            fail(f"mimic.roi_source must be one of {ROI_SOURCES} (got {self.mimic.roi_source!r})")
        for name, k in (("fitnet.adapter_kernel", self.fitnet.adapter_kernel),
                        ("mimic.adapter_kernel", self.mimic.adapter_kernel)):
            if k not in (1, 3):
                fail(f"{name} must be 1 or 3 (got {k})")
        if self.fitnet.adapter not in ("auto", "always"):
            fail(f"fitnet.adapter must be 'auto' or 'always' (got {self.fitnet.adapter!r})")
        if self.mimic.grid < 1 or self.mimic.max_rois < 1:
            fail("mimic.grid and mimic.max_rois must be >= 1")
        if not self.label.score_thresholds:
            fail("label.score_thresholds needs at least one value")
        if self.logit.code_weights is not None and len(self.logit.code_weights) != 8:
            fail("logit.code_weights needs 8 values (center 2, center_z 1, dim 3, rot 2)")
        unknown = sorted(set(self.family) - set(FAMILIES))
        if unknown:
            fail(f"family has unknown model family {unknown[0]!r} (use {', '.join(FAMILIES)})")
        return self

    def for_family(self, family: str) -> "KDRecipe":
        """This recipe with the overrides of ``family`` (voxel | pillar | anchor) merged in."""
        return self.for_families([family])

    def for_families(self, families: list[str]) -> "KDRecipe":
        """This recipe with the overrides of each of ``families`` merged in, in order (later ones win)."""
        data = _to_dict(self)
        for family in families:
            if family not in FAMILIES:
                raise ConfigError(f"unknown model family {family!r} (use {', '.join(FAMILIES)})")
            override = self.family.get(family)
            if override is not None and not isinstance(override, dict):
                raise ConfigError(f"recipe {self.name}: family.{family} must be a mapping")
            data = deep_merge(data, override or {})
        if not any(self.family.get(f) for f in families):
            return self
        data["family"] = {}
        return _build(data, f"recipe {self.name} (family {', '.join(families)})")

    def for_student(self, cfg: ModelConfig) -> "KDRecipe":
        """Resolve the family overrides for a student model config: its backbone family (voxel | pillar), then
        ``anchor`` for an anchor-head student."""
        return self.for_families(model_families(cfg))

    def to_dict(self) -> dict:
        return _to_dict(self)


def model_families(cfg: ModelConfig) -> list[str]:
    """The recipe families a model belongs to, in the order their overrides apply."""
    return ["pillar" if cfg.is_pillar else "voxel"] + (["anchor"] if cfg.is_anchor else [])


def _to_dict(recipe: KDRecipe) -> dict:
    import dataclasses

    return dataclasses.asdict(recipe)


def _build(data: dict, source: str) -> KDRecipe:
    return from_dict(KDRecipe, data, source=source).validate(source)


def list_kd_recipes() -> list[str]:
    """Names of the recipes shipped in sparsekd_core/configs/kd."""
    return bundled_names(KD_DIR)


def _load_raw(spec: str, seen: tuple = ()) -> dict:
    path = resolve_bundled_yaml(spec, KD_DIR, "KD recipe")
    return _load_path(path, seen)


def _load_path(path: Path, seen: tuple) -> dict:
    if path in seen:
        raise ConfigError(f"{path}: 'include' loops: {' -> '.join(map(str, seen + (path,)))}")
    data = read_yaml(path)
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError(f"{path}: 'include' must be a list of recipe names or paths")
    merged: dict = {}
    for inc in includes:
        included = resolve_bundled_yaml(str(inc), KD_DIR, "KD recipe", relative_to=path.parent)
        merged = deep_merge(merged, _load_path(included, seen + (path,)))
    merged.pop("description", None)
    merged.pop("name", None)
    return deep_merge(merged, data)


def load_kd_recipe(spec: str | Path) -> KDRecipe:
    """``"sparsekd"``, ``"logit,label,tgi"`` (merged left to right) or a YAML path -> KDRecipe.

    Family overrides (``family: {pillar: ...}``) stay unresolved: call ``recipe.for_student(model_cfg)``.
    """
    parts = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not parts:
        raise ConfigError("empty KD recipe: name one (e.g. 'sparsekd'), several joined by commas, or a YAML path")
    merged: dict = {}
    for part in parts:
        raw = _load_raw(part)
        raw.pop("name", None)
        if len(parts) > 1:
            raw.pop("description", None)
        merged = deep_merge(merged, raw)
    merged["name"] = "+".join(Path(p).stem for p in parts)
    if len(parts) > 1:
        merged["description"] = "composed of " + ", ".join(parts)
    return _build(merged, str(spec))
