"""Evaluation during training: run the model over the validation split and score it with the benchmark's metric.

KITTI layouts get KITTI AP R40 (3D and BEV, easy/moderate/hard; predictions get their 2D boxes by projecting
the LiDAR boxes with the frame's calib, as the metric's 2D-height and DontCare rules need); Waymo layouts get
mAP/mAPH at LEVEL_1/LEVEL_2; nuScenes layouts the devkit's own detection evaluation (mAP, NDS, TP errors) on the
whole validation split, which reads the ground truth from the dataset's tables (so, unlike the other two, it
scores every object the leaderboard scores, whatever the model's range). All get recall at IoU 0.3/0.5/0.7. The
metrics are eval/kitti.py, eval/waymo.py, eval/nuscenes.py and eval/recall.py, and the per-frame dicts come from
eval/annotations.py, as sparsekd-eval's, so a training run and ``sparsekd-eval --checkpoint OUT/final.pth`` score
the same way; this module runs the in-memory model.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..eval.annotations import gt_annos_for, predictions_from_detections
from ..data.dataset import DetectionDataset, collate_samples
from ..models.detector import BEVDetector
from .batches import split_points
from .precision import autocast

Metric = Literal["kitti", "waymo", "nuscenes"]


@torch.no_grad()
def predict_dataset(model: BEVDetector, dataset: DetectionDataset, metric: Metric, batch_size: int = 2,
                    workers: int = 0, device: torch.device | None = None, progress: bool = True,
                    amp: bool = False) -> tuple[list[dict], list[dict]]:
    """(ground-truth annos, prediction annos), one dict per frame of ``dataset`` in order. Objects centred
    outside the model's point_cloud_range are DontCare (eval/annotations.gt_annos_for): a model is scored on
    what it sees.

    The model is put in eval mode for the pass and returned to its previous mode afterwards.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    class_names = tuple(model.cfg.class_names)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_samples)
    gt_annos, dt_annos = [], []
    index = 0
    try:
        for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False):
            points = split_points(batch.points.to(device), batch.batch_size)
            # fp16 on CUDA as in training; on the CPU in fp32, as the Detector runs there
            with autocast(device.type, torch.float16 if amp and device.type == "cuda" else None):
                out = model(points)
            preds = model.predict(out)
            for p in preds:
                info = dataset.infos[index]
                index += 1
                names = [class_names[int(i)] for i in p.labels.cpu().numpy()]
                gt_annos.append(gt_annos_for(info, metric, model.cfg.voxelization.point_cloud_range))
                velocities = None if p.velocities is None else p.velocities.float().cpu().numpy()
                dt_annos.append(predictions_from_detections(info, p.boxes.float().cpu().numpy(),
                                                            p.scores.float().cpu().numpy(), names, velocities))
    finally:
        model.train(was_training)
    return gt_annos, dt_annos


def headline(result: dict[str, Any], metric: Metric, class_names: list[str]) -> dict[str, float]:
    """The few numbers worth a TensorBoard curve: KITTI 3D/BEV moderate AP R40 per class and their mean;
    Waymo LEVEL_2 mAP/mAPH (and per-class LEVEL_2 APH); nuScenes mAP, NDS and the five TP errors."""
    out: dict[str, float] = {}
    if metric == "nuscenes":
        return {k: float(result[k]) for k in ("mAP", "NDS")} | {k: float(v) for k, v in result["tp_errors"].items()}
    if metric == "kitti":
        for m in ("3d", "bev"):
            vals = []
            for c in class_names:
                v = result["summary"].get(f"{c}/{m}/moderate")
                if v is not None:
                    out[f"{c}/{m}/moderate"] = float(v)
                    # A class without moderate ground truth prints the devkit's 0.00; the mean leaves it out.
                    if result["num_gt"].get(c, {}).get("moderate", 0) > 0:
                        vals.append(float(v))
            out[f"mean/{m}/moderate"] = float(np.mean(vals)) if vals else float("nan")
        if "waymo" in result:
            out.update(headline(result["waymo"], "waymo", class_names))
    else:
        for k, v in result["summary"].items():
            if k.startswith("LEVEL_2/") or k.endswith("/LEVEL_2/APH"):
                out[k] = float(v)
    return out


def evaluate(model: BEVDetector, dataset: DetectionDataset, metric: Metric, batch_size: int = 2,
             workers: int = 0, progress: bool = True, amp: bool = False, split: str = "val") -> dict[str, Any]:
    """Predict over ``dataset`` and score: {"metric", "num_frames", "headline", "result" (the metric's dict),
    "recall" (recall_eval's dict), "table" (printable)}. ``split``: the split ``dataset`` holds (the nuScenes
    devkit scores named splits, and all of one)."""
    from ..eval.recall import recall_eval
    from ..eval.waymo import waymo_eval

    gt, dt = predict_dataset(model, dataset, metric, batch_size, workers, progress=progress, amp=amp)
    classes = list(model.cfg.class_names)
    if metric == "kitti":
        from ..eval.kitti import kitti_eval

        result = kitti_eval(gt, dt, classes=classes, metrics=("bev", "3d"))
        # The Waymo metric on the same predictions (LEVEL_2 from point counts), so runs on KITTI-format data
        # report both benchmarks' numbers.
        result["waymo"] = waymo_eval(gt, dt, classes=classes)
    elif metric == "nuscenes":
        from ..data.nuscenes_infos import dataset_version, load_nuscenes
        from ..eval.nuscenes import nuscenes_eval

        nusc = load_nuscenes(dataset.root, dataset_version(dataset.root, dataset.infos))
        result = nuscenes_eval(nusc, dataset.infos, dt, split)
    else:
        result = waymo_eval(gt, dt, classes=classes)
    recall = recall_eval(gt, dt, classes=classes)
    tables = [result["table"]] + ([result["waymo"]["table"]] if "waymo" in result else []) + [recall["table"]]
    return {"metric": metric, "num_frames": len(gt), "headline": headline(result, metric, classes),
            "result": result, "recall": recall, "table": "\n".join(tables)}
