"""Typed configs loaded from YAML, and the model zoo registry.

A config file is plain YAML whose keys mirror the dataclasses below. ``base: NAME`` in a model
file inherits another zoo entry (or a path) and overrides only what it lists. Loading is strict:
an unknown key or a value of the wrong type raises ConfigError naming the key and the file.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODEL_DIR = CONFIG_DIR / "models"
KD_DIR = CONFIG_DIR / "kd"


class ConfigError(ValueError):
    """A config file (or dict) does not match the schema."""


# ----------------------------------------------------------------------------- model schema
@dataclass
class VoxelizationConfig:
    voxel_size: list[float]
    point_cloud_range: list[float]
    max_points_per_voxel: int = 5
    max_voxels_train: int = 150000
    max_voxels_test: int = 150000

    def grid_size(self) -> list[int]:
        """Voxels along x, y, z."""
        r, v = self.point_cloud_range, self.voxel_size
        return [int(round((r[i + 3] - r[i]) / v[i])) for i in range(3)]


@dataclass
class VFEConfig:
    type: str = "mean"  # mean | pillar
    filters: list[int] = field(default_factory=lambda: [64, 64])  # pillar only
    use_norm: bool = True
    with_distance: bool = False


@dataclass
class Backbone3DConfig:
    type: str = "voxel_res8x"  # voxel_res8x (residual stages) | voxel8x (plain conv stages) | none (pillars)
    filters: list[int] = field(default_factory=lambda: [16, 16, 32, 64, 128, 128])
    layers: list[int] = field(default_factory=lambda: [1, 2, 3, 3, 3, 1])
    width: float = 1.0

    def widths(self) -> list[int]:
        return [int(f * self.width) for f in self.filters]


@dataclass
class BEVConfig:
    type: str = "height_compression"  # height_compression | pillar_scatter
    num_features: int = 256


@dataclass
class Backbone2DConfig:
    layers: list[int] = field(default_factory=lambda: [5, 5])
    strides: list[int] = field(default_factory=lambda: [1, 2])
    filters: list[int] = field(default_factory=lambda: [128, 256])
    upsample_strides: list[float] = field(default_factory=lambda: [1, 2])
    upsample_filters: list[int] = field(default_factory=lambda: [256, 256])
    width: float = 1.0

    def widths(self) -> tuple[list[int], list[int]]:
        return [int(f * self.width) for f in self.filters], [int(f * self.width) for f in self.upsample_filters]


@dataclass
class TargetConfig:
    gaussian_overlap: float = 0.1
    min_radius: int = 2
    max_objects: int = 500


@dataclass
class LossConfig:
    cls_weight: float = 1.0
    loc_weight: float = 2.0
    code_weights: list[float] = field(default_factory=lambda: [1.0] * 8)
    #: CenterHead with heading axis_dir: weight of the front-end cross-entropy (SECOND's direction loss weight)
    dir_weight: float = 0.2


def check_min_points(value) -> int:
    """``value`` as a minimum number of returns per box (an int >= 0), or ValueError naming the rule: the one check
    of ``head.post.min_points`` in a config and of ``Detector.min_points`` set at run time."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"min_points must be an integer >= 0 (returns a box must hold; 0 keeps every box), "
                         f"got {value!r}")
    return value


@dataclass
class PostProcessConfig:
    score_threshold: float = 0.1
    center_range: list[float] = field(default_factory=lambda: [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0])
    max_per_sample: int = 500
    nms_iou_threshold: float = 0.7
    nms_pre_max_size: int = 4096
    nms_post_max_size: int = 500
    class_agnostic_nms: bool = True  # within each head; boxes of different heads never suppress each other
    nms_type: str = "rotated"  # rotated BEV IoU | axis_aligned (heading ignored, OpenPCDet's nms_normal)
    #: the Detector drops boxes holding fewer LiDAR returns than this; 0 keeps all (the reference's behaviour)
    min_points: int = 0
    #: the model's operating point, class name -> score threshold: where the node publishes each class unless its
    #: class_score_thresholds says otherwise (best F1 on validation frames: ``sparsekd-eval --operating-points``).
    #: score_threshold above stays what evaluation keeps (AP needs the low-scored boxes too).
    operating_thresholds: dict[str, float] = field(default_factory=dict)
    #: classes whose boxes the Detector publishes with a square footprint (length = width = their mean, heading
    #: kept): for people, whose returns often cannot tell which way they face, a square box scores the same
    #: whichever heading the network guessed (docs/results.md, "Square footprints"); empty = boxes as decoded
    square_footprint: list[str] = field(default_factory=list)
    #: classes whose boxes the Detector drops when the LiDAR returns something solid just above them (a sign plate,
    #: a trunk going on up: sparsekd_core/clear_overhead.py, docs/results.md "Clear overhead"); empty = no check
    clear_overhead: list[str] = field(default_factory=list)
    #: test-time flip: the network also sees each cloud's mirror image (y -> -y) and the two views' maps are
    #: averaged before decoding (models/tta_flip.py); twice the network's work a frame. CenterHead models whose
    #: point-cloud range is symmetric in y only.
    tta_flip: bool = False


@dataclass
class AnchorClassConfig:
    """The anchors of one class (OpenPCDet's ANCHOR_GENERATOR_CONFIG entry) and its assignment thresholds.

    sizes: one or more (dx, dy, dz) in metres; rotations: yaws in radians (OpenPCDet: 0 and 1.57);
    bottom_height: z of the anchors' bottom face (the anchor centre is bottom_height + dz / 2);
    align_center: anchors at cell centres (True) or spread from the range's first to its last edge (False,
    OpenPCDet's default). An anchor whose nearest-axis BEV IoU with a box of this class reaches
    matched_threshold is positive; below unmatched_threshold with every box, negative; in between, ignored.
    """

    class_name: str
    sizes: list[list[float]]
    bottom_height: float
    matched_threshold: float
    unmatched_threshold: float
    rotations: list[float] = field(default_factory=lambda: [0.0, 1.57])
    align_center: bool = False


@dataclass
class AnchorHeadConfig:
    """AnchorHeadSingle (SECOND, PointPillars): 1x1 convs for class scores, box residuals and direction bins of
    every anchor at every BEV cell. ``anchors`` lists one entry per class, in class_names order.

    dir_classifier: predict which half-turn the heading lies in (num_dir_bins bins, starting at dir_offset;
    decoded headings are wrapped into [dir_limit_offset, dir_limit_offset + period) first); dir_weight: its loss
    weight (OpenPCDet's LOSS_WEIGHTS dir_weight). Box residuals use OpenPCDet's ResidualCoder (7 codes).
    """

    anchors: list[AnchorClassConfig] = field(default_factory=list)
    dir_classifier: bool = True
    num_dir_bins: int = 2
    dir_offset: float = 0.78539
    dir_limit_offset: float = 0.0
    dir_weight: float = 0.2


HEAD_TYPES = ("center", "anchor")
HEADINGS = ("sin_cos", "axis_dir")  # CenterHead heading encodings (models/heading.py)


@dataclass
class HeadConfig:
    """The dense head: ``type`` center (CenterHead) or anchor (AnchorHeadSingle, settings in ``anchor``).

    CenterHead: ``class_groups`` splits the classes into heads (OpenPCDet's CLASS_NAMES_EACH_HEAD): each group
    gets its own heatmap and regression convs after the shared conv; empty = one head for all classes.
    ``velocity`` adds the ``vel`` output (vx, vy in m/s), decoded into box velocities. shared_channels,
    num_hm_conv, num_reg_conv, class_groups, velocity, heading and target are CenterHead's; feature_stride (the head
    map's cell in voxels), loss and post are both heads'. post.max_per_sample is CenterHead's top-K before the score
    threshold; an anchor head keeps the nms_pre_max_size best anchors above it (OpenPCDet's order).
    """

    type: str = "center"
    shared_channels: int = 64
    num_hm_conv: int = 2
    num_reg_conv: int = 2
    feature_stride: int = 8
    class_groups: list[list[str]] = field(default_factory=list)
    velocity: bool = False
    #: sin_cos: rot regresses (cos t, sin t) as CenterPoint; axis_dir: (cos 2t, sin 2t) plus a front-end logit
    #: (models/heading.py), for data where front and back are hard to tell apart
    heading: str = "sin_cos"
    target: TargetConfig = field(default_factory=TargetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    post: PostProcessConfig = field(default_factory=PostProcessConfig)
    anchor: Optional[AnchorHeadConfig] = None


@dataclass
class TrainConfig:
    """The training schedule, and ``augment``: overrides of the dataset layout's default augmentation
    (train/data.default_augment; keys of data/augment.AugmentConfig, e.g. rotation_range, scale_range,
    translation_std), for a model whose reference config augments differently; empty = the layout's default."""

    epochs: int = 30
    batch_size: int = 4
    lr: float = 0.003
    weight_decay: float = 0.01
    moms: list[float] = field(default_factory=lambda: [0.95, 0.85])
    pct_start: float = 0.4
    div_factor: float = 10.0
    grad_clip: float = 10.0
    #: Changes to the dataset's default augmentation (data/augment.py AugmentConfig keys; gt_sampling's
    #: keys are merged into the default's), e.g. {flip_axes: [x, y]} for a model that sees all around.
    augment: dict[str, Any] = field(default_factory=dict)
    #: Train on BEV windows of this (x, y) size in metres (data/window.py); None: on the whole range.
    bev_window: Optional[list[float]] = None
    #: After the last step, recompute BatchNorm statistics over this many batches of whole training frames
    #: (train/precise_bn.py); 0 keeps the training run's running averages (unless average_last averages weights).
    precise_bn_batches: int = 0
    #: Average the weights over this last share of the schedule (0 = off; e.g. 0.5: the second half), recomputing
    #: BatchNorm statistics for the average over precise_bn_batches batches, or 32 when that is 0
    #: (train/weight_average.py).
    average_last: float = 0.0


@dataclass
class ModelConfig:
    name: str
    class_names: list[str]
    point_features: list[str]
    voxelization: VoxelizationConfig
    vfe: VFEConfig = field(default_factory=VFEConfig)
    backbone3d: Backbone3DConfig = field(default_factory=Backbone3DConfig)
    bev: BEVConfig = field(default_factory=BEVConfig)
    backbone2d: Backbone2DConfig = field(default_factory=Backbone2DConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""
    # LiDAR sweeps merged into one input: the current one and sweeps - 1 earlier ones, brought into the current
    # sensor frame; with a "time_lag" point feature each point carries its sweep's age in seconds (0 = current).
    sweeps: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, source: str = "<config>") -> "ModelConfig":
        """Cross-field checks that a type check cannot make."""
        def fail(msg):
            raise ConfigError(f"{source}: {msg}")

        if self.point_features[:3] != ["x", "y", "z"]:
            fail(f"point_features must start with x, y, z (got {self.point_features})")
        if len(self.voxelization.voxel_size) != 3 or len(self.voxelization.point_cloud_range) != 6:
            fail("voxelization.voxel_size needs 3 values and point_cloud_range 6")
        r = self.voxelization.point_cloud_range
        if any(r[i + 3] <= r[i] for i in range(3)):
            fail(f"voxelization.point_cloud_range {r} must be [xmin, ymin, zmin, xmax, ymax, zmax] with max > min")
        if self.vfe.type not in ("mean", "pillar"):
            fail(f"vfe.type must be 'mean' or 'pillar' (got {self.vfe.type!r})")
        if self.backbone3d.type not in ("voxel_res8x", "voxel8x", "none"):
            fail(f"backbone3d.type must be 'voxel_res8x', 'voxel8x' or 'none' (got {self.backbone3d.type!r})")
        if self.bev.type not in ("height_compression", "pillar_scatter"):
            fail(f"bev.type must be 'height_compression' or 'pillar_scatter' (got {self.bev.type!r})")
        b2 = self.backbone2d
        if not (len(b2.layers) == len(b2.strides) == len(b2.filters) == len(b2.upsample_strides)
                == len(b2.upsample_filters)):
            fail("backbone2d.layers, strides, filters, upsample_strides and upsample_filters need the same length")
        if self.vfe.type == "pillar" and self.bev.type != "pillar_scatter":
            fail("a pillar vfe needs bev.type pillar_scatter")
        if self.vfe.type == "mean" and (self.backbone3d.type == "none" or self.bev.type != "height_compression"):
            fail("a mean vfe needs a sparse backbone3d (voxel_res8x or voxel8x) and bev height_compression")
        self._validate_bev_levels(fail)
        if self.head.type not in HEAD_TYPES:
            fail(f"head.type must be one of {', '.join(HEAD_TYPES)} (got {self.head.type!r})")
        if self.head.type == "anchor":
            self._validate_anchor_head(fail)
        else:
            codes = num_regression_codes(self.head.velocity)
            if len(self.head.loss.code_weights) != codes:
                fail(f"head.loss.code_weights needs {codes} values (center 2, center_z 1, dim 3, rot 2"
                     f"{', vel 2' if self.head.velocity else ''})")
        if self.head.heading not in HEADINGS:
            fail(f"head.heading must be one of {', '.join(HEADINGS)} (got {self.head.heading!r})")
        if self.head.heading != "sin_cos" and self.head.type == "anchor":
            fail("head.heading is a CenterHead setting; an anchor head has its own direction classifier "
                 "(head.anchor.dir_classifier)")
        if self.head.class_groups:
            listed = [c for group in self.head.class_groups for c in group]
            if any(not group for group in self.head.class_groups) or sorted(listed) != sorted(self.class_names) \
                    or len(set(listed)) != len(listed):
                fail(f"head.class_groups {self.head.class_groups} must split class_names {self.class_names} into "
                     "non-empty groups, each class in exactly one group")
        if self.sweeps < 1:
            fail(f"sweeps must be at least 1 (the current sweep), got {self.sweeps}")
        if not 0.0 <= self.train.average_last <= 1.0:
            fail(f"train.average_last must be a share of the schedule in [0, 1] (0 = no weight averaging), got "
                 f"{self.train.average_last}")
        try:
            check_min_points(self.head.post.min_points)
        except ValueError as exc:
            fail(f"head.post.{exc}")
        for name, value in self.head.post.operating_thresholds.items():
            if name not in self.class_names:
                fail(f"head.post.operating_thresholds names {name!r}, not one of class_names {self.class_names}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                fail(f"head.post.operating_thresholds[{name!r}] must be a score in [0, 1] (got {value!r})")
        for key in ("square_footprint", "clear_overhead"):
            names = getattr(self.head.post, key)
            if not isinstance(names, list) or any(name not in self.class_names for name in names) \
                    or len(set(names)) != len(names):
                fail(f"head.post.{key} must list distinct names of class_names {self.class_names} (got {names!r})")
        if self.head.post.tta_flip and (problem := self.tta_flip_problem()):
            fail(f"head.post.tta_flip: {problem}")
        if self.head.post.nms_type not in ("rotated", "axis_aligned"):
            fail(f"head.post.nms_type must be 'rotated' or 'axis_aligned' (got {self.head.post.nms_type!r})")
        return self

    def tta_flip_problem(self) -> str | None:
        """Why this model cannot run the test-time flip (models/tta_flip.py), or None when it can: the flip turns
        CenterHead maps back row for row, so it needs a CenterHead and a point-cloud range centred on y = 0."""
        if self.head.type != "center":
            return "the test-time flip is for a CenterHead (head.type center), not an anchor head; set it to false"
        y_min, y_max = self.voxelization.point_cloud_range[1], self.voxelization.point_cloud_range[4]
        if not math.isclose(y_min, -y_max):
            return (f"the test-time flip needs a point-cloud range symmetric in y (y_min = -y_max), so that the "
                    f"mirror image falls on the same grid; this model's is {y_min} .. {y_max}; set it to false")
        return None

    def _validate_bev_levels(self, fail) -> None:
        """The 2D backbone concatenates its levels, so each must come back to the same map size: a grid that a
        stride does not divide rounds up at one level and not another (torch.cat would fail at the first frame)."""
        b2 = self.backbone2d
        gx, gy, _ = self.voxelization.grid_size()
        for axis, n in (("x", gx), ("y", gy)):
            if self.vfe.type == "mean":  # the sparse 3D backbone's three stride-2 convs, each rounding up
                for _ in range(3):
                    n = -(-n // 2)
            sizes, m = [], n
            for stride, up in zip(b2.strides, b2.upsample_strides):
                m = -(-m // int(stride))
                sizes.append(m * int(up) if up >= 1 else m // int(round(1 / up)))
            if len(set(sizes)) > 1:
                step = self.coarsest_bev_cell_voxels
                fail(f"the BEV map is {n} cells along {axis} (voxelization.point_cloud_range / voxel_size), and "
                     f"backbone2d's levels bring it back to {sizes} cells, which cannot be concatenated: make the "
                     f"range along {axis} a multiple of {step} voxels")

    def _validate_anchor_head(self, fail) -> None:
        h, a = self.head, self.head.anchor
        if a is None or not a.anchors:
            fail("head.type anchor needs head.anchor.anchors: one entry per class (sizes, rotations, bottom_height, "
                 "matched_threshold, unmatched_threshold), as OpenPCDet's ANCHOR_GENERATOR_CONFIG")
        names = [c.class_name for c in a.anchors]
        if names != list(self.class_names):
            fail(f"head.anchor.anchors name the classes {names}; they must be class_names {list(self.class_names)}, "
                 "in that order (one anchor set per class)")
        for c in a.anchors:
            where = f"head.anchor.anchors ({c.class_name})"
            if not c.sizes or any(len(s) != 3 or min(s) <= 0 for s in c.sizes):
                fail(f"{where}: sizes needs one or more [dx, dy, dz] with positive extents (got {c.sizes})")
            if not c.rotations:
                fail(f"{where}: rotations needs at least one yaw")
            if not 0.0 <= c.unmatched_threshold <= c.matched_threshold <= 1.0:
                fail(f"{where}: need 0 <= unmatched_threshold <= matched_threshold <= 1 (got "
                     f"{c.unmatched_threshold}, {c.matched_threshold})")
        if a.dir_classifier and a.num_dir_bins < 2:
            fail(f"head.anchor.num_dir_bins must be at least 2 (got {a.num_dir_bins})")
        if h.velocity or h.class_groups:
            fail("head.velocity and head.class_groups are CenterHead settings; an anchor head has neither")
        if len(h.loss.code_weights) != ANCHOR_CODES:
            fail(f"head.loss.code_weights needs {ANCHOR_CODES} values for an anchor head (x, y, z, dx, dy, dz, yaw "
                 "residuals)")

    @property
    def is_anchor(self) -> bool:
        """The model has an anchor head (SECOND, PointPillars) rather than a CenterHead."""
        return self.head.type == "anchor"

    def class_groups(self) -> list[list[int]]:
        """Class indices (into class_names) of each head, in head order; one group of all classes by default."""
        groups = self.head.class_groups or [list(self.class_names)]
        return [[self.class_names.index(name) for name in group] for group in groups]

    @property
    def is_pillar(self) -> bool:
        return self.vfe.type == "pillar"

    @property
    def bev_voxels_per_cell(self) -> int:
        """Voxels along x (or y) per cell of the BEV map entering the 2D backbone: 1 for pillars, 8 after the
        sparse 3D backbone's three stride-2 convolutions."""
        return 1 if self.is_pillar else 8

    @property
    def coarsest_bev_cell_voxels(self) -> int:
        """Voxels along x (or y) per cell of the 2D backbone's coarsest level."""
        return self.bev_voxels_per_cell * math.prod(int(s) for s in self.backbone2d.strides)


#: Box residuals of an anchor head (OpenPCDet's ResidualCoder): x, y, z, log dx, log dy, log dz, yaw.
ANCHOR_CODES = 7


def num_regression_codes(velocity: bool) -> int:
    """Regression codes per box: centre offset 2, z 1, log dims 3, (cos, sin) yaw 2, and vx vy with velocity."""
    return 10 if velocity else 8


# ----------------------------------------------------------------------------- loading
def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str):
    """Check ``value`` against the annotation ``tp`` (converting dicts to dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping (got {type(value).__name__})")
        return from_dict(tp, value, source, prefix=key + ".")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list (got {type(value).__name__} {value!r})")
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping (got {type(value).__name__})")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number (got {type(value).__name__} {value!r})")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer (got {type(value).__name__} {value!r})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false (got {value!r})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string (got {type(value).__name__} {value!r})")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{source}: '{key}': unsupported schema type {_type_name(tp)}")


def from_dict(cls, data: dict, source: str = "<dict>", prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, strictly: unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' "
            f"(allowed under '{prefix or '<top>'}': {', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], prefix + f.name, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key '{prefix}{f.name}'")
    return cls(**kwargs)


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def bundled_names(folder: Path) -> list[str]:
    """Names of the YAML files shipped in one of the config folders."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve_bundled_yaml(name_or_path: str | Path, folder: Path, what: str, choices_label: str | None = None,
                         relative_to: Path | None = None) -> Path:
    """A bundled config by name (``folder/<name>.yaml``) or a YAML path -> the file.

    A relative YAML path is tried against ``relative_to`` first (for files that include others). Errors say
    which ``what`` was not found and list the bundled choices.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if relative_to is not None and not p.is_absolute() and (relative_to / p).is_file():
            return relative_to / p
        if p.is_file():
            return p
        raise ConfigError(f"{what} file not found: {p}")
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    label = choices_label or f"bundled {what}s"
    raise ConfigError(f"unknown {what} '{name_or_path}': not a YAML file and not bundled. "
                      f"{label}: {', '.join(bundled_names(folder)) or 'none'}")


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A zoo name (``cp_voxel_s``) or a path to a YAML file -> the YAML path."""
    return resolve_bundled_yaml(name_or_path, MODEL_DIR, "model", "Zoo models")


def _load_model_dict(path: Path, seen: tuple = ()) -> dict:
    if path in seen:
        raise ConfigError(f"{path}: 'base' chain loops: {' -> '.join(map(str, seen + (path,)))}")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = (path.parent / base) if str(base).endswith((".yaml", ".yml")) else resolve_model_path(base)
    return deep_merge(_load_model_dict(base_path, seen + (path,)), data)


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Load a model config from the zoo by name or from a YAML path (with ``base`` inheritance)."""
    path = resolve_model_path(name_or_path)
    data = _load_model_dict(path)
    data.setdefault("name", path.stem)
    return from_dict(ModelConfig, data, source=str(path)).validate(str(path))


def model_config_from_dict(data: dict, source: str = "<checkpoint>") -> ModelConfig:
    return from_dict(ModelConfig, data, source=source).validate(source)


def list_models() -> list[str]:
    """Names of the zoo's model configs."""
    return bundled_names(MODEL_DIR)


# The zoo's Waymo models and their paper figures (docs/architecture.md, "The model zoo"), used by the benchmark.
PAPER_FIGURES = {
    # name: (teacher, paper GFLOPs, latency ms on GTX 1060, latency ms on A100, LEVEL_2 mAPH w/o KD, with SparseKD)
    "cp_voxel": (None, 114.8, 125.7, 56.1, 64.29, None),
    "cp_voxel_s": ("cp_voxel", 47.8, 98.0, 39.4, 62.23, 64.25),
    "cp_voxel_xs": ("cp_voxel", 36.9, 88.2, 36.7, 61.14, 63.53),
    "cp_voxel_xxs": ("cp_voxel", 12.0, 70.4, 38.0, 56.26, 59.28),
    "cp_pillar": (None, 333.9, 157.9, 51.9, 59.09, None),
    "cp_pillar_v0.4": ("cp_pillar", 212.9, 103.4, 57.1, 57.55, 59.24),
    "cp_pillar_v0.48": ("cp_pillar", 149.4, 81.9, 27.4, 56.27, 58.53),
    "cp_pillar_v0.64": ("cp_pillar", 85.1, 54.5, 19.6, 52.81, 55.82),
}
WAYMO_ZOO = tuple(PAPER_FIGURES)

# The anchor-head families (SECOND, PointPillars): each student's teacher. The paper gives no GFLOPs for them, so
# the benchmark reports their measured student/teacher ratio without a paper ratio beside it.
ANCHOR_TEACHERS = {"second_s": "second", "pointpillar_v0.64": "pointpillar", "pointpillar_v0.32": "pointpillar",
                   "pointpillar_s": "pointpillar"}
ANCHOR_ZOO = ("second", "second_s", "pointpillar", "pointpillar_v0.64")

# Students outside the paper's table, and their teachers: cp_pillar_s narrows cp_pillar's width on its own grid.
OTHER_TEACHERS = {"cp_pillar_s": "cp_pillar"}
#: every student outside the paper's table -> its teacher (the paper's own students carry theirs in PAPER_FIGURES)
NON_PAPER_TEACHERS = {**ANCHOR_TEACHERS, **OTHER_TEACHERS}

#: The bundled student every tool starts from when given no model: the ROS node, `make demo`, sparsekd-detect and
#: sparsekd-bag-detect (the one that meets issue 11's marks on real sweeps; README "Bundled models").
DEFAULT_MODEL = "cp_pillar_s"

KITTI_PREFIX = "kitti_"
#: the suffixes of the zoo's simulated variants, the one the bundled models are trained as first: ``_sim360`` (all
#: around the sensor), then ``_sim`` (40 m ahead)
SIM_SUFFIXES = ("_sim360", "_sim")


def split_sim_suffix(name: str) -> tuple[str, str]:
    """(base, suffix) of a config name: ("cp_voxel_s", "_sim360") for cp_voxel_s_sim360, (name, "") for others."""
    for suffix in SIM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def zoo_teacher(student: str) -> str | None:
    """The zoo teacher a student is distilled from (cp_voxel_s -> cp_voxel, cp_pillar_v0.64_sim360 ->
    cp_pillar_sim360, cp_pillar_s_sim360 -> cp_pillar_sim360, kitti_second_s -> kitti_second, pointpillar_s_sim ->
    pointpillar_sim); None for a teacher or an unknown name."""
    base, prefix = student, ""
    if base.startswith(KITTI_PREFIX):
        base, prefix = base[len(KITTI_PREFIX):], KITTI_PREFIX
    base, suffix = split_sim_suffix(base)
    teacher = PAPER_FIGURES[base][0] if base in PAPER_FIGURES else NON_PAPER_TEACHERS.get(base)
    if teacher is None:
        return None
    teacher = f"{prefix}{teacher}{suffix}"
    return teacher if teacher in list_models() else None
