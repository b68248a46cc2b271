"""The nuScenes detection metric, computed by the official devkit: mAP, the TP errors and NDS.

The devkit's ``DetectionEval`` (``detection_cvpr_2019`` config) does all the scoring: centre-distance matching
at 0.5 / 1 / 2 / 4 m, AP over recall 0.1..1 with precision above 0.1, the five TP errors (translation, scale,
orientation, velocity, attribute) at 2 m, per class and their means over the 10 classes, and
NDS = (5 mAP + sum over the five of (1 - min(1, error))) / 10. It reads the ground truth from the dataset's own
tables and filters it (and the predictions) by class range and by points, as for the leaderboard.

What this module adds is the submission the devkit reads: each prediction, a box (and velocity) in the key
frame's LiDAR frame, goes to the global frame through the sensor calibration and the ego pose (the devkit's
``Box.rotate``/``translate``), with the usual attribute guess of LiDAR detectors (the one CenterPoint's and
mmdetection3d's submissions use): a vehicle moving faster than 0.2 m/s is ``vehicle.moving``, a bicycle or
motorcycle that fast ``cycle.with_rider``, a slower pedestrian ``pedestrian.standing`` and a slower bus
``vehicle.stopped``; otherwise the class default (car/truck/trailer/construction vehicle parked, bus moving,
pedestrian moving, two-wheelers without rider, none for barriers and cones).

The devkit scores whole splits: predictions must cover every key frame of the split (empty where nothing
was found).

Inputs: one prediction dict per frame, in the order of the frames' infos: names (M,), boxes_lidar (M, 7),
scores (M,), velocity (M, 2) optional (LiDAR frame, m/s; zeros when the model has none).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sparsekd_core.data import nuscenes_format as nf
from sparsekd_core.data.infos import FrameInfo
from sparsekd_core.eval.report import (
    BOX_KEYS, NAME_KEYS, SCORE_KEYS, anno_field, boxes7, check_frames, fmt, format_table,
)

MOVING_SPEED = 0.2  # m/s
DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "truck": "vehicle.parked", "trailer": "vehicle.parked",
                     "construction_vehicle": "vehicle.parked", "bus": "vehicle.moving",
                     "pedestrian": "pedestrian.moving", "motorcycle": "cycle.without_rider",
                     "bicycle": "cycle.without_rider", "barrier": "", "traffic_cone": ""}
VEHICLES = ("car", "construction_vehicle", "bus", "truck", "trailer")
TWO_WHEELERS = ("bicycle", "motorcycle")
TP_METRICS = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}


def attribute_for(name: str, velocity: Sequence[float]) -> str:
    """The attribute a submission gives a box of class ``name`` moving at ``velocity`` (module docstring)."""
    if np.hypot(velocity[0], velocity[1]) > MOVING_SPEED:
        if name in VEHICLES:
            return "vehicle.moving"
        if name in TWO_WHEELERS:
            return "cycle.with_rider"
    else:
        if name == "pedestrian":
            return "pedestrian.standing"
        if name == "bus":
            return "vehicle.stopped"
    return DEFAULT_ATTRIBUTE[name]


def submission(nusc, infos: Sequence[FrameInfo], predictions: Sequence[Mapping[str, Any]]) -> dict:
    """The devkit's result format (meta + one list of global-frame boxes per sample token)."""
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    check_frames(infos, predictions)
    results: dict[str, list[dict]] = {}
    for i, (info, pred) in enumerate(zip(infos, predictions)):
        names = anno_field(pred, NAME_KEYS, i, "predictions").astype(str).reshape(-1)
        boxes = boxes7(anno_field(pred, BOX_KEYS, i, "predictions", default=np.zeros((0, 7))), i, "predictions")
        scores = anno_field(pred, SCORE_KEYS, i, "predictions", np.float64).reshape(-1)
        velocity = anno_field(pred, ("velocity", "velocities"), i, "predictions", np.float64,
                              default=np.zeros((len(names), 2))).reshape(-1, 2)
        if not len(names) == len(boxes) == len(scores) == len(velocity):
            raise ValueError(f"predictions of frame {i}: names, boxes, scores and velocity disagree in length "
                             f"({len(names)}, {len(boxes)}, {len(scores)}, {len(velocity)})")
        sample = nusc.get("sample", info.frame_id)
        key_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        sensor = nusc.get("calibrated_sensor", key_sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", key_sd["ego_pose_token"])
        out = []
        for name, box7, score, vel in zip(names, boxes, scores, velocity):
            if name not in nf.NUSCENES_CLASSES:
                continue  # the devkit accepts the 10 detection classes only
            x, y, z, dx, dy, dz, yaw = box7
            box = Box([x, y, z], [dy, dx, dz], Quaternion(axis=[0, 0, 1], radians=yaw), velocity=(vel[0], vel[1], 0.0))
            box.rotate(Quaternion(sensor["rotation"]))
            box.translate(np.array(sensor["translation"]))
            box.rotate(Quaternion(pose["rotation"]))
            box.translate(np.array(pose["translation"]))
            out.append({"sample_token": info.frame_id, "translation": box.center.tolist(), "size": box.wlh.tolist(),
                        "rotation": box.orientation.elements.tolist(), "velocity": box.velocity[:2].tolist(),
                        "detection_name": str(name), "detection_score": float(score),
                        "attribute_name": attribute_for(str(name), vel)})
        results[info.frame_id] = out
    return {"meta": {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                     "use_external": False}, "results": results}


def nuscenes_eval(nusc, infos: Sequence[FrameInfo], predictions: Sequence[Mapping[str, Any]], split: str,
                  output_dir: str | Path | None = None) -> dict:
    """Score ``predictions`` (one dict per info, module docstring) on ``split`` (ours: train / val) with the
    devkit. ``nusc`` is the devkit's NuScenes of the infos' version. output_dir: where the submission JSON and
    the devkit's metrics_summary.json go (default: a temporary folder).

    Returns a JSON-ready dict: mAP, NDS, tp_errors {mATE, mASE, mAOE, mAVE, mAAE}, per class
    {AP, AP@0.5/1.0/2.0/4.0, trans_err, ...}, summary, table.
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    eval_set = nf.split_name(nusc.version, split)
    with tempfile.TemporaryDirectory(prefix="sparsekd-nuscenes-") as tmp:
        out_dir = Path(output_dir) if output_dir is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        result_path = out_dir / "nuscenes_results.json"
        result_path.write_text(json.dumps(submission(nusc, infos, predictions)))
        wanted = {s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in _scenes(eval_set)}
        missing = wanted - {i.frame_id for i in infos}
        if missing:
            raise ValueError(f"the nuScenes evaluation scores whole splits: {len(missing)} of the {len(wanted)} key "
                             f"frames of {eval_set} have no predictions (evaluate every frame of the split)")
        evaluator = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(result_path), eval_set,
                                  str(out_dir), verbose=False)
        metrics, _ = evaluator.evaluate()
        summary = metrics.serialize()
        (out_dir / "metrics_summary.json").write_text(json.dumps(summary, indent=1))
    return _report(summary, len(infos))


def _scenes(eval_set: str) -> set[str]:
    from nuscenes.utils.splits import create_splits_scenes

    return set(create_splits_scenes()[eval_set])


def _report(summary: Mapping[str, Any], num_frames: int) -> dict:
    """The devkit's serialized metrics as this project reports them (fractions -> percent for AP and NDS)."""
    classes = {}
    for name in nf.NUSCENES_CLASSES:
        per = {"AP": 100 * summary["mean_dist_aps"][name]}
        per.update({f"AP@{float(d):.1f}": 100 * ap for d, ap in summary["label_aps"][name].items()})
        per.update(summary["label_tp_errors"][name])
        classes[name] = per
    result = {"benchmark": "nuscenes", "num_frames": num_frames, "mAP": 100 * summary["mean_ap"],
              "NDS": 100 * summary["nd_score"],
              "tp_errors": {TP_METRICS[k]: v for k, v in summary["tp_errors"].items()},
              "classes": classes, "devkit": dict(summary)}
    result["summary"] = {"mAP": result["mAP"], "NDS": result["NDS"], **result["tp_errors"],
                         **{f"{c}/AP": v["AP"] for c, v in classes.items()}}
    result["table"] = nuscenes_table(result)
    return result


def nuscenes_table(result: Mapping[str, Any]) -> str:
    header = ["class", "AP", "ATE", "ASE", "AOE", "AVE", "AAE"]
    rows = [[c, fmt(v["AP"])] + [fmt(v[k], 3) for k in TP_METRICS] for c, v in result["classes"].items()]
    rows.append(["mean", fmt(result["mAP"])] + [fmt(result["tp_errors"][m], 3) for m in TP_METRICS.values()])
    return format_table(header, rows, title=f"nuScenes detection (devkit), {result['num_frames']} frames: "
                                            f"mAP {result['mAP']:.2f}, NDS {result['NDS']:.2f}")
