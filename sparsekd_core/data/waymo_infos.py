"""Waymo infos from OpenPCDet's processed layout: Vehicle/Pedestrian/Cyclist, LEVEL_1/LEVEL_2, every k-th frame.

``sparsekd-data waymo --root R [--interval k]`` calls :func:`create_waymo_infos`. The layout (per-segment
``.npy`` frames, ``waymo_infos_<split>.pkl``) is read by waymo_format.py; this module turns its frame dicts
into cached :class:`FrameInfo` s with the difficulty *level* (2 = LEVEL_2: <= 5 points or labelled
difficulty 2, else 1) and builds the gt database.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.infos import (
    FrameInfo, SplitSummary, create_infos, frame_info_from_dict, load_points, map_frames,
)
from sparsekd_core.geometry.boxes import points_in_boxes

log = logging.getLogger(__name__)


def read_split_dicts(root: str | Path, split: str, interval: int = 1) -> list[dict]:
    """The split's frame dicts (every ``interval``-th), from ``waymo_infos_<split>.pkl`` or, when that is
    missing, from the per-segment pickles of the segments in ``ImageSets/<split>.txt``."""
    layout = wf.WaymoLayout(root)
    if layout.infos_path(split).is_file():
        return wf.read_infos(layout, split, sampled_interval=interval)
    if layout.image_set_path(split).is_file():
        log.info("Waymo: no %s; reading the segments listed in %s", layout.infos_path(split),
                 layout.image_set_path(split))
        return wf.read_infos(layout, split, sampled_interval=interval, from_segments=True)
    raise FileNotFoundError(
        f"Waymo root {Path(root)} has neither {layout.infos_path(split)} nor {layout.image_set_path(split)}; "
        f"point --root at the folder that holds {wf.PROCESSED_DATA_TAG}/ (OpenPCDet's processed layout)"
    )


def waymo_frame_info(root: str | Path, frame: dict) -> FrameInfo:
    """One frame dict -> FrameInfo; objects of other classes dropped, point counts taken from the labels
    (counted from the points when the labels lack them)."""
    info = frame_info_from_dict(frame, "waymo")
    if not (Path(root) / info.lidar_path).is_file():
        raise FileNotFoundError(f"Waymo frame {info.frame_id}: point file {Path(root) / info.lidar_path} is missing")
    annos = info.annos
    keep = np.isin(annos.names, wf.WAYMO_CLASSES)
    annos = annos.select(keep)
    if np.any(annos.num_points_in_gt < 0):
        annos.num_points_in_gt = points_in_boxes(load_points(info, root)[:, :3], annos.boxes_lidar).sum(axis=0)
        annos.difficulty = wf.difficulty_level({"num_points_in_gt": annos.num_points_in_gt,
                                                "difficulty": annos.difficulty})
    return info.with_annos(annos)


def build_waymo_infos(root: str | Path, split: str, interval: int = 1, workers: int = 2,
                      progress: bool = True) -> list[FrameInfo]:
    """Infos of every ``interval``-th frame of ``split``."""
    frames = read_split_dicts(root, split, interval)
    return list(map_frames(lambda d: waymo_frame_info(root, d), frames, workers, f"waymo {split} infos", progress))


def create_waymo_infos(root: str | Path, splits: Sequence[str] = ("train", "val"), interval: int = 1,
                       workers: int = 2, db_split: str | None = "train",
                       db_classes: Sequence[str] = wf.WAYMO_CLASSES, progress: bool = True) -> list[SplitSummary]:
    """Write ``infos_path(root, 'waymo', split)`` for each split (every ``interval``-th frame) and the gt
    database of ``db_split`` (None: no database). Returns a summary per split."""
    return create_infos("waymo", root, splits,
                        lambda split: build_waymo_infos(root, split, interval, workers, progress),
                        db_split, db_classes, workers, progress)
