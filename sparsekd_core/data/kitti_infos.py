"""KITTI infos: parse every frame of a split once (labels -> LiDAR boxes, difficulty, points per box, calib).

``sparsekd-data kitti --root R`` calls :func:`create_kitti_infos`. The file formats and the camera <-> LiDAR
conversions are kitti_format.py's; this module only assembles them into cached :class:`FrameInfo` s.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.data import kitti_format as kf
from sparsekd_core.data.infos import POINT_FEATURES, FrameInfo, ObjectAnnos, SplitSummary, create_infos, map_frames
from sparsekd_core.geometry.boxes import points_in_boxes

log = logging.getLogger(__name__)

#: The classes the gt database keeps by default (what KITTI models train on and gt-sampling pastes).
KITTI_DB_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist", "Van", "Truck", "Tram", "Person_sitting", "Misc")


def split_folder(split: str) -> str:
    """ImageSets 'test' lives in KITTI's ``testing`` folder; train/val/trainval in ``training``."""
    return "testing" if split == "test" else "training"


def kitti_frame_ids(root: str | Path, split: str) -> list[str]:
    """Frame ids of ``split`` from ``ImageSets/<split>.txt``; without that file, every frame of the folder
    (with a log line saying so: train and val then hold the same frames)."""
    layout = kf.KittiLayout(root, split_folder(split))
    image_set = layout.image_set_path(split)
    if image_set.is_file():
        return kf.read_image_set(image_set)
    source = layout.split_dir / "label_2"
    if not source.is_dir():
        source = layout.velodyne_dir()
    if not source.is_dir():
        raise FileNotFoundError(
            f"KITTI root {Path(root)} has neither {image_set} nor {layout.split_dir}/label_2 or velodyne; "
            "point --root at the folder that holds training/ (and ImageSets/)"
        )
    ids = sorted(p.stem for p in source.iterdir() if p.suffix in (".txt", ".bin"))
    log.warning("KITTI: no %s; split %r uses all %d frames in %s", image_set, split, len(ids), source)
    return ids


def _image_shape(layout: kf.KittiLayout, frame_id: str) -> tuple[int, int]:
    """(height, width) of image_2 when the image is there (header read only), else KITTI's usual size."""
    for ext in (".png", ".jpg"):
        path = layout.split_dir / "image_2" / f"{frame_id}{ext}"
        if path.is_file():
            from PIL import Image

            with Image.open(path) as img:
                return img.height, img.width
    return kf.KITTI_IMAGE_SIZE[1], kf.KITTI_IMAGE_SIZE[0]


def kitti_frame_info(root: str | Path, frame_id: str, split: str = "train") -> FrameInfo:
    """Parse one frame: label and calib files, LiDAR boxes, difficulty and points inside each box.

    DontCare regions keep their 2D box (the metric ignores detections in them); their 3D box is zeros
    and their point count -1. A frame without a label file (the test set) has no objects.
    """
    layout = kf.KittiLayout(root, split_folder(split))
    calib = kf.read_calib(layout.calib_path(frame_id))
    points_path = layout.points_path(frame_id)
    lidar_path = points_path.relative_to(layout.root).as_posix()
    label = layout.label_path(frame_id)
    objects = kf.read_label(label) if label.is_file() else []
    if not objects:
        annos = ObjectAnnos(np.zeros(0, str), np.zeros((0, 7)), np.zeros(0), np.zeros(0),
                            np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0))
    else:
        care = ~np.array([o.is_dontcare for o in objects])
        boxes = np.zeros((len(objects), 7), np.float32)
        boxes[care] = kf.objects_to_lidar_boxes([o for o, c in zip(objects, care) if c], calib)
        num_points = np.full(len(objects), -1, np.int64)
        points = kf.read_points(points_path)
        num_points[care] = points_in_boxes(points[:, :3], boxes[care]).sum(axis=0)
        annos = ObjectAnnos(
            names=[o.type for o in objects], boxes_lidar=boxes, num_points_in_gt=num_points,
            difficulty=kf.object_difficulty(objects), bbox=np.stack([o.bbox for o in objects]),
            truncated=[o.truncated for o in objects], occluded=[o.occluded for o in objects],
            alpha=[o.alpha for o in objects],
        )
    return FrameInfo("kitti", frame_id, lidar_path, POINT_FEATURES["kitti"], annos, calib,
                     _image_shape(layout, frame_id))


def build_kitti_infos(root: str | Path, split: str, workers: int = 2, progress: bool = True) -> list[FrameInfo]:
    """Infos of every frame of ``split`` (parsed on ``workers`` threads)."""
    ids = kitti_frame_ids(root, split)
    return list(map_frames(lambda fid: kitti_frame_info(root, fid, split), ids, workers, f"kitti {split} infos",
                           progress))


def create_kitti_infos(root: str | Path, splits: Sequence[str] = ("train", "val"), workers: int = 2,
                       db_split: str | None = "train", db_classes: Sequence[str] = KITTI_DB_CLASSES,
                       progress: bool = True) -> list[SplitSummary]:
    """Write ``infos_path(root, 'kitti', split)`` for each split and the gt database of ``db_split``
    (None: no database). Returns a summary per split."""
    return create_infos("kitti", root, splits, lambda split: build_kitti_infos(root, split, workers, progress),
                        db_split, db_classes, workers, progress)
