"""Training-time augmentation that moves points and boxes together.

Every function takes ``points`` (N, F) float32 (x y z, then features, LiDAR frame) and ``boxes`` (M, 7)
(x, y, z, dx, dy, dz, yaw; docs/architecture.md), or (M, 9) with the velocity (vx, vy) in m/s after them, and
returns new arrays (inputs are never modified), so a point inside a box before a transform is inside the
transformed box after it, and a velocity turns with its box: a flip mirrors it, a rotation turns it, a scaling
scales it (the scene's distances, and so the distances covered per second), a translation leaves it. Feature
columns past xyz are carried unchanged. Randomness only comes from the ``numpy.random.Generator`` passed in, so
a pipeline is reproducible from a seed.

Order of the pipeline (as in the reference, OpenPCDet/SparseKD): gt-sampling, flips, rotation, scaling,
translation, point shuffling; the opt-in part dropout (not in the reference) comes right after gt-sampling.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sparsekd_core.data.gt_database import DbObject, GtDatabase
from sparsekd_core.geometry.boxes import limit_period, points_in_boxes, points_to_box_frame, rotate_points_z
from sparsekd_core.geometry.iou import iou_bev

log = logging.getLogger(__name__)

FLIP_AXES = ("x", "y")
BOX_WIDTHS = (7, 9)  # x y z dx dy dz yaw, and optionally vx vy
#: Pasted database objects keep the sweeps no older than the scene's oldest one, give or take this much (s): half
#: of nuScenes' 20 Hz sweep period, more than sweep ages vary between frames.
SWEEP_AGE_TOLERANCE = 0.025


# ----------------------------------------------------------------------------------------------- transforms
def _check(points: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"augment: points must be (N, >=3) x y z [features], got shape {points.shape}")
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, boxes.shape[-1] if boxes.ndim == 2 and boxes.shape[-1] in BOX_WIDTHS else 7)
    if boxes.ndim != 2 or boxes.shape[1] not in BOX_WIDTHS:
        raise ValueError(f"augment: boxes must be (M, 7) x y z dx dy dz yaw, or (M, 9) with vx vy, got shape "
                         f"{boxes.shape}")
    return points, boxes


def _with_velocity(boxes: np.ndarray) -> bool:
    return boxes.shape[1] == 9


def flip(points: np.ndarray, boxes: np.ndarray, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the scene.

    axis "x": mirror across the x axis (y -> -y, yaw -> -yaw, vy -> -vy), a left/right swap for a forward-facing
    sensor. axis "y": mirror across the y axis (x -> -x, yaw -> pi - yaw, vx -> -vx), a front/back swap.
    Applying the same flip twice gives the input back (yaw up to a multiple of 2 pi, wrapped to [-pi, pi)).
    """
    points, boxes = _check(points, boxes)
    if axis not in FLIP_AXES:
        raise ValueError(f"augment: flip axis must be one of {FLIP_AXES}, got {axis!r}")
    col = 1 if axis == "x" else 0
    points = points.copy()
    points[:, col] = -points[:, col]
    boxes = boxes.copy()
    boxes[:, col] = -boxes[:, col]
    if _with_velocity(boxes):
        boxes[:, 7 + col] = -boxes[:, 7 + col]
    boxes[:, 6] = -boxes[:, 6] if axis == "x" else np.pi - boxes[:, 6]
    boxes[:, 6] = limit_period(boxes[:, 6])
    return points, boxes


def rotate(points: np.ndarray, boxes: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the whole scene about the sensor's +z axis by ``angle`` radians (counter-clockwise from above);
    velocities turn by the same angle."""
    points, boxes = _check(points, boxes)
    points = rotate_points_z(points, angle).astype(points.dtype, copy=False)
    boxes = boxes.copy()
    boxes[:, :3] = rotate_points_z(boxes[:, :3], angle)
    if _with_velocity(boxes):
        c, s = math.cos(angle), math.sin(angle)
        vx, vy = boxes[:, 7].copy(), boxes[:, 8].copy()
        boxes[:, 7], boxes[:, 8] = c * vx - s * vy, s * vx + c * vy
    boxes[:, 6] = limit_period(boxes[:, 6] + angle)
    return points, boxes


def scale(points: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale the scene about the sensor origin: point xyz, box centres, box extents and velocities all times
    ``factor`` (as the reference's global scaling)."""
    points, boxes = _check(points, boxes)
    if not factor > 0:
        raise ValueError(f"augment: scale factor must be > 0, got {factor}")
    points = points.copy()
    points[:, :3] *= factor
    boxes = boxes.copy()
    boxes[:, :6] *= factor
    boxes[:, 7:] *= factor
    return points, boxes


def translate(points: np.ndarray, boxes: np.ndarray, offset: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Shift the whole scene by ``offset`` (3,) metres: point xyz and box centres; extents, yaw and velocities
    stay."""
    points, boxes = _check(points, boxes)
    offset = np.asarray(offset, dtype=np.float64).reshape(3)
    points = points.copy()
    points[:, :3] += offset.astype(points.dtype)
    boxes = boxes.copy()
    boxes[:, :3] += offset.astype(np.float32)
    return points, boxes


def random_flip(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                axes: Sequence[str] = ("x",), prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Flip along each of ``axes`` independently with probability ``prob``."""
    for axis in axes:
        if rng.random() < prob:
            points, boxes = flip(points, boxes, axis)
    return points, boxes


def random_rotation(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                    angle_range: tuple[float, float] = (-math.pi / 4, math.pi / 4)) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by an angle drawn uniformly from ``angle_range`` (radians)."""
    return rotate(points, boxes, float(rng.uniform(angle_range[0], angle_range[1])))


def random_scaling(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                   scale_range: tuple[float, float] = (0.95, 1.05)) -> tuple[np.ndarray, np.ndarray]:
    """Scale by a factor drawn uniformly from ``scale_range``."""
    return scale(points, boxes, float(rng.uniform(scale_range[0], scale_range[1])))


def random_translation(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                       std: Sequence[float] = (0.5, 0.5, 0.5)) -> tuple[np.ndarray, np.ndarray]:
    """Shift by an offset drawn per axis from a normal distribution with standard deviation ``std`` (3,) metres
    (the reference's random_world_translation)."""
    return translate(points, boxes, rng.normal(0.0, np.asarray(std, dtype=np.float64).reshape(3)))


def shuffle_points(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same points in a random order (voxelisation keeps the first K points of a voxel: this varies which)."""
    return np.take(points, rng.permutation(len(points)), axis=0)  # take: about 2x faster than fancy indexing


# ----------------------------------------------------------------------------------------------- collisions
def bev_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, 7), (M, 7) -> (N, M) bool: the two boxes' bird's-eye-view rectangles overlap (rotated BEV IoU > 0)."""
    boxes_a = np.asarray(boxes_a, dtype=np.float32).reshape(-1, 7)
    boxes_b = np.asarray(boxes_b, dtype=np.float32).reshape(-1, 7)
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros((len(boxes_a), len(boxes_b)), dtype=bool)
    return np.asarray(iou_bev(boxes_a, boxes_b)) > 0


def random_intensity_gain(points: np.ndarray, rng: np.random.Generator, gain_range) -> np.ndarray:
    """Multiply the intensity column (3) by one uniform factor from ``gain_range``, clipped to [0, 1]."""
    if points.shape[1] < 4:
        return points
    out = points.copy()
    out[:, 3] = np.clip(out[:, 3] * rng.uniform(*gain_range), 0.0, 1.0)
    return out


@dataclass
class PartDropoutConfig:
    """Drop the returns of one part of some objects (PA-AUG's partition dropout: Choi, Song and Kwak, "Part-Aware
    Data Augmentation for 3D Object Detection in Point Cloud", IROS 2021), so that a model does not learn a class
    from the exact shape its training objects return: simulated people are a few meshes, real ones are not.

    classes: the names whose boxes are cut (the other boxes are left whole).
    prob: the chance that one box of those classes loses a part.
    grid: (along the box's length, across it): the footprint is cut into that many equal parts, and the returns
        of one of them, drawn at random, are dropped (its label stays).
    """

    classes: tuple[str, ...] = ("Pedestrian", "Cyclist")
    prob: float = 0.5
    grid: tuple[int, int] = (2, 2)

    def __post_init__(self):
        if not 0.0 <= float(self.prob) <= 1.0:
            raise ValueError(f"AugmentConfig.part_dropout.prob must be a chance within [0, 1], got {self.prob}")
        if len(self.grid) != 2 or min(int(g) for g in self.grid) < 1:
            raise ValueError(f"AugmentConfig.part_dropout.grid: two whole numbers >= 1 (along, across), got "
                             f"{self.grid}")
        self.classes = tuple(str(c) for c in self.classes)
        self.grid = (int(self.grid[0]), int(self.grid[1]))


def random_part_dropout(points: np.ndarray, boxes: np.ndarray, names: np.ndarray, rng: np.random.Generator,
                        config: PartDropoutConfig) -> np.ndarray:
    """The points without the returns of one random part of each box of ``config.classes`` that draws under
    ``config.prob`` (PartDropoutConfig); hand-written: no augmentation library the project uses has it."""
    chosen = np.flatnonzero(np.isin(names, config.classes))
    if len(chosen) == 0 or len(points) == 0:
        return points
    along, across = config.grid
    inside = points_in_boxes(points[:, :3], boxes[chosen, :7])
    drop = np.zeros(len(points), dtype=bool)
    for k, i in enumerate(chosen):
        if rng.random() >= config.prob:
            continue
        part = int(rng.integers(along * across))
        idx = np.flatnonzero(inside[:, k])
        if len(idx) == 0:
            continue
        local = points_to_box_frame(points[idx], boxes[i, :7])  # x along the box's length, y across it
        cell_u = np.clip(np.floor((local[:, 0] / boxes[i, 3] + 0.5) * along), 0, along - 1).astype(int)
        cell_v = np.clip(np.floor((local[:, 1] / boxes[i, 4] + 0.5) * across), 0, across - 1).astype(int)
        drop[idx[cell_u * across + cell_v == part]] = True
    return points[~drop]


def _near_any_box(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: the point lies in the axis-aligned square around some box's bounding circle.

    A cheap pre-filter before the exact points_in_boxes: one pass of 1D comparisons per box on
    contiguous columns (a 200k-point Waymo frame with 10 pasted boxes: ~5 ms instead of ~250 ms).
    """
    x, y = np.ascontiguousarray(points[:, 0]), np.ascontiguousarray(points[:, 1])
    near = np.zeros(len(points), dtype=bool)
    for box in boxes:
        r = 0.5 * float(np.hypot(box[3], box[4]))
        near |= (np.abs(x - box[0]) <= r) & (np.abs(y - box[1]) <= r)
    return near


# ----------------------------------------------------------------------------------------------- gt-sampling
@dataclass
class GtSamplingConfig:
    """Paste objects from the gt database into training scenes.

    dbinfos_path: the database pickle, relative to the dataset root (``sparsekd-data`` writes it).
    sample_groups: class -> number of objects of that class a scene should have after pasting; a scene
        that already has ``k`` gets up to ``target - k`` more (fewer when candidates collide).
    min_points: class -> database objects with fewer points are never pasted (default 5 for every class).
    filter_difficulty: database objects with these difficulty values are never pasted (KITTI -1 = unknown).
    """

    dbinfos_path: str
    sample_groups: dict[str, int]
    min_points: dict[str, int] = field(default_factory=dict)
    filter_difficulty: tuple[int, ...] = (-1,)
    default_min_points: int = 5


class GtSampler:
    """Pastes database objects into a scene without collisions and removes the scene points they cover.

    Scene boxes with velocities (M, 9) get pasted boxes with the database objects' velocities (a database written
    with them, as ``sparsekd-data nuscenes`` writes it).
    ``fill_columns``: trailing scene columns the database's points may lack, set to 0 in pasted objects (the
    time_lag of a multi-sweep scene: a pasted object belongs to the current sweep).
    ``time_lag_column``: the scene's time_lag column, when the database's points carry one too (a multi-sweep
    database, as nuScenes'): pasted points older than the scene's oldest sweep (plus SWEEP_AGE_TOLERANCE) are left
    out, so a model that merges fewer sweeps than the database was cut from sees pasted objects as it sees its own.
    """

    def __init__(self, database: GtDatabase, config: GtSamplingConfig, fill_columns: int = 0,
                 time_lag_column: int | None = None):
        self.database = database
        self.config = config
        self.fill_columns = int(fill_columns)
        self.time_lag_column = time_lag_column
        self.pools: dict[str, list[DbObject]] = {}
        for name in config.sample_groups:
            objs = database.objects.get(name, [])
            min_pts = config.min_points.get(name, config.default_min_points)
            pool = [o for o in objs if o.num_points >= min_pts and o.difficulty not in config.filter_difficulty]
            if not pool:
                log.warning("gt sampling: no database objects of class %r with >= %d points; it will not be pasted",
                            name, min_pts)
            self.pools[name] = pool

    def __call__(self, points: np.ndarray, boxes: np.ndarray, names: Sequence[str],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (points, boxes, names) with the pasted objects appended to boxes/names."""
        points, boxes = _check(points, boxes)
        names = np.asarray(names, dtype=str).reshape(-1)
        occupied = boxes[:, :7]
        chosen: list[DbObject] = []
        for name, target in self.config.sample_groups.items():
            pool = self.pools[name]
            want = min(int(target) - int(np.sum(names == name)), len(pool))
            if want <= 0:
                continue
            candidates = [pool[i] for i in rng.choice(len(pool), size=want, replace=False)]
            cand_boxes = np.stack([c.box for c in candidates]).astype(np.float32)
            hits_scene = bev_overlap(cand_boxes, occupied).any(axis=1)
            hits_each = bev_overlap(cand_boxes, cand_boxes)
            accepted: list[int] = []
            for i in range(len(candidates)):
                if hits_scene[i] or any(hits_each[i, j] for j in accepted):
                    continue
                accepted.append(i)
            chosen += [candidates[i] for i in accepted]
            occupied = np.concatenate([occupied, cand_boxes[accepted]], axis=0)
        if not chosen:
            return points, boxes, names
        pasted_boxes = occupied[len(boxes):]
        keep = np.ones(len(points), dtype=bool)
        near = np.flatnonzero(_near_any_box(points, pasted_boxes))
        keep[near[points_in_boxes(points[near, :3], pasted_boxes).any(axis=1)]] = False
        if _with_velocity(boxes):
            pasted_boxes = np.concatenate([pasted_boxes, self._velocities(chosen)], axis=1)
        pasted_points = [self._object_points(obj, points) for obj in chosen]
        points = np.concatenate([points[keep]] + pasted_points, axis=0)
        # A fresh array for the new names: np.concatenate widens the string dtype, so none is truncated.
        names = np.concatenate([names, np.array([o.name for o in chosen])])
        return points, np.concatenate([boxes, pasted_boxes], axis=0), names

    @staticmethod
    def _velocities(chosen: Sequence[DbObject]) -> np.ndarray:
        lacking = sorted({o.name for o in chosen if o.velocity is None})
        if lacking:
            raise ValueError(f"gt sampling: the scene's boxes carry velocities (vx, vy) but the database's {lacking} "
                             "objects have none; rebuild the database from infos with velocities "
                             "(sparsekd-data nuscenes), or train without gt-sampling")
        return np.stack([o.velocity for o in chosen]).astype(np.float32)

    def _object_points(self, obj: DbObject, scene: np.ndarray) -> np.ndarray:
        """The object's database points with the scene's columns, placed at its box."""
        num_features = scene.shape[1]
        pts = self.database.points(obj)
        native = pts.shape[1]
        if 0 < num_features - native <= self.fill_columns:
            pts = np.pad(pts, ((0, 0), (0, num_features - native)))
        if pts.shape[1] < num_features:
            raise ValueError(
                f"gt sampling: database points have {pts.shape[1]} features, the scene {num_features}; "
                "rebuild the database with the same point features as the dataset"
            )
        pts = pts[:, :num_features].astype(scene.dtype, copy=True)
        col = self.time_lag_column
        if col is not None and col < native and len(scene):
            pts = pts[pts[:, col] <= scene[:, col].max() + SWEEP_AGE_TOLERANCE]
        pts[:, :3] += obj.box[:3]
        return pts


# ----------------------------------------------------------------------------------------------- pipeline
@dataclass
class AugmentConfig:
    """What the training pipeline does; every step can be switched off.

    gt_sampling: paste database objects (None = off).
    flip_axes: axes to flip along, each with probability ``flip_prob`` (see ``flip``). KITTI: ("x",)
        (its labelled area is in front of the car; a front/back flip would leave it); Waymo: ("x", "y").
    rotation_range: uniform global rotation about z, radians (None = off).
    scale_range: uniform global scale factor (None = off).
    translation_std: global shift, normal per axis with these standard deviations (3,) in metres (None = off;
        OpenPCDet's nuScenes CenterPoint-Voxel 0.075 uses 0.5 m).
    intensity_gain_range: uniform per-frame factor on the intensity column (column 3), clipped to [0, 1]
        (None = off): sensors and datasets calibrate intensity differently, so a model should not rely on
        its exact scale.
    part_dropout: drop one random part of some objects' returns (PartDropoutConfig; None = off).
    shuffle_points: shuffle point order last.
    """

    gt_sampling: GtSamplingConfig | None = None
    flip_axes: tuple[str, ...] = ("x",)
    flip_prob: float = 0.5
    rotation_range: tuple[float, float] | None = (-math.pi / 4, math.pi / 4)
    scale_range: tuple[float, float] | None = (0.95, 1.05)
    translation_std: tuple[float, float, float] | None = None
    intensity_gain_range: tuple[float, float] | None = None
    part_dropout: PartDropoutConfig | None = None
    shuffle_points: bool = True

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "AugmentConfig":
        """Build from a plain dict (a YAML section); unknown keys are an error so typos do not go unnoticed."""
        cfg = _known_keys_only(cfg, cls, "AugmentConfig")
        if isinstance(cfg.get("gt_sampling"), Mapping):
            gt = _known_keys_only(cfg["gt_sampling"], GtSamplingConfig, "AugmentConfig.gt_sampling")
            if "filter_difficulty" in gt:
                gt["filter_difficulty"] = tuple(int(d) for d in gt["filter_difficulty"])
            cfg["gt_sampling"] = GtSamplingConfig(**gt)
        if isinstance(cfg.get("part_dropout"), Mapping):
            cfg["part_dropout"] = PartDropoutConfig(**_known_keys_only(cfg["part_dropout"], PartDropoutConfig,
                                                                        "AugmentConfig.part_dropout"))
        for key in ("rotation_range", "scale_range", "intensity_gain_range"):
            if cfg.get(key) is not None:
                lo, hi = (float(v) for v in cfg[key])
                if lo > hi:
                    raise ValueError(f"AugmentConfig.{key}: low {lo} is above high {hi}")
                cfg[key] = (lo, hi)
        if cfg.get("translation_std") is not None:
            std = tuple(float(v) for v in cfg["translation_std"])
            if len(std) != 3 or min(std) < 0:
                raise ValueError(f"AugmentConfig.translation_std: three standard deviations >= 0 (x, y, z), got {std}")
            cfg["translation_std"] = std
        if "flip_axes" in cfg:
            axes = tuple(cfg["flip_axes"] or ())
            if set(axes) - set(FLIP_AXES):
                raise ValueError(f"AugmentConfig.flip_axes: {axes} must only contain {FLIP_AXES}")
            cfg["flip_axes"] = axes
        return cls(**cfg)


def _known_keys_only(cfg: Mapping[str, Any], cls, where: str) -> dict[str, Any]:
    """A copy of ``cfg`` (a YAML section), or a ValueError naming ``where`` and the keys that are not fields of the
    dataclass ``cls``, so that typos do not go unnoticed."""
    known = {f.name for f in fields(cls)}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
    return dict(cfg)


class AugmentPipeline:
    """Applies an AugmentConfig to one scene: ``pipeline(points, boxes, names, rng)``."""

    def __init__(self, config: AugmentConfig, root: str | Path | None = None, database: GtDatabase | None = None,
                 fill_columns: int = 0, time_lag_column: int | None = None):
        """root: the dataset root (needed to find the gt database when gt-sampling is on and no
        ``database`` is given). fill_columns, time_lag_column: see GtSampler."""
        self.config = config
        self.sampler: GtSampler | None = None
        if config.gt_sampling is not None:
            if database is None:
                if root is None:
                    raise ValueError("AugmentPipeline: gt-sampling needs the dataset root (or a GtDatabase)")
                database = GtDatabase.load(config.gt_sampling.dbinfos_path, root)
            self.sampler = GtSampler(database, config.gt_sampling, fill_columns, time_lag_column)

    def __call__(self, points: np.ndarray, boxes: np.ndarray, names: Sequence[str],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, F) points, (M, 7 or 9) boxes, (M,) names -> augmented (N', F), (M', 7 or 9) float32, (M',) str."""
        points, boxes = _check(points, boxes)
        names = np.asarray(names, dtype=str).reshape(-1)
        if len(names) != len(boxes):
            raise ValueError(f"augment: {len(boxes)} boxes but {len(names)} names")
        cfg = self.config
        if self.sampler is not None:
            points, boxes, names = self.sampler(points, boxes, names, rng)
        if cfg.part_dropout is not None:
            points = random_part_dropout(points, boxes, names, rng, cfg.part_dropout)
        points, boxes = random_flip(points, boxes, rng, cfg.flip_axes, cfg.flip_prob)
        if cfg.rotation_range is not None:
            points, boxes = random_rotation(points, boxes, rng, cfg.rotation_range)
        if cfg.scale_range is not None:
            points, boxes = random_scaling(points, boxes, rng, cfg.scale_range)
        if cfg.translation_std is not None:
            points, boxes = random_translation(points, boxes, rng, cfg.translation_std)
        if cfg.intensity_gain_range is not None:
            points = random_intensity_gain(points, rng, cfg.intensity_gain_range)
        if cfg.shuffle_points:
            points = shuffle_points(points, rng)
        return points, boxes, names
