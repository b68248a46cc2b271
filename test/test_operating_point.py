"""Operating points: TP / FP / FN at score thresholds by the KITTI matching, and the best-F1 choice."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.eval.kitti import kitti_counts, kitti_eval
from sparsekd_core.eval.operating_point import (OperatingPoint, best_f1, best_thresholds, class_thresholds_text,
                                                operating_points, operating_table, threshold_grid)
from test_eval_kitti import _cars_plus, four_cars_curve, image_box, lidar_box


def test_counts_follow_the_detections_kept_at_each_threshold():
    frames, preds = four_cars_curve()
    grid = [0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    for metric in ("bev", "3d", "bbox"):
        c = kitti_counts(frames, preds, grid, classes=("Car",), metric=metric)["Car"]
        assert c["tp"].tolist() == [3, 3, 2, 1, 1, 0]
        assert c["fp"].tolist() == [2, 1, 1, 1, 0, 0]
        assert c["fn"].tolist() == [1, 1, 2, 3, 3, 4]
    points = operating_points(kitti_counts(frames, preds, grid, classes=("Car",)), grid)["Car"]
    # F1 = 2 TP / (2 TP + FP + FN): 6/9, 6/8, 4/7, 2/6, 2/5, 0
    assert [p.f1 for p in points] == pytest.approx([6 / 9, 0.75, 4 / 7, 2 / 6, 0.4, 0.0])
    best = best_f1(points)
    assert best.threshold == 0.55 and best.precision == pytest.approx(0.75) and best.recall == pytest.approx(0.75)
    # the same matching as the AP: at the lowest threshold the counts are the curve's last point
    assert kitti_eval(frames, preds, classes=("Car",), metrics=("bev",))["num_gt"]["Car"]["moderate"] == 4


def test_ignored_objects_count_for_nothing():
    # A van detected as a car is neither TP nor FP for Car; a truck is not Car's neighbour, so it is an FP.
    van = {"name": "Van", "box": lidar_box("Van", 30.0, 8.0), "bbox": image_box(2)}
    as_car = {"name": "Car", "box": van["box"], "bbox": van["bbox"], "score": 0.9}
    frames, preds = _cars_plus([van], [as_car], n=5)
    c = kitti_counts(frames, preds, [0.3], classes=("Car",))["Car"]
    assert (c["tp"][0], c["fp"][0], c["fn"][0]) == (5, 0, 0)
    frames, preds = _cars_plus([{**van, "name": "Truck"}], [as_car], n=5)
    c = kitti_counts(frames, preds, [0.3], classes=("Car",))["Car"]
    assert (c["tp"][0], c["fp"][0], c["fn"][0]) == (5, 1, 0)


def test_best_f1_prefers_the_lower_threshold_and_needs_a_true_positive():
    tied = [OperatingPoint(0.3, 4, 2, 2), OperatingPoint(0.4, 4, 2, 2), OperatingPoint(0.5, 3, 0, 3)]
    assert best_f1(tied).threshold == 0.3  # 8/12 against 6/9: equal, the lower one wins
    assert best_f1([OperatingPoint(0.3, 0, 5, 4), OperatingPoint(0.5, 0, 1, 4)]) is None
    points = {"Car": tied, "Cyclist": [OperatingPoint(0.3, 0, 1, 2)], "Pedestrian": [OperatingPoint(0.35, 2, 1, 1)]}
    assert best_thresholds(points) == {"Car": 0.3, "Pedestrian": 0.35}  # no choice without a true positive
    assert class_thresholds_text(points) == "Car:0.3,Pedestrian:0.35"
    table = operating_table(points)
    assert "0.30    4    2    2      0.667   0.667 0.667  <- best F1" in table
    assert "no true positive at any threshold" in table


def test_threshold_grid():
    grid = threshold_grid(0.3, 0.8, 0.05)
    assert len(grid) == 11 and grid[0] == 0.3 and grid[-1] == 0.8 and grid[3] == 0.45
    assert threshold_grid(0.5, 0.5, 0.1).tolist() == [0.5]
    for bad in ((0.8, 0.3, 0.05), (0.3, 0.8, 0.0), (-0.1, 0.5, 0.1), (0.2, 1.5, 0.1)):
        with pytest.raises(ValueError, match="operating-point grid"):
            threshold_grid(*bad)


def test_bad_input_is_named():
    frames, preds = four_cars_curve()
    with pytest.raises(ValueError, match="bbox, bev or 3d"):
        kitti_counts(frames, preds, [0.5], metric="aos")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        kitti_counts(frames, preds, [0.5], difficulty="medium")
    with pytest.raises(ValueError, match="counts for 1 thresholds, grid of 2"):
        operating_points(kitti_counts(frames, preds, [0.5], classes=("Car",)), [0.5, 0.6])


def test_eval_records_the_chosen_thresholds_in_a_copy_of_the_checkpoint(shared_data, tmp_path, capsys):
    """The bundled pillar student on the nine real sweeps (it finds real cars, so there is a choice to record)."""
    import json
    import shutil

    from sparsekd_core.checkpoint import read_checkpoint
    from sparsekd_core.cli.eval import main as eval_main
    from sparsekd_core.data.kitti_infos import create_kitti_infos
    from sparsekd_core.thresholds import parse_class_thresholds

    root = tmp_path / "kitti_real"
    shutil.copytree(shared_data / "kitti_real", root)
    create_kitti_infos(root, ["val"], workers=1, db_split=None, progress=False)
    out, recorded = tmp_path / "eval.json", tmp_path / "recorded.pth"
    assert eval_main(["--dataset", str(root), "--checkpoint", "cp_pillar_v0.64", "--device", "cpu", "--quiet",
                      "--json", str(out), "--operating-points", "0.3", "0.8", "0.1",
                      "--record-operating-points", str(recorded)]) == 0
    chosen = json.loads(out.read_text())["operating_points"]["class_score_thresholds"]
    payload = read_checkpoint(recorded)
    assert "Car" in parse_class_thresholds(chosen)
    assert payload["config"]["head"]["post"]["operating_thresholds"] == parse_class_thresholds(chosen)
    assert "sparsekd-eval --operating-points" in payload["meta"]["operating_point"]
    assert f"recorded as the operating point of {recorded}" in capsys.readouterr().out
