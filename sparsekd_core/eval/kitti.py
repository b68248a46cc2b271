"""The KITTI 3D object detection metric, by the rules of the official devkit.

What is measured (``kitti_eval``), per class x difficulty x metric:

- Classes and IoU: Car 0.7, Pedestrian 0.5, Cyclist 0.5 (Van/Truck 0.7, Person_sitting 0.5
  when asked for). A detection matches a ground truth when IoU > threshold (strictly).
- Difficulty of a ground truth (from its 2D box height in pixels, occlusion level and
  truncation): easy needs height > 40, occlusion <= 0, truncation <= 0.15; moderate 25 / 1 / 0.3;
  hard 25 / 2 / 0.5. Objects of the class that fail these are *ignored* at that difficulty:
  detecting them is neither a TP nor an FP, missing them is no FN.
- Neighbour classes are ignored too: Van when evaluating Car, Person_sitting for Pedestrian.
- Detections whose 2D box is lower than the difficulty's minimum height are ignored, *whatever
  their class* (the devkit's ``clean_data``): such a detection of another class still takes part in
  the matching of this class's ground truths, as an ignored detection. In the threshold pass a
  ground truth takes the highest-scoring overlapping detection, ignored or not, so a too-small
  detection of another class that outscores the right one uses up that ground truth: no true
  positive, no threshold. (With thresholds applied, counted detections are preferred, so there it
  only absorbs a ground truth that nothing else found.)
- DontCare regions: an unmatched detection whose 2D box lies inside a DontCare box
  (intersection / detection area > the class IoU threshold) is not an FP. As in the devkit, this
  rule acts on the 2D ``bbox`` metric only: its BEV/3D overlap test is against the DontCare
  label's 3D box, which is a dummy (-1000 m away, size -1), so it never fires there.
- Matching, per frame, ground truths in label order: each takes the unassigned detection that
  overlaps it most (preferring non-ignored detections); precision is measured at score
  thresholds chosen from the true positives so that recall is sampled at 41 positions
  (0, 1/40, ..., 1). AP R40 averages the interpolated precision at the 40 positions 1/40..1;
  AP R11 (the pre-2019 tables) at the 11 positions 0, 0.1, ..., 1.
- Metrics: ``bbox`` (2D image IoU), ``bev`` (rotated BEV IoU), ``3d`` (rotated 3D IoU) and
  ``aos`` (average orientation similarity, measured on the ``bbox`` matches).

A class/difficulty without valid ground truth scores 0.00, as the devkit prints it (its recall
sampling then yields no threshold, so every precision slot stays 0); means over classes leave
such classes out.

A property of the official recall sampling worth knowing: thresholds advance one sampling
position per true positive, so with fewer than 41 valid ground truths of a class/difficulty
not all 41 positions are filled and even perfect predictions score below 100
(n valid ground truths, all found: AP R40 = 100 (n - 1) / 40 for n <= 41). The result reports
the ground-truth counts so that small sets are visible. On nine frames with 8 moderate cars a perfect
detector scores 17.5, so such a figure says little about what the same detector scores on a large set.
``kitti_eval_uncapped`` answers that: it scores the frames repeated until the smallest class/difficulty
holds at least 41 valid ground truths (``small_set_repeats``). Repeating every frame k times keeps the
precision-recall curve (each true and false positive comes k times at its score), the devkit's rules
unchanged, and only lets its recall sampling reach all 40 positions: the figure a large set with these
frames' mix of objects and errors would get. It is an estimate from few objects, not the official figure.

The devkit matches with nested loops per frame and per threshold; here the same greedy rule
runs vectorised over frames and thresholds at once (a loop over the ground-truth slot only).

Inputs, one dict per frame (numpy arrays, one entry per box):
  ground truth: names (M,) str, bbox (M, 4) image px x1 y1 x2 y2, truncated (M,), occluded (M,),
      boxes_lidar (M, 7) or (number of non-DontCare boxes, 7) in our box convention
      (``gt_boxes_lidar``/``name`` as in OpenPCDet infos are accepted), alpha (M,) optional.
  predictions: names (M,), bbox (M, 4), scores (M,), boxes_lidar (M, 7), alpha (M,) optional.
Where alpha is absent it is derived from the LiDAR box (only needed for ``aos``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from sparsekd_core.eval.recall import frame_pair_overlaps, same_frame_pairs
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

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)  # px, per difficulty
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5, "van": 0.7, "person_sitting": 0.5, "truck": 0.7}
# Ground truths of these classes are ignored (not counted either way) when evaluating the key.
NEIGHBOUR_CLASSES = {"car": ("van",), "pedestrian": ("person_sitting",)}
METRICS = ("bbox", "bev", "3d", "aos")
N_SAMPLE_PTS = 41
DONTCARE = "dontcare"


@dataclass
class _Frames:
    """All boxes of all frames, concatenated (frame-major, label order kept within a frame)."""

    frame: np.ndarray  # (K,) int64 frame index of each box
    names: np.ndarray  # (K,) lower-case str
    bbox: np.ndarray  # (K, 4) float64 image px
    boxes: np.ndarray  # (K, 7) float64 LiDAR boxes (zeros for DontCare)
    alpha: np.ndarray  # (K,) float64 observation angle
    score: np.ndarray  # (K,) float64 (predictions) or zeros
    truncated: np.ndarray  # (K,) float64 (ground truth) or zeros
    occluded: np.ndarray  # (K,) int64 (ground truth) or zeros


def alpha_from_lidar_box(boxes: np.ndarray) -> np.ndarray:
    """KITTI observation angle of (M, 7) LiDAR boxes, in [-pi, pi).

    KITTI's rotation_y is -yaw - pi/2 and alpha = rotation_y - arctan2(x_cam, z_cam); with
    x_cam = -y and z_cam = x this is alpha = arctan2(y, x) - yaw - pi/2 (the ~0.3 m offset
    between LiDAR and camera is neglected; only differences of alpha enter AOS).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    alpha = np.arctan2(boxes[:, 1], boxes[:, 0]) - boxes[:, 6] - np.pi / 2
    return (alpha + np.pi) % (2 * np.pi) - np.pi


def _load(annos: Sequence[Mapping[str, Any]], is_gt: bool) -> _Frames:
    what = "ground truth" if is_gt else "predictions"
    parts: dict[str, list] = {k: [] for k in ("frame", "names", "bbox", "boxes", "alpha", "score", "trunc", "occ")}
    for i, anno in enumerate(annos):
        names = np.char.lower(anno_field(anno, NAME_KEYS, i, what).astype(str).reshape(-1))
        m = len(names)
        bbox = anno_field(anno, ("bbox",), i, what, np.float64).reshape(-1, 4) if m else np.zeros((0, 4))
        boxes = boxes7(anno_field(anno, BOX_KEYS, i, what, default=np.zeros((0, 7))), i, what)
        real = names != DONTCARE
        if len(boxes) != m:
            # OpenPCDet-style infos store LiDAR boxes for the non-DontCare objects only.
            if len(boxes) == int(real.sum()):
                full = np.zeros((m, 7))
                full[real] = boxes
                boxes = full
            elif real.any():
                raise ValueError(
                    f"{what} of frame {i}: {len(boxes)} LiDAR boxes for {m} names "
                    f"({int(real.sum())} not DontCare); give one box per name or per non-DontCare name"
                )
            else:
                boxes = np.zeros((m, 7))
        alpha = anno.get("alpha")
        alpha = alpha_from_lidar_box(boxes) if alpha is None else np.asarray(alpha, np.float64).reshape(-1)
        arrays = {"names": names, "bbox": bbox, "boxes_lidar": boxes, "alpha": alpha}
        if is_gt:
            trunc = anno_field(anno, ("truncated",), i, what, np.float64).reshape(-1)
            occ = anno_field(anno, ("occluded",), i, what, np.float64).reshape(-1).astype(np.int64)
            score = np.zeros(m)
            arrays.update(truncated=trunc, occluded=occ)
        else:
            score = anno_field(anno, SCORE_KEYS, i, what, np.float64).reshape(-1)
            trunc, occ = np.zeros(m), np.zeros(m, np.int64)
            arrays.update(scores=score)
        check_lengths(arrays, i, what)
        parts["frame"].append(np.full(m, i, np.int64))
        parts["names"].append(names)
        parts["bbox"].append(bbox)
        parts["boxes"].append(boxes)
        parts["alpha"].append(alpha)
        parts["score"].append(score)
        parts["trunc"].append(trunc)
        parts["occ"].append(occ)

    def cat(key: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else empty

    return _Frames(
        frame=cat("frame", np.zeros(0, np.int64)),
        names=cat("names", np.zeros(0, "<U1")),
        bbox=cat("bbox", np.zeros((0, 4))),
        boxes=cat("boxes", np.zeros((0, 7))),
        alpha=cat("alpha", np.zeros(0)),
        score=cat("score", np.zeros(0)),
        truncated=cat("trunc", np.zeros(0)),
        occluded=cat("occ", np.zeros(0, np.int64)),
    )


def image_box_overlap(a: np.ndarray, b: np.ndarray, criterion: int = -1) -> np.ndarray:
    """(N, 4), (M, 4) image boxes x1 y1 x2 y2 -> (N, M) overlap.

    criterion -1: IoU; 0: intersection / area of ``a`` (the devkit's DontCare test).
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    if criterion == 0:
        denom = np.broadcast_to(area_a[:, None], inter.shape)
    else:
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        denom = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, denom, out=out, where=(inter > 0) & (denom > 0))
    return out


@dataclass
class _Pairs:
    """Sparse overlaps between the class's detections and relevant ground truths."""

    dt: np.ndarray  # (P,) index into the class's detections
    gt: np.ndarray  # (P,) index into the class's relevant ground truths
    ov: np.ndarray  # (P,) overlap > 0


def _class_pairs(metric: str, dt: _Frames, gt: _Frames, dt_idx: np.ndarray, gt_idx: np.ndarray) -> _Pairs:
    """Overlaps of every (detection, ground truth) pair of the same frame with overlap > 0."""
    if metric == "bbox":
        d, g = same_frame_pairs(dt.frame[dt_idx], gt.frame[gt_idx])
        ov = _aligned_image_iou(dt.bbox[dt_idx[d]], gt.bbox[gt_idx[g]])
        keep = ov > 0
        return _Pairs(d[keep], g[keep], ov[keep])
    d, g, ov = frame_pair_overlaps(
        dt.frame[dt_idx], dt.boxes[dt_idx], gt.frame[gt_idx], gt.boxes[gt_idx], metric
    )
    return _Pairs(d, g, ov)


def _aligned_image_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4), (P, 4) image boxes -> (P,) IoU of a[i] with b[i]."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    out = np.zeros(len(a))
    np.divide(inter, union, out=out, where=(inter > 0) & (union > 0))
    return out


def _group_rank(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For frame-sorted ids: (unique frames, slot of each element, rank within its frame)."""
    frames, first, slot = np.unique(frame, return_index=True, return_inverse=True)
    return frames, slot, np.arange(len(frame)) - first[slot]


@dataclass
class _MatchResult:
    tp: np.ndarray  # (T,)
    fp: np.ndarray  # (T,)
    fn: np.ndarray  # (T,)
    similarity: np.ndarray  # (T,) sum over TPs of (1 + cos(d_alpha)) / 2
    tp_scores: np.ndarray  # scores of the TPs (threshold-free pass only)


def _match(
    pairs: _Pairs,
    min_overlap: float,
    gt_flag: np.ndarray,
    gt_frame: np.ndarray,
    gt_alpha: np.ndarray,
    dt_flag: np.ndarray,
    dt_frame: np.ndarray,
    dt_score: np.ndarray,
    dt_alpha: np.ndarray,
    dt_dontcare: np.ndarray,
    thresholds: np.ndarray | None,
    chunk: int = 512,
) -> _MatchResult:
    """The devkit's per-frame greedy assignment, for every threshold at once.

    gt_flag: (Ng,) 0 = counts, 1 = ignored; dt_flag: (Nd,) 0 = counts, 1 = ignored (too small),
    -1 = takes no part (another class's detection that is tall enough at this difficulty).
    dt_dontcare: (Nd,) bool, inside a DontCare region (only set for the bbox metric).
    thresholds None: the threshold-free pass that collects TP scores (each ground truth takes the
    highest-scoring overlapping detection); else (T,) thresholds, each ground truth takes the
    most-overlapping non-ignored detection scoring >= threshold (else an ignored one).
    """
    fp_mode = thresholds is not None
    thr = np.asarray(thresholds, np.float64) if fp_mode else np.array([-np.inf])
    n_t = len(thr)
    tp = np.zeros(n_t, np.int64)
    fn = np.zeros(n_t, np.int64)
    sim = np.zeros(n_t)
    tp_scores: list[np.ndarray] = []

    # Only pairs above the IoU threshold can ever be assigned. Ground truths without such a pair
    # are never matched (FN when they count); detections without one are never assigned (their
    # FP status depends on the threshold only). Neither changes the order-dependent matching of
    # the others, so the vectorised loop only sees the candidates.
    strong = pairs.ov > min_overlap
    p_dt, p_gt, p_ov = pairs.dt[strong], pairs.gt[strong], pairs.ov[strong]
    cand_dt = np.unique(p_dt)
    cand_gt = np.unique(p_gt)
    is_cand_gt = np.zeros(len(gt_flag), bool)
    is_cand_gt[cand_gt] = True
    fn += int(((gt_flag == 0) & ~is_cand_gt).sum())
    is_cand_dt = np.zeros(len(dt_flag), bool)
    is_cand_dt[cand_dt] = True

    unassigned_fp_dt = np.zeros(n_t, np.int64)
    if fp_mode:
        # Non-candidate detections: FP whenever above threshold, counted and not in DontCare.
        counted = ~is_cand_dt & (dt_flag == 0) & ~dt_dontcare
        s = np.sort(dt_score[counted])
        unassigned_fp_dt += len(s) - np.searchsorted(s, thr, side="left")

    if len(cand_dt):
        frames, dt_slot, dt_rank = _group_rank(dt_frame[cand_dt])
        gt_slot = np.searchsorted(frames, gt_frame[cand_gt])
        gt_rank = np.arange(len(cand_gt)) - np.searchsorted(gt_frame[cand_gt], frames)[gt_slot]
        dt_pos = np.searchsorted(cand_dt, p_dt)
        gt_pos = np.searchsorted(cand_gt, p_gt)
        n_frames = len(frames)
        for lo in range(0, n_frames, chunk):
            hi = min(lo + chunk, n_frames)
            d_sel = (dt_slot >= lo) & (dt_slot < hi)
            g_sel = (gt_slot >= lo) & (gt_slot < hi)
            p_sel = d_sel[dt_pos]
            n_f = hi - lo
            n_g = int(gt_rank[g_sel].max()) + 1
            n_d = int(dt_rank[d_sel].max()) + 1
            ov = np.zeros((n_f, n_g, n_d))
            ov[dt_slot[dt_pos[p_sel]] - lo, gt_rank[gt_pos[p_sel]], dt_rank[dt_pos[p_sel]]] = p_ov[p_sel]
            gflag = np.full((n_f, n_g), -1, np.int8)
            gflag[gt_slot[g_sel] - lo, gt_rank[g_sel]] = gt_flag[cand_gt[g_sel]]
            galpha = np.zeros((n_f, n_g))
            galpha[gt_slot[g_sel] - lo, gt_rank[g_sel]] = gt_alpha[cand_gt[g_sel]]
            dflag = np.full((n_f, n_d), -1, np.int8)
            dflag[dt_slot[d_sel] - lo, dt_rank[d_sel]] = dt_flag[cand_dt[d_sel]]
            score = np.full((n_f, n_d), -np.inf)
            score[dt_slot[d_sel] - lo, dt_rank[d_sel]] = dt_score[cand_dt[d_sel]]
            dalpha = np.zeros((n_f, n_d))
            dalpha[dt_slot[d_sel] - lo, dt_rank[d_sel]] = dt_alpha[cand_dt[d_sel]]
            ddc = np.zeros((n_f, n_d), bool)
            ddc[dt_slot[d_sel] - lo, dt_rank[d_sel]] = dt_dontcare[cand_dt[d_sel]]

            present = dflag >= 0
            above = present[None] & (score[None] >= thr[:, None, None])  # (T, F, D)
            assigned = np.zeros((n_t, n_f, n_d), bool)
            rows_t = np.arange(n_t)[:, None]
            rows_f = np.arange(n_f)[None, :]
            for g in range(n_g):
                flag = gflag[:, g]  # (F,)
                if not (flag >= 0).any():
                    continue
                ov_g = ov[:, g, :]  # (F, D)
                avail = above & ~assigned & (ov_g > min_overlap)[None]
                if fp_mode:
                    a0 = avail & (dflag == 0)[None]
                    a1 = avail & (dflag == 1)[None]
                    has0 = a0.any(-1)
                    chosen = np.where(has0, np.where(a0, ov_g[None], -1.0).argmax(-1), a1.argmax(-1))
                    matched = has0 | a1.any(-1)
                else:
                    matched = avail.any(-1)
                    chosen = np.where(avail, score[None], -np.inf).argmax(-1)
                active = (flag >= 0)[None]
                counts = (flag == 0)[None]
                chosen_flag = dflag[rows_f, chosen]  # (T, F)
                fn += (~matched & counts & active).sum(-1)
                is_tp = matched & counts & (chosen_flag == 0)
                tp += is_tp.sum(-1)
                take = matched & active
                assigned[rows_t, rows_f, chosen] |= take
                if fp_mode:
                    delta = galpha[:, g][None] - dalpha[rows_f, chosen]
                    sim += np.where(is_tp, (1.0 + np.cos(delta)) / 2.0, 0.0).sum(-1)
                else:
                    tp_scores.append(score[rows_f, chosen][is_tp])
            if fp_mode:
                free = above & ~assigned & (dflag == 0)[None] & ~ddc[None]
                unassigned_fp_dt += free.sum((1, 2))
    scores = np.concatenate(tp_scores) if tp_scores else np.zeros(0)
    return _MatchResult(tp, unassigned_fp_dt, fn, sim, scores)


def recall_thresholds(tp_scores: np.ndarray, num_gt: int, num_sample_pts: int = N_SAMPLE_PTS) -> np.ndarray:
    """Score thresholds at which recall crosses the sampling positions 0, 1/40, ..., 1.

    The devkit's rule: walk the TP scores from high to low and keep a score when its recall is
    at least as close to the next sampling position as the following score's recall.
    """
    scores = np.sort(np.asarray(tp_scores, np.float64))[::-1]
    thresholds: list[float] = []
    current = 0.0
    n = len(scores)
    for i, s in enumerate(scores):  # one pass over the TPs; the rule is sequential
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt if i < n - 1 else left
        if (right - current) < (current - left) and i < n - 1:
            continue
        thresholds.append(float(s))
        current += 1.0 / (num_sample_pts - 1.0)
    return np.asarray(thresholds, np.float64)


def average_precision(precision: np.ndarray, recall_points: int) -> float:
    """AP in percent from the 41 interpolated precisions: R40 (1/40..1) or R11 (0, 0.1, ..., 1)."""
    if recall_points == 40:
        return float(precision[1:].sum() / 40 * 100)
    if recall_points == 11:
        return float(precision[::4].sum() / 11 * 100)
    raise ValueError(f"recall_points must be 40 or 11, got {recall_points}")


def _interpolated(values: np.ndarray, n: int) -> np.ndarray:
    """41 slots: values at the thresholds, then max over the later ones (devkit interpolation)."""
    out = np.zeros(N_SAMPLE_PTS)
    out[:n] = values[:n]
    return np.maximum.accumulate(out[::-1])[::-1]


def _gt_flags(gt: _Frames, idx: np.ndarray, cls: str, difficulty: int) -> np.ndarray:
    """0 = counts at this difficulty, 1 = ignored (neighbour class, too small/occluded/truncated)."""
    height = gt.bbox[idx, 3] - gt.bbox[idx, 1]
    hard_to_see = (
        (gt.occluded[idx] > MAX_OCCLUSION[difficulty])
        | (gt.truncated[idx] > MAX_TRUNCATION[difficulty])
        | (height <= MIN_HEIGHT[difficulty])
    )
    same = gt.names[idx] == cls
    return np.where(same & ~hard_to_see, 0, 1).astype(np.int8)


def _dt_flags(dt: _Frames, idx: np.ndarray, cls: str, difficulty: int) -> np.ndarray:
    """0 = counts, 1 = ignored (2D box too low, any class), -1 = not part of this class's matching."""
    height = np.abs(dt.bbox[idx, 3] - dt.bbox[idx, 1])
    same = dt.names[idx] == cls
    return np.where(height < MIN_HEIGHT[difficulty], 1, np.where(same, 0, -1)).astype(np.int8)


def _dontcare_overlap(dt: _Frames, gt: _Frames, dt_idx: np.ndarray) -> np.ndarray:
    """(len(dt_idx),) largest intersection/detection-area with a DontCare box of the same frame."""
    out = np.zeros(len(dt_idx))
    dc = np.flatnonzero(gt.names == DONTCARE)
    if len(dc) == 0 or len(dt_idx) == 0:
        return out
    for f in np.intersect1d(gt.frame[dc], dt.frame[dt_idx]):
        d = np.flatnonzero(dt.frame[dt_idx] == f)
        boxes_dc = gt.bbox[dc[gt.frame[dc] == f]]
        out[d] = image_box_overlap(dt.bbox[dt_idx[d]], boxes_dc, criterion=0).max(axis=1)
    return out


def _class_overlaps(classes: Sequence[str], min_overlaps: Mapping[str, float] | None) -> dict[str, float]:
    """IoU threshold per lower-case class name: the devkit's, overridden by ``min_overlaps``; every class of
    ``classes`` must have one."""
    overlaps = dict(MIN_OVERLAP)
    overlaps.update({k.lower(): float(v) for k, v in (min_overlaps or {}).items()})
    missing = [c for c in classes if c.lower() not in overlaps]
    if missing:
        raise ValueError(f"no IoU threshold for class(es) {missing}: pass min_overlaps={{name: iou}}")
    return overlaps


def _class_indices(gt: _Frames, dt: _Frames, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The ground truths and detections that take part in class ``key``'s matching: its own and its neighbour
    classes' ground truths; its detections plus those of other classes that are too low for some difficulty
    (they take part as ignored detections there; see the module docstring)."""
    relevant = (key,) + NEIGHBOUR_CLASSES.get(key, ())
    gt_idx = np.flatnonzero(np.isin(gt.names, relevant))
    dt_height = np.abs(dt.bbox[:, 3] - dt.bbox[:, 1])
    dt_idx = np.flatnonzero((dt.names == key) | (dt_height < max(MIN_HEIGHT)))
    return gt_idx, dt_idx


def _match_inputs(gt: _Frames, dt: _Frames, gt_idx: np.ndarray, dt_idx: np.ndarray, key: str, difficulty: int,
                  pairs: _Pairs, min_overlap: float, dontcare: np.ndarray) -> dict:
    """The keyword arguments of ``_match`` (all but ``thresholds``) for one class and difficulty."""
    return dict(
        pairs=pairs, min_overlap=min_overlap,
        gt_flag=_gt_flags(gt, gt_idx, key, difficulty), gt_frame=gt.frame[gt_idx], gt_alpha=gt.alpha[gt_idx],
        dt_flag=_dt_flags(dt, dt_idx, key, difficulty), dt_frame=dt.frame[dt_idx], dt_score=dt.score[dt_idx],
        dt_alpha=dt.alpha[dt_idx], dt_dontcare=dontcare,
    )


def kitti_counts(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    thresholds: Sequence[float],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    metric: str = "bev",
    difficulty: str = "moderate",
    min_overlaps: Mapping[str, float] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """True positives, false positives and misses per class at each score threshold, by the devkit's matching.

    The counts behind a point of the precision-recall curve: a detection scoring at least the threshold that
    matches a valid ground truth of the class (IoU above the class's, ``metric`` "bbox", "bev" or "3d") is a TP,
    one matching nothing (and not in a DontCare region, for "bbox") an FP; a valid ground truth left unmatched is
    an FN. Ignored ground truths and detections (``difficulty``'s rules, neighbour classes) count for nothing.
    Returns {class: {"tp", "fp", "fn": (T,) int arrays}}.
    """
    check_frames(gt_annos, dt_annos)
    if metric not in ("bbox", "bev", "3d"):
        raise ValueError(f"counts are measured on the bbox, bev or 3d matches, not {metric!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    overlaps = _class_overlaps(classes, min_overlaps)
    grid = np.asarray(thresholds, np.float64).reshape(-1)
    gt = _load(gt_annos, is_gt=True)
    dt = _load(dt_annos, is_gt=False)
    out: dict[str, dict[str, np.ndarray]] = {}
    for cls in classes:
        key = cls.lower()
        gt_idx, dt_idx = _class_indices(gt, dt, key)
        dontcare = (_dontcare_overlap(dt, gt, dt_idx) > overlaps[key]) if metric == "bbox" \
            else np.zeros(len(dt_idx), bool)
        pairs = _class_pairs(metric, dt, gt, dt_idx, gt_idx)
        stats = _match(thresholds=grid, **_match_inputs(gt, dt, gt_idx, dt_idx, key, DIFFICULTIES.index(difficulty),
                                                        pairs, overlaps[key], dontcare))
        out[cls] = {"tp": stats.tp.astype(np.int64), "fp": stats.fp.astype(np.int64),
                    "fn": stats.fn.astype(np.int64)}
    return out


def kitti_eval(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    metrics: Sequence[str] = ("bev", "3d"),
    recall_points: int = 40,
    min_overlaps: Mapping[str, float] | None = None,
) -> dict:
    """KITTI AP per class x metric x difficulty (see the module docstring for the rules).

    gt_annos, dt_annos: one dict per frame, same order (module docstring lists the keys).
    metrics: any of "bbox", "bev", "3d", "aos" ("aos" is measured on the 2D matches).
    recall_points: 40 (R40, default) or 11 (R11) for ``summary`` and ``table``; both are in ``ap``.
    min_overlaps: IoU threshold per class name, overriding Car 0.7 / Pedestrian 0.5 / Cyclist 0.5.

    Returns a JSON-ready dict:
      ap[class][metric][difficulty] = {"R40": %, "R11": %}  (0.0 without valid ground truth, as the devkit)
      precision[class][metric][difficulty] = 41 interpolated precisions (the PR curve)
      num_gt[class][difficulty] = valid ground truths; min_overlap[class]
      summary["Car/3d/moderate"] = AP at ``recall_points``; table = printable text.
    """
    n_frames = check_frames(gt_annos, dt_annos)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown KITTI metric(s) {unknown}; choose from {METRICS}")
    if recall_points not in (11, 40):
        raise ValueError(f"recall_points must be 40 (R40) or 11 (R11), got {recall_points}")
    overlaps = _class_overlaps(classes, min_overlaps)

    gt = _load(gt_annos, is_gt=True)
    dt = _load(dt_annos, is_gt=False)
    match_metrics = [m for m in ("bbox", "bev", "3d") if m in metrics or (m == "bbox" and "aos" in metrics)]

    result: dict[str, Any] = {
        "benchmark": "kitti",
        "recall_points": recall_points,
        "num_frames": n_frames,
        "metrics": list(metrics),
        "min_overlap": {},
        "num_gt": {},
        "ap": {},
        "precision": {},
        "summary": {},
    }
    for cls in classes:
        key = cls.lower()
        min_ov = overlaps[key]
        gt_idx, dt_idx = _class_indices(gt, dt, key)
        result["min_overlap"][cls] = min_ov
        result["num_gt"][cls] = {}
        result["ap"][cls] = {m: {} for m in metrics}
        result["precision"][cls] = {m: {} for m in metrics}
        dc_overlap = _dontcare_overlap(dt, gt, dt_idx)
        for metric in match_metrics:
            pairs = _class_pairs(metric, dt, gt, dt_idx, gt_idx)
            dontcare = (dc_overlap > min_ov) if metric == "bbox" else np.zeros(len(dt_idx), bool)
            for d, diff in enumerate(DIFFICULTIES):
                common = _match_inputs(gt, dt, gt_idx, dt_idx, key, d, pairs, min_ov, dontcare)
                num_gt = int((common["gt_flag"] == 0).sum())
                result["num_gt"][cls][diff] = num_gt
                first = _match(thresholds=None, **common)
                thresholds = recall_thresholds(first.tp_scores, num_gt) if num_gt else np.zeros(0)
                stats = _match(thresholds=thresholds, **common)
                denom = stats.tp + stats.fp
                prec = np.zeros(len(thresholds))
                aos = np.zeros(len(thresholds))
                np.divide(stats.tp, denom, out=prec, where=denom > 0)
                np.divide(stats.similarity, denom, out=aos, where=denom > 0)
                curves = {metric: _interpolated(prec, len(thresholds))}
                if metric == "bbox" and "aos" in metrics:
                    curves["aos"] = _interpolated(aos, len(thresholds))
                for name, curve in curves.items():
                    if name not in metrics:
                        continue
                    # Without valid ground truth the curve is all zeros: AP 0.00, as the devkit prints.
                    ap = {"R40": average_precision(curve, 40), "R11": average_precision(curve, 11)}
                    result["ap"][cls][name][diff] = ap
                    result["precision"][cls][name][diff] = curve
                    result["summary"][f"{cls}/{name}/{diff}"] = ap[f"R{recall_points}"]
    result["table"] = kitti_table(result)
    return result


def small_set_repeats(num_gt: Mapping[str, Mapping[str, int]]) -> int:
    """How often to repeat the frames so that every class/difficulty with valid ground truth holds at least
    N_SAMPLE_PTS of them (1 when none is short); ``num_gt`` as in kitti_eval's result."""
    counts = [n for per in num_gt.values() for n in per.values() if n > 0]
    return max(1, math.ceil(N_SAMPLE_PTS / min(counts))) if counts else 1


def kitti_eval_uncapped(gt_annos: Sequence[Mapping[str, Any]], dt_annos: Sequence[Mapping[str, Any]],
                        num_gt: Mapping[str, Mapping[str, int]] | None = None, **kwargs: Any) -> dict:
    """kitti_eval on the frames repeated ``small_set_repeats`` times (see the module docstring): the AP a
    large set with these frames' precision-recall curve would score, free of the small-set cap. The result
    is kitti_eval's plus ``repeats`` (1: no class was short, the figures are the official ones) and a table
    titled accordingly. ``num_gt``: the official result's valid ground-truth counts of the same frames and
    classes, when the caller has them (else they are counted here, one more pass)."""
    check_frames(gt_annos, dt_annos)
    if num_gt is None:
        num_gt = kitti_eval(gt_annos, dt_annos, **{**kwargs, "metrics": ("bev",)})["num_gt"]
    repeats = small_set_repeats(num_gt)
    result = kitti_eval(list(gt_annos) * repeats, list(dt_annos) * repeats, **kwargs)
    result["repeats"] = repeats
    result["num_frames"] = len(gt_annos)
    result["table"] = kitti_table(result)
    return result


def kitti_table(result: Mapping[str, Any]) -> str:
    """Class x metric rows, easy/moderate/hard columns, at the result's recall_points."""
    rp = result["recall_points"]
    rows = []
    for cls, per_metric in result["ap"].items():
        for metric, per_diff in per_metric.items():
            rows.append(
                [f"{cls} @{result['min_overlap'][cls]:.2f}", metric]
                + [fmt(per_diff.get(d, {}).get(f"R{rp}")) for d in DIFFICULTIES]
                + ["/".join(str(result["num_gt"][cls].get(d, 0)) for d in DIFFICULTIES)]
            )
    return format_table(
        ["class @IoU", "metric", "easy", "moderate", "hard", "gt e/m/h"],
        rows,
        title=f"KITTI AP R{rp} ({result['num_frames']} frames)" if result.get("repeats", 1) == 1 else
        f"KITTI AP R{rp} without the small-set cap ({result['num_frames']} frames, each counted "
        f"{result['repeats']} times; gt counts as repeated)",
    )
