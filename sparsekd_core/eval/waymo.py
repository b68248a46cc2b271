"""The Waymo Open Dataset 3D detection metric: AP and APH at LEVEL_1 / LEVEL_2, by class and range.

The rules, as the official metric library computes them (waymo_open_dataset/metrics):

- Classes Vehicle / Pedestrian / Cyclist; a prediction and a ground truth can match when they
  are of the same class and their rotated 3D IoU >= 0.7 / 0.5 / 0.5.
- Ground truths with 0 LiDAR points are dropped (as the official tool does before matching).
  LEVEL_2 objects: <= 5 points or labelled difficulty 2; all others are LEVEL_1.
- For each score cutoff (0.00, 0.01, ..., 0.99, 1.00) the predictions scoring >= cutoff are
  matched to the ground truths, per frame, by the Hungarian algorithm maximising the summed IoU
  over pairs above the IoU threshold.
- Scores and cutoffs are compared in float32, as the official op holds both (proto ``float``
  fields, a float32 score tensor): ``35 * 0.01`` is 0.35000000000000003 in float64, which would
  leave out a score of exactly 0.35; in float32 both are the same number, so the score counts.
- Counting at a level L: a matched prediction is a TP (whatever the level of its ground truth),
  an unmatched prediction an FP, an unmatched ground truth an FN only when its level <= L.
  LEVEL_2 therefore counts every ground truth, LEVEL_1 forgives misses of LEVEL_2 objects.
- Heading accuracy of a TP: 1 - |heading error| / pi, the error wrapped into [0, pi].
  APH uses precision_H = sum of heading accuracies / (TP + FP) with the plain recall.
  (Recent library versions also drop TPs whose heading accuracy is exactly 0, a box turned by
  precisely 180 deg; like the versions OpenPCDet and SparseKD report with, they count here.)
- Precision is set to 1 where recall is 0; AP is the area under the precision envelope
  (precision at recall r = the best precision at any recall >= r), integrated by trapezoids
  on recall steps no wider than 0.05 (gaps are filled with points on the envelope).
- Range breakdown: each box (ground truth and prediction alike) goes to the shard of its own
  centre distance sqrt(x^2 + y^2 + z^2): [0, 30), [30, 50), [50, inf) m, and matching is
  redone inside each shard, as the official RANGE breakdown does.

Where a class (or shard) has no ground truth to count at a level, the official op still gives a
value, and so does this module: with nothing to find, recall is 0 at every cutoff and AP is 0.00
(a class with no ground truth at all). At LEVEL_1, ground truths of LEVEL_2 are still matched but
never missed, so for a class with only LEVEL_2 ground truth recall is 1 at every cutoff where a
prediction matches one and 0 elsewhere: LEVEL_1 AP is then the best precision among those cutoffs
(100.00 for perfect predictions, 0.00 when nothing matches). Means over classes take the classes
that have ground truth (at any level); a class without any is left out of them.

The official library re-runs the matching for every cutoff. Here the matching of a frame only
changes where a prediction of a connected group of overlapping boxes crosses a cutoff, so
isolated pairs are resolved in one vectorised step and only the groups with competing
predictions or ground truths run the Hungarian algorithm (scipy), once per distinct score in
the group.

Inputs, one dict per frame (numpy arrays, one entry per box):
  ground truth: names (M,) (Vehicle/Pedestrian/Cyclist; others ignored), boxes_lidar (M, 7),
      num_points_in_gt (M,), difficulty (M,) optional (0 unknown, 1, 2). OpenPCDet's
      ``name``/``gt_boxes_lidar`` keys are accepted.
  predictions: names (M,), boxes_lidar (M, 7), scores (M,).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sparsekd_core.eval.recall import frame_pair_overlaps
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

CLASSES = ("Vehicle", "Pedestrian", "Cyclist")
# KITTI's class names too, so the Waymo-style metric also runs on KITTI-format data.
IOU_THRESHOLDS = {"vehicle": 0.7, "pedestrian": 0.5, "cyclist": 0.5, "sign": 0.5, "car": 0.7, "van": 0.7, "truck": 0.7}
LEVELS = ("LEVEL_1", "LEVEL_2")
LEVEL_2_MAX_POINTS = 5
RANGE_SHARDS = (("0-30", 0.0, 30.0), ("30-50", 30.0, 50.0), ("50+", 50.0, np.inf))
MAX_RECALL_DELTA = 0.05
# As the official config builds them (i * 0.01 in Python), before float32 rounding (see _as_float32).
DEFAULT_SCORE_CUTOFFS = np.concatenate([np.arange(100) * 0.01, [1.0]])


def _as_float32(values: np.ndarray) -> np.ndarray:
    """Values rounded to float32 and held as float64: comparing these compares the float32 numbers."""
    return np.asarray(values, np.float64).astype(np.float32).astype(np.float64)


def heading_accuracy(pred_yaw: np.ndarray, gt_yaw: np.ndarray) -> np.ndarray:
    """1 - |yaw error| / pi, the error wrapped into [0, pi]: 1 exact, 0.5 at 90 deg, 0 reversed."""
    diff = np.abs(np.mod(np.asarray(pred_yaw, np.float64) - np.asarray(gt_yaw, np.float64) + np.pi, 2 * np.pi) - np.pi)
    return np.clip(1.0 - diff / np.pi, 0.0, 1.0)


def waymo_average_precision(
    precisions: Sequence[float], recalls: Sequence[float], max_recall_delta: float = MAX_RECALL_DELTA
) -> float:
    """Area (0..1) under the precision envelope of (precision, recall) points, the official way.

    Recall 0 is anchored at precision 1; walking from high to low recall, precision is the
    best seen so far, gaps wider than ``max_recall_delta`` get intermediate points on that
    envelope, the recall-0 point takes the precision of its neighbour, and the curve is
    integrated with the trapezoid rule.
    """
    precisions = np.asarray(precisions, np.float64)
    recalls = np.asarray(recalls, np.float64)
    if precisions.shape != recalls.shape:
        raise ValueError(f"precisions {precisions.shape} and recalls {recalls.shape} must match")
    if not 0 < max_recall_delta <= 1:
        raise ValueError(f"max_recall_delta must be in (0, 1], got {max_recall_delta}")
    if len(precisions) == 0:
        return 0.0
    best: dict[float, float] = {0.0: 1.0}
    for p, r in zip(precisions.tolist(), recalls.tolist()):
        best[r] = max(best.get(r, 0.0), p)
    if len(best) == 1:  # nothing recalled at any cutoff
        return 0.0
    points: list[tuple[float, float]] = []  # (precision, recall), recall descending
    last_recall = min(best)
    max_precision = 0.0
    for r in sorted(best, reverse=True):  # a short loop over distinct recall values
        while last_recall - r > max_recall_delta + 1e-6:
            last_recall -= max_recall_delta
            points.append((max_precision, last_recall))
        max_precision = max(best[r], max_precision)
        points.append((max_precision, r))
        last_recall = r
    points[-1] = (points[-2][0], points[-1][1])
    p = np.array([q[0] for q in points])
    r = np.array([q[1] for q in points])
    return float(np.sum(0.5 * (r[:-1] - r[1:]) * (p[:-1] + p[1:])))


@dataclass
class _Boxes:
    frame: np.ndarray  # (K,) int64, sorted
    names: np.ndarray  # (K,) lower-case str
    boxes: np.ndarray  # (K, 7) float64
    score: np.ndarray  # (K,) predictions; ones for ground truth
    level: np.ndarray  # (K,) 1 or 2 for ground truth; zeros for predictions
    shard: np.ndarray  # (K,) range shard index


def _range_shard(boxes: np.ndarray) -> np.ndarray:
    dist = np.linalg.norm(boxes[:, :3], axis=1)
    edges = np.array([lo for _, lo, _ in RANGE_SHARDS[1:]])
    return np.searchsorted(edges, dist, side="right")


def _load(annos: Sequence[Mapping[str, Any]], is_gt: bool) -> _Boxes:
    what = "ground truth" if is_gt else "predictions"
    out: dict[str, list] = {k: [] for k in ("frame", "names", "boxes", "score", "level")}
    for i, anno in enumerate(annos):
        names = np.char.lower(anno_field(anno, NAME_KEYS, i, what).astype(str).reshape(-1))
        boxes = boxes7(anno_field(anno, BOX_KEYS, i, what, default=np.zeros((0, 7))), i, what)
        m = len(names)
        if is_gt:
            pts = anno_field(anno, ("num_points_in_gt",), i, what, np.int64).reshape(-1)
            diff = anno_field(anno, ("difficulty",), i, what, np.int64, default=np.zeros(m)).reshape(-1)
            check_lengths({"names": names, "boxes_lidar": boxes, "num_points_in_gt": pts, "difficulty": diff}, i, what)
            keep = pts > 0
            level = np.where((pts <= LEVEL_2_MAX_POINTS) | (diff == 2), 2, 1)
            score = np.ones(m)
        else:
            score = _as_float32(anno_field(anno, SCORE_KEYS, i, what, np.float64).reshape(-1))
            check_lengths({"names": names, "boxes_lidar": boxes, "scores": score}, i, what)
            keep = np.ones(m, bool)
            level = np.zeros(m, np.int64)
        out["frame"].append(np.full(int(keep.sum()), i, np.int64))
        out["names"].append(names[keep])
        out["boxes"].append(boxes[keep])
        out["score"].append(score[keep])
        out["level"].append(level[keep])
    if not out["frame"]:
        boxes = np.zeros((0, 7))
        return _Boxes(np.zeros(0, np.int64), np.zeros(0, "<U1"), boxes, np.zeros(0), np.zeros(0, np.int64),
                      np.zeros(0, np.int64))
    boxes = np.concatenate(out["boxes"])
    return _Boxes(
        frame=np.concatenate(out["frame"]),
        names=np.concatenate(out["names"]),
        boxes=boxes,
        score=np.concatenate(out["score"]),
        level=np.concatenate(out["level"]),
        shard=_range_shard(boxes),
    )


@dataclass
class _Counts:
    """Matching outcome per score cutoff, for one class and one breakdown shard."""

    tp: np.ndarray  # (C,) matched predictions
    tp_level1: np.ndarray  # (C,) of which matched to LEVEL_1 ground truths
    sum_ha: np.ndarray  # (C,) summed heading accuracy of the TPs
    num_pred: np.ndarray  # (C,) predictions scoring >= cutoff
    num_gt: dict[str, int]  # ground truths per level (LEVEL_2 = all)


def _match_counts(
    pred_score: np.ndarray,
    gt_level: np.ndarray,
    edge_p: np.ndarray,
    edge_g: np.ndarray,
    edge_iou: np.ndarray,
    edge_ha: np.ndarray,
    cutoffs: np.ndarray,
) -> _Counts:
    """TP/FP/FN inputs at every cutoff from the candidate pairs (IoU >= threshold) of one subset.

    pred_score (P,), gt_level (G,): the subset's predictions and ground truths.
    edge_*: (E,) pairs (prediction index, ground-truth index, IoU, heading accuracy).
    """
    n_c = len(cutoffs)
    diff_tp = np.zeros(n_c + 1)
    diff_l1 = np.zeros(n_c + 1)
    diff_ha = np.zeros(n_c + 1)

    def add(lo: np.ndarray, hi: np.ndarray, levels: np.ndarray, ha: np.ndarray) -> None:
        """Pairs matched for the cutoff indices [lo, hi)."""
        np.add.at(diff_tp, lo, 1.0)
        np.add.at(diff_tp, hi, -1.0)
        l1 = (levels == 1).astype(np.float64)
        np.add.at(diff_l1, lo, l1)
        np.add.at(diff_l1, hi, -l1)
        np.add.at(diff_ha, lo, ha)
        np.add.at(diff_ha, hi, -ha)

    def upto(score: np.ndarray) -> np.ndarray:
        """Number of cutoffs <= score: the prediction takes part at cutoff indices [0, upto)."""
        return np.searchsorted(cutoffs, score, side="right")

    if len(edge_p):
        n_p, n_g = len(pred_score), len(gt_level)
        graph = coo_matrix((np.ones(len(edge_p)), (edge_p, n_p + edge_g)), shape=(n_p + n_g, n_p + n_g))
        _, label = connected_components(graph, directed=False)
        comp = label[edge_p]
        edges_per_comp = np.bincount(comp)
        single = edges_per_comp[comp] == 1
        # An isolated pair is matched whenever its prediction is above the cutoff.
        hi = upto(pred_score[edge_p[single]])
        add(np.zeros(int(single.sum()), np.int64), hi, gt_level[edge_g[single]], edge_ha[single])

        # Groups with competition: Hungarian matching, redone at each distinct score of the group.
        multi = np.flatnonzero(~single)
        multi = multi[np.argsort(comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[multi])) + 1
        for group in np.split(multi, bounds) if len(multi) else []:
            preds, p_local = np.unique(edge_p[group], return_inverse=True)
            gts, g_local = np.unique(edge_g[group], return_inverse=True)
            weight = np.zeros((len(preds), len(gts)))
            weight[p_local, g_local] = edge_iou[group]
            ha = np.zeros_like(weight)
            ha[p_local, g_local] = edge_ha[group]
            scores = pred_score[preds]
            levels_desc = np.unique(scores)[::-1]
            for k, level_score in enumerate(levels_desc):
                lower = levels_desc[k + 1] if k + 1 < len(levels_desc) else -np.inf
                active = np.flatnonzero(scores >= level_score)
                rows, cols = linear_sum_assignment(weight[active], maximize=True)
                ok = weight[active[rows], cols] > 0
                rows, cols = active[rows[ok]], cols[ok]
                lo = upto(np.array([lower]))[0] if np.isfinite(lower) else 0
                hi_k = upto(np.array([level_score]))[0]
                if hi_k > lo and len(rows):
                    add(np.full(len(rows), lo), np.full(len(rows), hi_k), gt_level[gts[cols]], ha[rows, cols])

    sorted_scores = np.sort(pred_score)
    num_pred = len(sorted_scores) - np.searchsorted(sorted_scores, cutoffs, side="left")
    return _Counts(
        tp=np.cumsum(diff_tp)[:n_c],
        tp_level1=np.cumsum(diff_l1)[:n_c],
        sum_ha=np.cumsum(diff_ha)[:n_c],
        num_pred=num_pred.astype(np.float64),
        num_gt={"LEVEL_1": int((gt_level == 1).sum()), "LEVEL_2": len(gt_level)},
    )


def _ap_from_counts(counts: _Counts, level: str) -> dict[str, Any]:
    """AP and APH (percent) at one level, with the PR points they come from."""
    num_gt = counts.num_gt[level]
    tp = counts.tp
    matched_counted = counts.tp_level1 if level == "LEVEL_1" else counts.tp
    fn = num_gt - matched_counted
    fp = counts.num_pred - tp
    precision = np.zeros_like(tp)
    precision_h = np.zeros_like(tp)
    np.divide(tp, tp + fp, out=precision, where=(tp + fp) > 0)
    np.divide(counts.sum_ha, tp + fp, out=precision_h, where=(tp + fp) > 0)
    recall = np.zeros_like(tp)
    np.divide(tp, tp + fn, out=recall, where=(tp + fn) > 0)  # nothing to find: recall 0, as the op
    precision = np.where(recall == 0, 1.0, precision)
    precision_h = np.where(recall == 0, 1.0, precision_h)
    return {
        "AP": 100 * waymo_average_precision(precision, recall),
        "APH": 100 * waymo_average_precision(precision_h, recall),
        "num_gt": num_gt,
        "precision": precision,
        "precision_h": precision_h,
        "recall": recall,
    }


def waymo_eval(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    classes: Sequence[str] = CLASSES,
    iou_thresholds: Mapping[str, float] | None = None,
    score_cutoffs: Sequence[float] | None = None,
    breakdown_by_range: bool = True,
) -> dict:
    """Waymo AP / APH (percent) per class and level, their means, and the range breakdown.

    gt_annos, dt_annos: one dict per frame, same order (module docstring lists the keys).
    iou_thresholds: per class name, overriding Vehicle 0.7 / Pedestrian 0.5 / Cyclist 0.5.
    score_cutoffs: ascending cutoffs; default 0.00, 0.01, ..., 1.00 like the official config (compared
        with the scores in float32, like the official op).

    Returns a JSON-ready dict:
      classes[class][level] = {"AP", "APH", "num_gt", "precision", "precision_h", "recall"}
      (a class without ground truth at a level gets the official op's value: see the module docstring)
      mean[level] = {"mAP", "mAPH"} over the classes with ground truth at any level
      range[class][shard][level] = {"AP", "APH", "num_gt"} for shards "0-30", "30-50", "50+"
      summary["LEVEL_2/mAPH"], summary["Vehicle/LEVEL_1/AP"], ...; table = printable text.
    """
    n_frames = check_frames(gt_annos, dt_annos)
    thresholds = dict(IOU_THRESHOLDS)
    thresholds.update({k.lower(): float(v) for k, v in (iou_thresholds or {}).items()})
    missing = [c for c in classes if c.lower() not in thresholds]
    if missing:
        raise ValueError(f"no IoU threshold for class(es) {missing}: pass iou_thresholds={{name: iou}}")
    cutoffs = _as_float32(DEFAULT_SCORE_CUTOFFS if score_cutoffs is None else score_cutoffs)
    if cutoffs.ndim != 1 or len(cutoffs) == 0 or np.any(np.diff(cutoffs) <= 0):
        raise ValueError("score_cutoffs must be a non-empty sequence, strictly increasing in float32")

    gt = _load(gt_annos, is_gt=True)
    dt = _load(dt_annos, is_gt=False)
    result: dict[str, Any] = {
        "benchmark": "waymo",
        "num_frames": n_frames,
        "iou_threshold": {},
        "classes": {},
        "range": {},
        "mean": {},
        "summary": {},
    }
    for cls in classes:
        key = cls.lower()
        thr = thresholds[key]
        result["iou_threshold"][cls] = thr
        g_idx = np.flatnonzero(gt.names == key)
        p_idx = np.flatnonzero(dt.names == key)
        ip, ig, iou = frame_pair_overlaps(dt.frame[p_idx], dt.boxes[p_idx], gt.frame[g_idx], gt.boxes[g_idx], "3d")
        ok = iou >= thr
        ip, ig, iou = ip[ok], ig[ok], iou[ok]
        ha = heading_accuracy(dt.boxes[p_idx[ip], 6], gt.boxes[g_idx[ig], 6])

        def shard_counts(p_mask: np.ndarray, g_mask: np.ndarray) -> _Counts:
            p_new = np.cumsum(p_mask) - 1
            g_new = np.cumsum(g_mask) - 1
            e = p_mask[ip] & g_mask[ig]
            return _match_counts(
                dt.score[p_idx[p_mask]], gt.level[g_idx[g_mask]], p_new[ip[e]], g_new[ig[e]], iou[e], ha[e], cutoffs
            )

        everything = shard_counts(np.ones(len(p_idx), bool), np.ones(len(g_idx), bool))
        result["classes"][cls] = {level: _ap_from_counts(everything, level) for level in LEVELS}
        for level in LEVELS:
            for m in ("AP", "APH"):
                result["summary"][f"{cls}/{level}/{m}"] = result["classes"][cls][level][m]
        if breakdown_by_range:
            result["range"][cls] = {}
            for s, (name, _, _) in enumerate(RANGE_SHARDS):
                counts = shard_counts(dt.shard[p_idx] == s, gt.shard[g_idx] == s)
                per_level = {}
                for level in LEVELS:
                    r = _ap_from_counts(counts, level)
                    per_level[level] = {"AP": r["AP"], "APH": r["APH"], "num_gt": r["num_gt"]}
                result["range"][cls][name] = per_level
    present = [c for c in classes if result["classes"][c]["LEVEL_2"]["num_gt"] > 0]
    for level in LEVELS:
        aps = [result["classes"][c][level]["AP"] for c in present]
        aphs = [result["classes"][c][level]["APH"] for c in present]
        result["mean"][level] = {"mAP": _mean(aps), "mAPH": _mean(aphs)}
        result["summary"][f"{level}/mAP"] = result["mean"][level]["mAP"]
        result["summary"][f"{level}/mAPH"] = result["mean"][level]["mAPH"]
    result["table"] = waymo_table(result)
    return result


def _mean(values: Sequence[float]) -> float:
    """Mean over the classes with ground truth; NaN (printed '-') when no class has any."""
    return float(np.mean(values)) if values else float("nan")


def waymo_table(result: Mapping[str, Any]) -> str:
    """Per-class rows (overall, then each range shard) with AP/APH at both levels, then the mean."""
    header = ["class", "range", "L1 AP", "L1 APH", "L2 AP", "L2 APH", "gt L1/L2"]
    rows = []
    for cls, per_level in result["classes"].items():
        shards = [("all", per_level)] + list(result["range"].get(cls, {}).items())
        for shard, vals in shards:
            rows.append(
                [cls if shard == "all" else "", shard]
                + [fmt(vals[lv][m]) for lv in LEVELS for m in ("AP", "APH")]
                + [f"{vals['LEVEL_1']['num_gt']}/{vals['LEVEL_2']['num_gt']}"]
            )
    rows.append(["mean", "all"] + [fmt(result["mean"][lv][m]) for lv in LEVELS for m in ("mAP", "mAPH")] + [""])
    return format_table(header, rows, title=f"Waymo 3D detection (%), {result['num_frames']} frames")
