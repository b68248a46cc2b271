"""Recall at fixed IoU thresholds (0.3 / 0.5 / 0.7, 3D and BEV), per class.

Users asked for it after knowledge distillation: AP mixes localisation and ranking, recall at a
loose and a tight IoU tells whether a student *finds* the objects and how well it places them.
A ground truth counts as recalled at threshold t when some prediction of the same class in the
same frame (with score >= ``min_score``) overlaps it with IoU > t (strictly, as OpenPCDet's
recall records do). It is not a one-to-one matching: one prediction may recall two ground truths.

This module also holds ``frame_pair_overlaps``, the sparse same-frame IoU that all the metrics
use: IoU is only ever computed between boxes of one frame, and only for pairs whose BEV
circumcircles (and, for 3D, z extents) touch, so the cost follows the number of real overlaps
rather than frames x boxes^2.

Inputs, one dict per frame: ground truth ``names`` (M,), ``boxes_lidar`` (M, 7) (and, when
present, ``num_points_in_gt``: boxes with 0 points are left out, nothing can see them);
predictions ``names``, ``boxes_lidar``, ``scores``. DontCare boxes are never counted.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from sparsekd_core.eval.report import (
    BOX_KEYS,
    NAME_KEYS,
    SCORE_KEYS,
    anno_field,
    boxes7,
    check_frames,
    check_lengths,
    fmt,
    format_table,
)
from sparsekd_core.geometry.iou import iou_3d_aligned, iou_bev_aligned

IOU_THRESHOLDS = (0.3, 0.5, 0.7)
_TOUCH_EPS = 1e-6  # m: slack in the cheap "could these overlap at all" test


def same_frame_pairs(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with frame_a[i] == frame_b[j]; both inputs sorted by frame.

    Returns two (P,) int64 index arrays, P = sum over frames of count_a * count_b.
    """
    frame_a = np.asarray(frame_a, np.int64)
    frame_b = np.asarray(frame_b, np.int64)
    if len(frame_a) == 0 or len(frame_b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if np.any(np.diff(frame_a) < 0) or np.any(np.diff(frame_b) < 0):
        raise ValueError("same_frame_pairs: frame ids must be sorted (boxes grouped by frame)")
    start_b = np.searchsorted(frame_b, frame_a, side="left")
    count_b = np.searchsorted(frame_b, frame_a, side="right") - start_b
    ia = np.repeat(np.arange(len(frame_a)), count_b)
    first = np.repeat(np.cumsum(count_b) - count_b, count_b)
    ib = np.repeat(start_b, count_b) + (np.arange(len(ia)) - first)
    return ia, ib


def frame_pair_overlaps(
    frame_a: np.ndarray,
    boxes_a: np.ndarray,
    frame_b: np.ndarray,
    boxes_b: np.ndarray,
    metric: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse IoU between two box sets, within frames.

    frame_a (Na,), boxes_a (Na, 7), frame_b (Nb,), boxes_b (Nb, 7): boxes grouped by frame id.
    metric: "bev" (rotated BEV IoU) or "3d" (rotated 3D IoU).
    Returns (ia, ib, iou): the pairs of the same frame with IoU > 0, and their IoU.
    """
    if metric not in ("bev", "3d"):
        raise ValueError(f"metric must be 'bev' or '3d', got {metric!r}")
    ia, ib = same_frame_pairs(frame_a, frame_b)
    if len(ia) == 0:
        return ia, ib, np.zeros(0)
    a = np.asarray(boxes_a, np.float64).reshape(-1, 7)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 7)
    # Cheap necessary condition for any overlap: BEV circumcircles (and z extents) touch.
    radius_a = 0.5 * np.hypot(a[:, 3], a[:, 4])
    radius_b = 0.5 * np.hypot(b[:, 3], b[:, 4])
    centre_gap = np.hypot(a[ia, 0] - b[ib, 0], a[ia, 1] - b[ib, 1])
    touch = centre_gap < radius_a[ia] + radius_b[ib] + _TOUCH_EPS
    if metric == "3d":
        touch &= np.abs(a[ia, 2] - b[ib, 2]) < 0.5 * (a[ia, 5] + b[ib, 5]) + _TOUCH_EPS
    ia, ib = ia[touch], ib[touch]
    if len(ia) == 0:
        return ia, ib, np.zeros(0)
    fn = iou_3d_aligned if metric == "3d" else iou_bev_aligned
    iou = np.asarray(fn(a[ia], b[ib]), np.float64)
    keep = iou > 0
    return ia[keep], ib[keep], iou[keep]


def _flatten(annos: Sequence[Mapping[str, Any]], is_gt: bool) -> dict[str, np.ndarray]:
    what = "ground truth" if is_gt else "predictions"
    frames, names, boxes, scores = [], [], [], []
    for i, anno in enumerate(annos):
        n = anno_field(anno, NAME_KEYS, i, what).astype(str).reshape(-1)
        b = boxes7(anno_field(anno, BOX_KEYS, i, what, default=np.zeros((0, 7))), i, what)
        keep = n != "DontCare"
        if len(b) == int(keep.sum()) and len(b) != len(n):
            # OpenPCDet-style infos: LiDAR boxes for the non-DontCare objects only.
            full = np.zeros((len(n), 7))
            full[keep] = b
            b = full
        if is_gt:
            s = np.ones(len(n))
            pts = anno_field(anno, ("num_points_in_gt",), i, what, np.int64, default=np.full(len(n), 1))
            check_lengths({"names": n, "boxes_lidar": b, "num_points_in_gt": pts.reshape(-1)}, i, what)
            keep &= pts.reshape(-1) > 0
        else:
            s = anno_field(anno, SCORE_KEYS, i, what, np.float64).reshape(-1)
            check_lengths({"names": n, "boxes_lidar": b, "scores": s}, i, what)
        frames.append(np.full(int(keep.sum()), i, np.int64))
        names.append(n[keep])
        boxes.append(b[keep])
        scores.append(s[keep])
    if not frames:
        return {"frame": np.zeros(0, np.int64), "names": np.zeros(0, str), "boxes": np.zeros((0, 7)),
                "scores": np.zeros(0)}
    return {"frame": np.concatenate(frames), "names": np.concatenate(names),
            "boxes": np.concatenate(boxes), "scores": np.concatenate(scores)}


def recall_eval(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    classes: Sequence[str] | None = None,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    metrics: Sequence[str] = ("3d", "bev"),
    min_score: float = 0.0,
) -> dict:
    """Recall (percent) of each class's ground truths at each IoU threshold and metric.

    classes: default every ground-truth class in order of first appearance (DontCare excluded).
    Returns a JSON-ready dict: recall[class][metric][str(t)] (NaN without ground truth),
    num_gt[class], summary["Car/3d/0.7"], table.
    """
    check_frames(gt_annos, dt_annos)
    gt = _flatten(gt_annos, is_gt=True)
    dt = _flatten(dt_annos, is_gt=False)
    if classes is None:
        _, first = np.unique(gt["names"], return_index=True)
        classes = [str(gt["names"][i]) for i in sorted(first)]
    result: dict[str, Any] = {
        "benchmark": "recall",
        "thresholds": [float(t) for t in thresholds],
        "min_score": float(min_score),
        "recall": {},
        "num_gt": {},
        "summary": {},
    }
    for cls in classes:
        g = np.flatnonzero(gt["names"] == cls)
        d = np.flatnonzero((dt["names"] == cls) & (dt["scores"] >= min_score))
        result["num_gt"][cls] = len(g)
        result["recall"][cls] = {}
        for metric in metrics:
            ig, _, iou = frame_pair_overlaps(gt["frame"][g], gt["boxes"][g], dt["frame"][d], dt["boxes"][d], metric)
            best = np.zeros(len(g))
            np.maximum.at(best, ig, iou)
            per_t = {}
            for t in thresholds:
                value = float((best > t).mean() * 100) if len(g) else float("nan")
                per_t[f"{t:g}"] = value
                result["summary"][f"{cls}/{metric}/{t:g}"] = value
            result["recall"][cls][metric] = per_t
    result["table"] = recall_table(result)
    return result


def recall_table(result: Mapping[str, Any]) -> str:
    """Class x metric rows, one column per IoU threshold."""
    keys = [f"{t:g}" for t in result["thresholds"]]
    rows = []
    for cls, per_metric in result["recall"].items():
        for metric, per_t in per_metric.items():
            rows.append([cls, metric] + [fmt(per_t[k]) for k in keys] + [result["num_gt"][cls]])
    return format_table(
        ["class", "metric"] + [f"R@{k}" for k in keys] + ["gt"],
        rows,
        title=f"Recall (%) at IoU thresholds, predictions with score >= {result['min_score']:g}",
    )
