"""sparsekd-eval --metric nuscenes: the devkit's detection evaluation on the set nuscenes_minimal.py writes.

The val split (scene-0103, two key frames) holds, after the devkit's filters (class range, at least one
point): 4 cars (a moving and a parked one, twice), 2 pedestrians and 1 traffic cone; the dog is no detection
class and the 0-point car is never scored. The expected values follow from the devkit's rules:
- AP of a class: mean over the distance thresholds 0.5/1/2/4 m of the area above precision 0.1 over recall
  0.1..1, normalised by 0.9; every object found at precision 1 gives 1. A class without ground truth gets 0.
  mAP = the mean over all 10 classes: here (1 + 1 + 1) / 10 = 0.30.
- TP errors per class at 2 m, averaged over the matches; a class without ground truth gets 1; barrier and
  cone have no velocity or attribute error, the cone no orientation error (NaN, left out of the means).
  Right boxes: mATE = mASE = (0 + 0 + 0 + 7 x 1) / 10 = 0.7; mAOE = (0 + 0 + 7) / 9 (no cone);
  mAVE = mAAE = (0 + 0 + 6) / 8 (no cone, no barrier); the attribute guess must match the labels (moving /
  parked car, walking pedestrian) and the velocities must survive the trip to the global frame.
- NDS = (5 mAP + sum over the five TP metrics of 1 - min(1, error)) / 10.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from sparsekd_core.cli.data import main as data_main
from sparsekd_core.cli.eval import main as eval_main
from sparsekd_core.data.infos import load_split
from sparsekd_core.data.nuscenes_format import NUSCENES_CLASSES
from sparsekd_core.data.nuscenes_infos import dataset_version, load_nuscenes
from sparsekd_core.eval.annotations import predictions_from_gt
from sparsekd_core.eval.nuscenes import attribute_for, nuscenes_eval

import nuscenes_minimal as nm


@pytest.fixture(scope="module")
def val_set(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("nuscenes_eval")
    nm.write_minimal_nuscenes(root, shared_data)
    assert data_main(["nuscenes", "--root", str(root), "--version", "v1.0-mini", "--no-db", "--quiet"]) == 0
    return root, load_nuscenes(root, "v1.0-mini"), load_split(root, "nuscenes", "val")


def nds(m_ap: float, errors: list[float]) -> float:
    return (5 * m_ap + sum(1 - min(1.0, e) for e in errors)) / 10


def test_right_boxes_score_what_the_devkit_rules_give(val_set, tmp_path):
    root, nusc, infos = val_set
    preds = [predictions_from_gt(i, NUSCENES_CLASSES) for i in infos]
    for p in preds:
        p["scores"] = np.full(len(p["scores"]), 0.8)
    result = nuscenes_eval(nusc, infos, preds, "val", tmp_path)
    assert result["mAP"] == pytest.approx(30.0)
    errors = {"mATE": 0.7, "mASE": 0.7, "mAOE": 7 / 9, "mAVE": 0.75, "mAAE": 0.75}
    assert result["tp_errors"] == pytest.approx(errors, abs=1e-6)
    assert result["NDS"] == pytest.approx(100 * nds(0.3, list(errors.values())), abs=1e-4)  # 28.22
    assert {c: v["AP"] for c, v in result["classes"].items() if v["AP"] > 0} == pytest.approx(
        {"car": 100.0, "pedestrian": 100.0, "traffic_cone": 100.0})
    assert result["classes"]["car"]["vel_err"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(result["classes"]["traffic_cone"]["vel_err"])
    # The submission the devkit read, and its own summary, are kept.
    submitted = json.loads((tmp_path / "nuscenes_results.json").read_text())
    assert set(submitted["results"]) == {i.frame_id for i in infos}
    assert json.loads((tmp_path / "metrics_summary.json").read_text())["mean_ap"] == pytest.approx(0.3)
    assert "NDS 28.22" in result["table"]


def test_cars_off_by_0_7_m(val_set):
    # Every car 0.7 m off: no match at 0.5 m (AP 0 there), all matched at 1/2/4 m (AP 1): car AP 0.75.
    # mAP = (0.75 + 1 + 1) / 10; car ATE 0.7 -> mATE = (0.7 + 7) / 10 = 0.77; the rest as before.
    root, nusc, infos = val_set
    preds = [predictions_from_gt(i, NUSCENES_CLASSES) for i in infos]
    for p in preds:
        cars = p["names"] == "car"
        p["boxes_lidar"][cars, 0] += 0.7
    result = nuscenes_eval(nusc, infos, preds, "val")
    assert result["classes"]["car"]["AP"] == pytest.approx(75.0)
    assert result["classes"]["car"]["AP@0.5"] == 0.0 and result["classes"]["car"]["AP@4.0"] == pytest.approx(100.0)
    assert result["classes"]["car"]["trans_err"] == pytest.approx(0.7, abs=1e-6)
    assert result["mAP"] == pytest.approx(27.5)
    errors = [0.77, 0.7, 7 / 9, 0.75, 0.75]
    assert list(result["tp_errors"].values()) == pytest.approx(errors, abs=1e-6)
    assert result["NDS"] == pytest.approx(100 * nds(0.275, errors), abs=1e-4)


def test_attribute_guess():
    assert attribute_for("car", (3.0, 0.0)) == "vehicle.moving"
    assert attribute_for("car", (0.1, 0.1)) == "vehicle.parked"
    assert attribute_for("bus", (0.0, 0.0)) == "vehicle.stopped"
    assert attribute_for("bicycle", (0.0, 2.0)) == "cycle.with_rider"
    assert attribute_for("pedestrian", (0.0, 0.0)) == "pedestrian.standing"
    assert attribute_for("pedestrian", (1.0, 0.0)) == "pedestrian.moving"
    assert attribute_for("traffic_cone", (1.0, 0.0)) == ""


def test_the_devkit_needs_every_frame_of_the_split(val_set):
    root, nusc, infos = val_set
    preds = [predictions_from_gt(i, NUSCENES_CLASSES) for i in infos]
    with pytest.raises(ValueError, match="whole splits"):
        nuscenes_eval(nusc, infos[:1], preds[:1], "val")


def test_cli_scores_a_nuscenes_root(val_set, tmp_path, capsys):
    root, _, _ = val_set
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(root), "--gt-as-predictions", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["format"] == "nuscenes" and report["nuscenes"]["mAP"] == pytest.approx(30.0)
    assert "nuScenes detection (devkit)" in capsys.readouterr().out
    assert eval_main(["--dataset", str(root), "--gt-as-predictions", "--metric", "waymo"]) == 1
    assert "nuScenes metric" in capsys.readouterr().err
    assert eval_main(["--dataset", str(root), "--gt-as-predictions", "--max-frames", "1"]) == 1
    assert "whole splits" in capsys.readouterr().err


def test_version_of_infos_without_one(val_set, tmp_path):
    root, _, infos = val_set
    bare = [replace(i, version=None) for i in infos]  # as OpenPCDet's infos come
    assert dataset_version(root, bare) == "v1.0-mini"  # the only labelled tables under the root
    with pytest.raises(ValueError, match="--version"):
        dataset_version(tmp_path, bare)
