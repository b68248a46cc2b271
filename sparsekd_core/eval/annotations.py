"""Frames as the metrics take them: ground-truth and prediction dicts built from cached infos.

Shared by ``sparsekd-eval``, the evaluation during training and the demo, so every path scores the
same objects (DontCare outside a model's range, 2D boxes and alpha from the KITTI calibration).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sparsekd_core.data.infos import FrameInfo

__all__ = ["gt_annos_for", "predictions_from_gt", "predictions_from_detections"]


def gt_annos_for(info: FrameInfo, dataset: str, bev_range: Sequence[float] | None = None) -> dict:
    """The per-frame ground-truth dict the metrics take.

    ``bev_range`` (x_min, y_min, x_max, y_max; a model's point_cloud_range works too): objects whose centre is
    outside it become DontCare, so a model is scored on the area it sees. KITTI's rules then also excuse
    detections that overlap them; the Waymo metric ignores them. None scores every labelled object.
    """
    anno = info.annos.as_dict()
    if dataset == "kitti":
        # KITTI's difficulty field is easy/moderate/hard, not a Waymo level: levels come from points.
        anno = {**anno, "difficulty": np.zeros(len(info.annos), np.int64)}
    if bev_range is not None and len(info.annos):
        r = np.asarray(bev_range, np.float64)
        x0, y0, x1, y1 = (r[0], r[1], r[3], r[4]) if len(r) == 6 else r
        centres = np.asarray(info.annos.boxes_lidar, np.float64)[:, :2]
        outside = (centres[:, 0] < x0) | (centres[:, 0] >= x1) | (centres[:, 1] < y0) | (centres[:, 1] >= y1)
        if outside.any():
            names = np.where(outside, "DontCare", np.asarray(anno["names"]).astype(object))
            anno = {**anno, "names": names.astype(str)}
    return anno


def predictions_from_gt(info: FrameInfo, classes: Sequence[str]) -> dict:
    """Ground truth of the evaluated classes as predictions with score 1."""
    a = info.annos
    keep = np.isin(a.names, list(classes))
    out = {"names": a.names[keep], "boxes_lidar": a.boxes_lidar[keep].astype(np.float64),
           "scores": np.ones(int(keep.sum()))}
    if a.velocity is not None:
        out["velocity"] = a.velocity[keep].astype(np.float64)
    if a.bbox is not None:
        out["bbox"] = a.bbox[keep].astype(np.float64)
        out["alpha"] = a.alpha[keep].astype(np.float64)
    return out


def predictions_from_detections(info: FrameInfo, boxes: np.ndarray, scores: np.ndarray, names: Sequence[str],
                                velocities: np.ndarray | None = None) -> dict:
    """Detector output as a prediction dict; KITTI frames get 2D boxes and alpha from the calibration;
    ``velocities`` (M, 2), from models that regress them, are kept (the nuScenes metric scores them)."""
    out = {"names": np.asarray(names, dtype=str).reshape(-1),
           "boxes_lidar": np.asarray(boxes, np.float64).reshape(-1, 7),
           "scores": np.asarray(scores, np.float64).reshape(-1)}
    if velocities is not None:
        out["velocity"] = np.asarray(velocities, np.float64).reshape(-1, 2)
    if info.calib is not None:
        from sparsekd_core.data.kitti_format import boxes_to_image_bbox, lidar_boxes_to_camera, observation_angle

        # image_shape is (height, width); without it the projection clips to KITTI's image size.
        size = {} if info.image_shape is None else {"image_size": (int(info.image_shape[1]), int(info.image_shape[0]))}
        # Boxes outside the image get a zero-size 2D box, which the KITTI rules then ignore.
        bbox, _ = boxes_to_image_bbox(out["boxes_lidar"], info.calib, **size)
        location, _, rotation_y = lidar_boxes_to_camera(out["boxes_lidar"], info.calib)
        out["bbox"] = bbox
        out["alpha"] = observation_angle(location, rotation_y)
    return out
