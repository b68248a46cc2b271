"""From ``--data ROOT`` to the training and validation datasets of a model.

ROOT is a KITTI root (``training/velodyne*``, ``label_2``, ``calib``, ``ImageSets``), a Waymo root in
OpenPCDet's processed layout (``sparsekd-sim`` writes both), or a nuScenes root as downloaded (``v1.0-*/``,
``samples/``, ``sweeps/``). The cached infos that ``sparsekd-data`` writes are used when present and built on
the fly (with the gt database) when not.

Augmentation follows the reference dataset configs: gt-sampling (KITTI Car 15 / Pedestrian 10 /
Cyclist 10; Waymo Vehicle 15 / Pedestrian 10 / Cyclist 10; nuScenes, OpenPCDet's nuscenes_dataset.yaml: car 2,
truck 3, construction_vehicle 7, bus 4, trailer 6, barrier 2, motorcycle 6, bicycle 6, pedestrian 2,
traffic_cone 2; at least 5 points), random flip (KITTI along x only, since its labelled area is the front half;
Waymo and nuScenes x and y), rotation (+-pi/4; nuScenes +-0.3925), scaling 0.95..1.05, point shuffling. A model
config's ``train.augment`` overrides these for that model, as its reference config does (OpenPCDet's nuScenes
CenterPoint-Voxel 0.075: rotation +-pi/4, scaling 0.9..1.1, translation 0.5 m). Class-balanced grouping and
sampling (OpenPCDet's CBGS, BALANCED_RESAMPLING) is not done: every frame is seen once per epoch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from ..config import ModelConfig
from ..data.dataset import DetectionDataset
from ..data.infos import count_objects, dbinfos_relpath, infos_path, load_split

log = logging.getLogger(__name__)

Layout = Literal["kitti", "waymo", "nuscenes"]
LAYOUTS: tuple[Layout, ...] = ("kitti", "waymo", "nuscenes")
#: gt-sampling: objects of each class a scene should hold after pasting (the reference dataset configs); other
#: classes 10.
SAMPLE_GROUPS: dict[str, dict[str, int]] = {
    "kitti": {"Car": 15, "Vehicle": 15, "Pedestrian": 10, "Cyclist": 10},
    "waymo": {"Car": 15, "Vehicle": 15, "Pedestrian": 10, "Cyclist": 10},
    "nuscenes": {"car": 2, "truck": 3, "construction_vehicle": 7, "bus": 4, "trailer": 6, "barrier": 2,
                 "motorcycle": 6, "bicycle": 6, "pedestrian": 2, "traffic_cone": 2},
}


@dataclass(frozen=True)
class DataSource:
    """A dataset root and its layout, with the split names to train and validate on."""

    root: Path
    layout: Layout
    train_split: str = "train"
    val_split: str = "val"


def detect_layout(root: str | Path) -> Layout:
    """'kitti', 'waymo' or 'nuscenes' from what ROOT holds (cached infos first, then the raw layout)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such directory. Point it at a KITTI, Waymo or nuScenes dataset "
                                "root (sparsekd-sim --out DIR writes a simulated one)")
    for layout in LAYOUTS:
        if infos_path(root, layout, "train").is_file():
            return layout
    from ..data.nuscenes_format import VERSIONS
    from ..data.waymo_format import PROCESSED_DATA_TAG

    if (root / PROCESSED_DATA_TAG).is_dir() or (root / "waymo_infos_train.pkl").is_file():
        return "waymo"
    if (root / "training").is_dir():
        return "kitti"
    if any((root / v).is_dir() for v in VERSIONS):
        return "nuscenes"
    raise FileNotFoundError(
        f"--data {root} is neither a KITTI root (training/velodyne, label_2, calib, ImageSets/), a Waymo root "
        f"({PROCESSED_DATA_TAG}/ and waymo_infos_<split>.pkl) nor a nuScenes root (v1.0-mini/ or v1.0-trainval/, "
        "samples/, sweeps/)")


def ensure_infos(source: DataSource, workers: int = 2, progress: bool = True, waymo_interval: int = 1) -> None:
    """Build the cached infos (and the gt database) of the train and val splits when they are missing.

    waymo_interval: keep every k-th Waymo frame (KITTI splits come from ImageSets, nuScenes splits from the
    devkit; nuScenes infos list 10 sweeps per key frame, as ``sparsekd-data nuscenes`` by default)."""
    wanted = [s for s in (source.train_split, source.val_split)
              if not infos_path(source.root, source.layout, s).is_file()]
    if not wanted:
        return
    log.info("no cached %s infos for %s under %s: building them now (sparsekd-data does the same)",
             source.layout, ", ".join(wanted), source.root)
    db_split = source.train_split if source.train_split in wanted else None
    if source.layout == "kitti":
        from ..data.kitti_infos import create_kitti_infos

        create_kitti_infos(source.root, wanted, workers, db_split, progress=progress)
    elif source.layout == "nuscenes":
        from ..data.nuscenes_infos import create_nuscenes_infos, labelled_versions

        versions = labelled_versions(source.root)
        if len(versions) != 1:
            raise ValueError(f"{source.root} holds the nuScenes tables {versions or 'of no labelled version'}: build "
                             f"the infos of the one to train on first, `sparsekd-data nuscenes --root {source.root} "
                             "--version V`")
        create_nuscenes_infos(source.root, versions[0], wanted, workers=workers, db_split=db_split, progress=progress)
    else:
        from ..data.waymo_infos import create_waymo_infos

        create_waymo_infos(source.root, wanted, waymo_interval, workers, db_split, progress=progress)


def default_augment(layout: Layout, class_names: list[str], root: Path, gt_sampling: bool = True) -> dict[str, Any]:
    """The reference augmentation for ``layout`` as an AugmentConfig dict (gt-sampling only when the
    database exists and ``gt_sampling``)."""
    rotation = 0.3925 if layout == "nuscenes" else math.pi / 4  # OpenPCDet's nuscenes_dataset.yaml: +-0.3925
    aug: dict[str, Any] = {
        "flip_axes": ["x"] if layout == "kitti" else ["x", "y"],
        "rotation_range": [-rotation, rotation],
        "scale_range": [0.95, 1.05],
        "shuffle_points": True,
    }
    db = dbinfos_relpath(layout, "train")
    if gt_sampling and (root / db).is_file():
        groups = SAMPLE_GROUPS[layout]
        aug["gt_sampling"] = {
            "dbinfos_path": db,
            "sample_groups": {c: groups.get(c, 10) for c in class_names},
            "filter_difficulty": [-1] if layout == "kitti" else [],
        }
    elif gt_sampling:
        log.warning("no gt database at %s: training without gt-sampling (build it with sparsekd-data)", root / db)
    return aug


def with_overrides(augment: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A default augmentation with a model config's ``train.augment`` changes applied (gt_sampling keys merge
    into the default's; without a gt database there is no gt-sampling to change)."""
    if not overrides:
        return augment
    out = {**augment, **{k: v for k, v in overrides.items() if k != "gt_sampling"}}
    if "gt_sampling" in overrides and "gt_sampling" in augment:
        out["gt_sampling"] = {**augment["gt_sampling"], **overrides["gt_sampling"]}
    return out


def build_datasets(source: DataSource, cfg: ModelConfig, seed: int = 0,
                   augment: Mapping[str, Any] | None | Literal["default"] = "default",
                   need_val: bool = True) -> tuple[DetectionDataset, DetectionDataset | None]:
    """Training dataset (augmented) and validation dataset (not augmented) for the model ``cfg``.

    augment: "default" (the reference pipeline, :func:`default_augment`, with the model's ``train.augment``
    overrides), a dict (AugmentConfig fields) or None (no augmentation).
    """
    if augment == "default":
        augment = with_overrides(default_augment(source.layout, list(cfg.class_names), source.root), cfg.train.augment)
    common = dict(root=source.root, class_names=cfg.class_names, point_features=cfg.point_features,
                  point_cloud_range=cfg.voxelization.point_cloud_range, sweeps=cfg.sweeps)
    train_infos = load_split(source.root, source.layout, source.train_split)
    if not train_infos:
        raise ValueError(f"{source.root}: split {source.train_split!r} has no frames")
    present = count_objects(train_infos)
    if not any(c in present for c in cfg.class_names):
        raise ValueError(
            f"none of the model's classes {list(cfg.class_names)} occur in {source.root} ({source.layout} labels: "
            f"{sorted(present) or 'none'}): pick a model made for this dataset (KITTI-class models: kitti_* and "
            "*_sim; Waymo-class models: cp_voxel*, cp_pillar*; nuScenes models: nuscenes_*)")
    train = DetectionDataset(train_infos, augment_config=augment, training=True, seed=seed,
                             velocity=cfg.head.velocity, **common)
    val = None
    if need_val:
        val_path = infos_path(source.root, source.layout, source.val_split)
        if val_path.is_file():
            val = DetectionDataset(load_split(source.root, source.layout, source.val_split), training=False, **common)
        else:
            log.warning("no %s split infos at %s: evaluation skipped", source.val_split, val_path)
    return train, val
