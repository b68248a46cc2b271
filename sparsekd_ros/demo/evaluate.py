"""Offline detection over the demo's frames and the KITTI-style scores on the drive.

The AP is measured offline, on every frame of the drive, with sparsekd_core.inference: the same
checkpoint as the node, but no frame skipped and scores at full precision, so the number does not
depend on how busy the machine was. The node's own answers are compared with these (``agreement``):
the ROS path must give the boxes the library gives.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsekd_core.data.point_files import model_points, read_point_file
from sparsekd_core.detections import Detections

__all__ = ["detect_files", "DriveScores", "score_drive", "scores_table", "Agreement", "agreement"]

#: The KITTI metrics reported (the devkit's IoU thresholds: 0.7 car, 0.5 pedestrian and cyclist).
REPORTED = ("bev", "3d")


def detect_files(det: Any, paths: Sequence[Path], desc: str, progress: bool = True,
                 workers: int = 1) -> list[Detections]:
    """``det`` (a sparsekd_core.inference.Detector) on each point file, read as the ROS client reads it, in order.

    ``workers`` > 1 on the CPU: that many processes share the frames, each with a copy of ``det`` and its share of
    torch's threads. The voxel models' sparse convolutions run on one thread on the CPU (ops/spconv_compat.py), so
    one process leaves the other cores idle for most of a frame; two processes on two cores take about 0.6 of the
    time (cp_voxel_s, 12 demo frames: 16.2 s in one process, 9.8 s in two)."""
    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc=desc, unit="frame", disable=not progress, leave=False)
    try:
        if workers <= 1 or len(paths) < 8 * workers or det.device.type != "cpu":
            out = []
            for path in paths:
                out.append(_detect_file(det, path))
                bar.update(1)
            return out
        import multiprocessing as mp

        import torch

        threads = max(1, torch.get_num_threads() // workers)
        # Each worker gets its own copy of the detector, pickled to bytes here: multiprocessing would otherwise move
        # its tensors to shared memory, and workers sharing the buffers spconv's PointToVoxel reuses on every call
        # corrupted each other's frames (seen: frames with 0 boxes instead of 12). The copy leaves those buffers
        # behind (Voxelizer.__getstate__); each worker builds its own. spawn: a fork would copy torch's thread pools.
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                          initargs=(pickle.dumps(det), threads)) as pool:
            out = []
            for result in pool.imap(_detect_in_worker, paths, chunksize=2):
                out.append(result)
                bar.update(1)
            return out
    finally:
        bar.close()


def _detect_file(det: Any, path: Path) -> Detections:
    pf = read_point_file(path)
    points, _, _ = model_points(pf.points, pf.fields, det.point_features)
    return det(points)


_WORKER_DETECTOR: Any = None


def _init_worker(det_bytes: bytes, threads: int) -> None:
    global _WORKER_DETECTOR
    import torch

    torch.set_num_threads(threads)
    _WORKER_DETECTOR = pickle.loads(det_bytes)


def _detect_in_worker(path: Path) -> Detections:
    return _detect_file(_WORKER_DETECTOR, path)


@dataclass
class DriveScores:
    """KITTI AP R40 (moderate) per class for BEV and 3D, recall at IoU 0.5/0.7 (3D), ground-truth counts."""

    model: str
    ap: dict[str, dict[str, float]]  # class -> {"bev": AP, "3d": AP}
    recall: dict[str, dict[str, float]]  # class -> {"0.5": %, "0.7": %} on 3D boxes, all labelled objects
    num_gt: dict[str, int]
    frames: int
    raw: dict

    def to_dict(self) -> dict:
        return {"model": self.model, "frames": self.frames, "ap_r40_moderate": self.ap, "recall_3d": self.recall,
                "num_gt_moderate": self.num_gt}

    @classmethod
    def from_dict(cls, d: dict) -> "DriveScores":
        """The inverse of ``to_dict`` (scores recorded in a bundled checkpoint's meta; ``raw`` is not kept)."""
        return cls(str(d["model"]), d["ap_r40_moderate"], d["recall_3d"], d["num_gt_moderate"], int(d["frames"]), {})


def score_drive(infos: Sequence[Any], detections: Sequence[Detections], class_names: Sequence[str], model: str,
                point_cloud_range: Sequence[float] | None = None) -> DriveScores:
    """KITTI AP (R40, devkit rules) and recall of ``detections`` against the drive's labels; with
    ``point_cloud_range``, objects centred outside it are DontCare (scored on the area the model sees)."""
    from sparsekd_core.eval.annotations import gt_annos_for, predictions_from_detections
    from sparsekd_core.eval.kitti import kitti_eval
    from sparsekd_core.eval.recall import recall_eval

    if len(infos) != len(detections):
        raise ValueError(f"{len(detections)} detections for {len(infos)} frames")
    gt = [gt_annos_for(info, "kitti", point_cloud_range) for info in infos]
    dt = [predictions_from_detections(info, d.boxes, d.scores, d.names) for info, d in zip(infos, detections)]
    classes = tuple(class_names)
    kitti = kitti_eval(gt, dt, classes=classes, metrics=REPORTED)
    recall = recall_eval(gt, dt, classes=classes)
    ap = {c: {m: float(kitti["ap"][c][m]["moderate"]["R40"]) for m in REPORTED} for c in classes}
    # recall_eval: recall[class]["3d"]["0.5"] in percent over all labelled objects of the class
    rec = {c: {t: float(recall["recall"][c]["3d"][t]) for t in ("0.5", "0.7")} for c in classes}
    num_gt = {c: int(kitti["num_gt"][c]["moderate"]) for c in classes}
    return DriveScores(model, ap, rec, num_gt, len(infos), {"kitti": kitti, "recall": recall})


def scores_table(student: DriveScores, teacher: DriveScores | None, teacher_note: str = "") -> str:
    """Per class: valid ground truths (moderate), then AP R40 moderate BEV / 3D and 3D recall at IoU 0.5
    (percent) of the student and, when given, the teacher."""
    models = [("student", student)] + ([("teacher", teacher)] if teacher is not None else [])
    lines = ["KITTI AP R40 moderate (BEV, 3D; IoU 0.7 car, 0.5 pedestrian/cyclist) and 3D recall at IoU 0.5, "
             f"% on {student.frames} drive frames: " + ", ".join(f"{role} {m.model}" for role, m in models),
             f"{'class':<12}{'GT':>5}" + "".join(f" | {role + ' BEV':>11}{'3D':>6}{'R@0.5':>7}" for role, _ in models)]
    for c in student.ap:
        row = f"{c:<12}{student.num_gt[c]:>5}"
        for _, m in models:
            ap, rec = m.ap.get(c, {}), m.recall.get(c, {})
            row += f" | {_ap(ap.get('bev')):>11}{_ap(ap.get('3d')):>6}{_ap(rec.get('0.5')):>7}"
        lines.append(row)
    if teacher is None and teacher_note:
        lines.append(f"teacher: {teacher_note}")
    return "\n".join(lines)


def _ap(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.1f}"


@dataclass
class Agreement:
    """How the node's answers compare with the library's on the same frames."""

    frames: int
    same_count: int
    boxes_node: int
    boxes_matched: int
    max_centre_error_m: float

    @property
    def fraction(self) -> float:
        return self.boxes_matched / self.boxes_node if self.boxes_node else 1.0

    def line(self) -> str:
        return (f"node vs library on the {self.frames} answered frames: {self.boxes_matched}/{self.boxes_node} "
                f"boxes alike ({100 * self.fraction:.1f}%), same box count on {self.same_count} frames, "
                f"largest centre difference {self.max_centre_error_m * 100:.2f} cm")


def agreement(pairs: Sequence[tuple[Detections, Detections]], tol_m: float = 0.01, tol_score: float = 0.006
              ) -> Agreement:
    """Match each node box to an unused library box of the same class within ``tol_m`` (every parameter)
    and ``tol_score`` (the markers carry 2-decimal scores). Ties among random-weight scores may swap
    which boxes survive the top-k cut, so this is a share, not an equality."""
    frames = same = total = matched = 0
    worst = 0.0
    for node, lib in pairs:
        frames += 1
        same += int(len(node) == len(lib))
        total += len(node)
        used = np.zeros(len(lib), bool)
        for box, score, label in zip(node.boxes, node.scores, node.labels):
            diff = np.abs(lib.boxes - box)
            diff[:, 6] = np.abs((lib.boxes[:, 6] - box[6] + np.pi) % (2 * np.pi) - np.pi)
            ok = (~used) & (lib.labels == label) & (diff.max(axis=1) <= tol_m)
            if np.isfinite(score):
                ok &= np.abs(lib.scores - score) <= tol_score
            hit = np.flatnonzero(ok)
            if len(hit):
                used[hit[0]] = True
                matched += 1
                worst = max(worst, float(np.linalg.norm(lib.boxes[hit[0], :3] - box[:3])))
    return Agreement(frames, same, total, matched, worst)
