"""Waymo AP/APH: hand-computed cases for matching, levels, heading weighting and range shards.

Expected values come from the official definition: precision/recall at each score cutoff
(0.00..1.00), precision 1 where recall is 0, the precision envelope over recall integrated by
trapezoids on recall steps of at most 0.05.
"""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.eval.waymo import heading_accuracy, waymo_average_precision, waymo_eval

SIZE = {"Vehicle": (4.5, 2.0, 1.6), "Pedestrian": (0.8, 0.8, 1.8), "Cyclist": (1.8, 0.7, 1.7)}


def box(name: str, x: float, y: float = 0.0, yaw: float = 0.2, size: tuple | None = None) -> np.ndarray:
    return np.array([x, y, 0.5, *(size or SIZE[name]), yaw])


def gt_frame(objects: list[tuple]) -> dict:
    """objects: (name, box, num_points[, difficulty])."""
    return {
        "names": np.array([o[0] for o in objects], dtype=str),
        "boxes_lidar": np.array([o[1] for o in objects], dtype=np.float64).reshape(-1, 7),
        "num_points_in_gt": np.array([o[2] for o in objects], dtype=np.int64),
        "difficulty": np.array([o[3] if len(o) > 3 else 0 for o in objects], dtype=np.int64),
    }


def dt_frame(objects: list[tuple]) -> dict:
    """objects: (name, box, score)."""
    return {
        "names": np.array([o[0] for o in objects], dtype=str),
        "boxes_lidar": np.array([o[1] for o in objects], dtype=np.float64).reshape(-1, 7),
        "scores": np.array([o[2] for o in objects], dtype=np.float64),
    }


def as_predictions(gt: dict, score: float = 1.0) -> dict:
    return {"names": gt["names"], "boxes_lidar": gt["boxes_lidar"].copy(), "scores": np.full(len(gt["names"]), score)}


def test_heading_accuracy_wraps_the_error_into_0_pi():
    gt = np.zeros(6)
    pred = np.array([0.0, np.pi / 2, -np.pi / 2, np.pi, 2 * np.pi + 0.1, -3 * np.pi / 2])
    np.testing.assert_allclose(heading_accuracy(pred, gt), [1.0, 0.5, 0.5, 0.0, 1 - 0.1 / np.pi, 0.5], atol=1e-12)


def test_average_precision_of_a_hand_computed_curve():
    # PR points of the 4-gt example below: envelope 0.75 on recall (0.25, 0.75], 1 on [0, 0.25].
    # Area: 0.45 * 0.75 + 0.05 * (0.75 + 1) / 2 + 0.25 * 1 = 0.63125 (the 0.30 -> 0.25 step is a trapezoid).
    p = [0.6, 0.75, 2 / 3, 0.5, 1.0, 1.0]
    r = [0.75, 0.75, 0.5, 0.25, 0.25, 0.0]
    assert waymo_average_precision(p, r) == pytest.approx(0.63125)
    assert waymo_average_precision([1.0], [1.0]) == pytest.approx(1.0)
    assert waymo_average_precision([1.0, 1.0], [0.0, 0.0]) == 0.0  # nothing ever recalled
    assert waymo_average_precision([], []) == 0.0


def test_perfect_predictions_score_100_in_every_breakdown():
    frames = [
        gt_frame([("Vehicle", box("Vehicle", 10.0), 100), ("Vehicle", box("Vehicle", -40.0, 5.0), 50),
                  ("Pedestrian", box("Pedestrian", 0.0, 20.0), 30), ("Pedestrian", box("Pedestrian", 60.0, 0.0), 3),
                  ("Cyclist", box("Cyclist", 35.0, -20.0), 20, 2)])
        for _ in range(5)
    ]
    result = waymo_eval(frames, [as_predictions(f, 0.7) for f in frames])
    for cls in ("Vehicle", "Pedestrian", "Cyclist"):
        for level in ("LEVEL_1", "LEVEL_2"):
            if result["classes"][cls][level]["num_gt"]:
                assert result["classes"][cls][level]["AP"] == pytest.approx(100.0)
                assert result["classes"][cls][level]["APH"] == pytest.approx(100.0)
    assert result["mean"]["LEVEL_2"] == pytest.approx({"mAP": 100.0, "mAPH": 100.0})
    assert result["range"]["Vehicle"]["0-30"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert result["range"]["Vehicle"]["30-50"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    # No vehicle that far: nothing to find, recall 0 at every cutoff, AP 0 (the official op's value).
    assert result["range"]["Vehicle"]["50+"]["LEVEL_2"]["AP"] == 0.0
    # The cyclist is labelled difficulty 2: no LEVEL_1 cyclist to miss, and every cyclist found:
    # recall 1 at precision 1 wherever it is matched, so LEVEL_1 AP is 100 as the official op gives.
    assert result["classes"]["Cyclist"]["LEVEL_1"]["num_gt"] == 0
    assert result["classes"]["Cyclist"]["LEVEL_1"]["AP"] == pytest.approx(100.0)
    assert result["summary"]["LEVEL_1/mAPH"] == pytest.approx(100.0)
    assert "Vehicle" in result["table"] and "mean" in result["table"]


def _pr_example(yaw_error: float = 0.0) -> tuple[list[dict], list[dict]]:
    """4 vehicles, one per frame; detections 0.9 TP, 0.8 FP, 0.7 TP, 0.6 TP, 0.5 FP; one missed.

    Square footprints so that a heading error leaves the IoU at 1.
    """
    square = (3.0, 3.0, 1.6)
    gts = [gt_frame([("Vehicle", box("Vehicle", 15.0, size=square), 100)]) for _ in range(4)]
    hit = box("Vehicle", 15.0, yaw=0.2 + yaw_error, size=square)
    miss = box("Vehicle", 40.0, 10.0, size=square)
    dts = [dt_frame([("Vehicle", hit, 0.9), ("Vehicle", miss, 0.8)]), dt_frame([("Vehicle", hit, 0.7)]),
           dt_frame([("Vehicle", hit, 0.6), ("Vehicle", miss, 0.5)]), dt_frame([])]
    return gts, dts


def test_known_pr_curve():
    # Cutoffs <= 0.5: 3 TP 2 FP (p 0.6, r 0.75); <= 0.6: 3/1 (0.75, 0.75); <= 0.7: 2/1 (2/3, 0.5);
    # <= 0.8: 1/1 (0.5, 0.25); <= 0.9: 1/0 (1, 0.25); above: recall 0. AP = 63.125 % (see above).
    result = waymo_eval(*_pr_example(), classes=("Vehicle",))
    for level in ("LEVEL_1", "LEVEL_2"):
        assert result["classes"]["Vehicle"][level]["AP"] == pytest.approx(63.125)
        assert result["classes"]["Vehicle"][level]["APH"] == pytest.approx(63.125)


def test_ninety_degree_heading_error_halves_aph():
    result = waymo_eval(*_pr_example(yaw_error=np.pi / 2), classes=("Vehicle",))
    v = result["classes"]["Vehicle"]["LEVEL_2"]
    assert v["AP"] == pytest.approx(63.125)
    assert v["APH"] == pytest.approx(63.125 / 2)
    reversed_ = waymo_eval(*_pr_example(yaw_error=np.pi), classes=("Vehicle",))["classes"]["Vehicle"]["LEVEL_2"]
    assert reversed_["AP"] == pytest.approx(63.125)
    assert reversed_["APH"] == pytest.approx(0.0)


def test_a_score_exactly_on_a_cutoff_counts_at_that_cutoff():
    # Two pedestrians, found at scores 0.9 and exactly 0.35; a false positive at 0.34.
    # The official op compares float32 scores with float32 cutoffs (i * 0.01 stored in a proto
    # float) using >=, and float32(35 * 0.01) == float32(0.35), so at cutoff 0.35 both TPs count:
    #   cutoffs <= 0.34: 2 TP 1 FP -> p 2/3, r 1;  cutoff 0.35: 2 TP 0 FP -> p 1, r 1;
    #   cutoffs 0.36..0.90: 1 TP -> p 1, r 1/2;  above 0.90: r 0.
    # The envelope is 1 at every recall: AP = 100.00. (Comparing in float64, 35 * 0.01 =
    # 0.35000000000000003 > 0.35 drops the second TP at that cutoff; the envelope is then 2/3 on
    # (0.55, 1], a trapezoid to 1 at 0.5, and 1 below: 0.45 * 2/3 + 0.05 * (2/3 + 1) / 2 + 0.5 = 84.17.)
    a, b = box("Pedestrian", 10.0), box("Pedestrian", 20.0, 4.0)
    gt = gt_frame([("Pedestrian", a, 100), ("Pedestrian", b, 100)])
    fp = box("Pedestrian", 30.0, -6.0)
    dt = dt_frame([("Pedestrian", a, 0.9), ("Pedestrian", b, 0.35), ("Pedestrian", fp, 0.34)])
    result = waymo_eval([gt], [dt], classes=("Pedestrian",))
    ped = result["classes"]["Pedestrian"]["LEVEL_2"]
    assert ped["AP"] == pytest.approx(100.0)
    assert (ped["precision"][35], ped["recall"][35]) == (1.0, 1.0)
    assert ped["precision"][34] == pytest.approx(2 / 3)
    assert ped["recall"][36] == 0.5
    # A float32 score tensor holds the same number: identical results.
    dt32 = {**dt, "scores": dt["scores"].astype(np.float32)}
    assert waymo_eval([gt], [dt32], classes=("Pedestrian",))["summary"] == pytest.approx(result["summary"])


def test_a_class_without_ground_truth_scores_0_and_leaves_the_mean_alone():
    # No cyclist in the frame but a cyclist prediction: at every cutoff TP + FN = 0, so the op sets
    # recall 0 and precision 1; the only P/R point is recall 0 and the area is 0: AP 0.00 at both
    # levels (the official op's value, where a NaN would only say "undefined").
    gt = gt_frame([("Vehicle", box("Vehicle", 10.0), 100)])
    dt = dt_frame([("Vehicle", box("Vehicle", 10.0), 0.8), ("Cyclist", box("Cyclist", 20.0), 0.9)])
    result = waymo_eval([gt], [dt])
    for level in ("LEVEL_1", "LEVEL_2"):
        assert result["classes"]["Cyclist"][level]["AP"] == 0.0
        assert result["classes"]["Cyclist"][level]["APH"] == 0.0
        assert result["classes"]["Pedestrian"][level]["AP"] == 0.0
        # The mean is over the classes that have ground truth: the vehicle alone.
        assert result["mean"][level] == pytest.approx({"mAP": 100.0, "mAPH": 100.0})
    cyclist_row = next(line for line in result["table"].splitlines() if line.startswith("Cyclist"))
    assert cyclist_row.split()[2:6] == ["0.00"] * 4


def test_level_1_ap_of_a_class_with_only_level_2_ground_truth():
    # Two cyclists, both LEVEL_2 (3 points; labelled difficulty 2). At LEVEL_1 they are matched
    # but never missed (FN only for level <= 1), so TP + FN = TP: recall is 1 at every cutoff where
    # a prediction matches one, else 0 (TP + FN = 0). AP = the best precision among the cutoffs with
    # a match, because the envelope is flat from recall 1 down to 0.
    c1, c2 = box("Cyclist", 10.0), box("Cyclist", 20.0, 5.0)
    gt = gt_frame([("Cyclist", c1, 3), ("Cyclist", c2, 80, 2)])
    # c1 found at 0.7, c2 missed, a false positive at 0.8:
    #   cutoffs <= 0.70: 1 TP 1 FP -> p 1/2, r 1 (LEVEL_1) / r 1/2 (LEVEL_2); above: r 0.
    # LEVEL_1: envelope 1/2 on [0, 1] -> AP 50.00.
    # LEVEL_2: (1/2, 1/2), the recall-0 point takes its precision -> 1/2 * 1/2 = 25.00.
    dt = dt_frame([("Cyclist", c1, 0.7), ("Cyclist", box("Cyclist", 40.0, -9.0), 0.8)])
    result = waymo_eval([gt], [dt], classes=("Cyclist",))
    cyc = result["classes"]["Cyclist"]
    assert (cyc["LEVEL_1"]["num_gt"], cyc["LEVEL_2"]["num_gt"]) == (0, 2)
    assert cyc["LEVEL_1"]["AP"] == pytest.approx(50.0)
    assert cyc["LEVEL_2"]["AP"] == pytest.approx(25.0)
    # Nothing matched: recall 0 everywhere, LEVEL_1 AP 0.00.
    miss = dt_frame([("Cyclist", box("Cyclist", 40.0, -9.0), 0.8)])
    assert waymo_eval([gt], [miss], classes=("Cyclist",))["classes"]["Cyclist"]["LEVEL_1"]["AP"] == 0.0
    # The class has ground truth, so it enters the LEVEL_1 mean with its official value.
    assert result["mean"]["LEVEL_1"]["mAP"] == pytest.approx(50.0)


def _four_level1_vehicles() -> list[tuple]:
    return [("Vehicle", box("Vehicle", 10.0 + 8.0 * k, 3.0), 100) for k in range(4)]


def test_level_membership_and_what_each_level_counts():
    gt = gt_frame(_four_level1_vehicles() + [
        ("Vehicle", box("Vehicle", 10.0, -10.0), 5),        # <= 5 points: LEVEL_2
        ("Vehicle", box("Vehicle", 20.0, -10.0), 80, 2),    # labelled difficulty 2: LEVEL_2
        ("Vehicle", box("Vehicle", 30.0, -10.0), 0),        # no points: dropped
    ])
    found_l1 = dt_frame([("Vehicle", gt["boxes_lidar"][k], 0.9) for k in range(4)])
    result = waymo_eval([gt], [found_l1], classes=("Vehicle",))
    v = result["classes"]["Vehicle"]
    assert (v["LEVEL_1"]["num_gt"], v["LEVEL_2"]["num_gt"]) == (4, 6)
    assert v["LEVEL_1"]["AP"] == pytest.approx(100.0)  # LEVEL_2 misses are forgiven at LEVEL_1
    assert v["LEVEL_2"]["AP"] == pytest.approx(100 * 4 / 6)  # recall 4/6 at precision 1

    # A detection of a LEVEL_2 object is a TP at LEVEL_1 too (not an FP): still 100.
    found_all = dt_frame([("Vehicle", gt["boxes_lidar"][k], 0.9) for k in range(6)])
    result = waymo_eval([gt], [found_all], classes=("Vehicle",))
    assert result["classes"]["Vehicle"]["LEVEL_1"]["AP"] == pytest.approx(100.0)
    assert result["classes"]["Vehicle"]["LEVEL_2"]["AP"] == pytest.approx(100.0)


def test_a_detection_of_a_zero_point_object_is_a_false_positive():
    # 4 vehicles found at score 0.5, and a 0.9 detection of the dropped 0-point box:
    # cutoffs <= 0.5 give p 0.8 at r 1; above, recall 0. Envelope 0.8 everywhere: AP 80 %.
    gt = gt_frame(_four_level1_vehicles() + [("Vehicle", box("Vehicle", 30.0, -10.0), 0)])
    dt = dt_frame([("Vehicle", gt["boxes_lidar"][k], 0.5) for k in range(4)] + [("Vehicle", gt["boxes_lidar"][4], 0.9)])
    result = waymo_eval([gt], [dt], classes=("Vehicle",))
    assert result["classes"]["Vehicle"]["LEVEL_2"]["num_gt"] == 4
    assert result["classes"]["Vehicle"]["LEVEL_2"]["AP"] == pytest.approx(80.0)


def test_range_breakdown_uses_each_boxs_own_centre_distance():
    near, mid, far = box("Vehicle", 10.0), box("Vehicle", 0.0, -40.0), box("Vehicle", 45.0, 35.0)  # 10, 40, 57 m
    gts = [gt_frame([("Vehicle", near, 100), ("Vehicle", mid, 100), ("Vehicle", far, 100)]) for _ in range(3)]
    dts = [dt_frame([("Vehicle", near, 0.8), ("Vehicle", mid, 0.8)]) for _ in range(3)]
    result = waymo_eval(gts, dts, classes=("Vehicle",))
    shards = result["range"]["Vehicle"]
    assert shards["0-30"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert shards["30-50"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert shards["50+"]["LEVEL_2"]["AP"] == pytest.approx(0.0)
    assert [shards[s]["LEVEL_2"]["num_gt"] for s in ("0-30", "30-50", "50+")] == [3, 3, 3]
    assert result["classes"]["Vehicle"]["LEVEL_2"]["AP"] == pytest.approx(100 * 2 / 3)

    # A prediction just inside 30 m that overlaps a vehicle just beyond it: in the range shards
    # they are matched separately (official RANGE breakdown), so the vehicle counts as missed.
    gt = gt_frame([("Vehicle", box("Vehicle", 30.1), 100)])
    dt = dt_frame([("Vehicle", box("Vehicle", 29.85), 0.9)])
    r = waymo_eval([gt], [dt], classes=("Vehicle",))
    assert r["classes"]["Vehicle"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert r["range"]["Vehicle"]["30-50"]["LEVEL_2"]["AP"] == pytest.approx(0.0)


def test_hungarian_matching_maximises_matches_where_greedy_would_not():
    # Two overlapping vehicles A (x=0) and B (x=0.4). P1 (score 0.9, x=0.15) overlaps A (IoU 0.93)
    # and B (0.88); P2 (0.8, x=-0.5) overlaps only A (0.78). Greedy by score gives P1-A and leaves
    # P2 unmatched; the Hungarian assignment maximising summed IoU gives P1-B and P2-A.
    size = (4.0, 2.0, 2.0)
    a, b = box("Vehicle", 20.0, yaw=0.0, size=size), box("Vehicle", 20.4, yaw=0.0, size=size)
    p1, p2 = box("Vehicle", 20.15, yaw=0.0, size=size), box("Vehicle", 19.5, yaw=0.0, size=size)
    gt = gt_frame([("Vehicle", a, 100), ("Vehicle", b, 100)])
    dt = dt_frame([("Vehicle", p1, 0.9), ("Vehicle", p2, 0.8)])
    result = waymo_eval([gt], [dt], classes=("Vehicle",))
    assert result["classes"]["Vehicle"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert result["classes"]["Vehicle"]["LEVEL_2"]["recall"][0] == pytest.approx(1.0)


def _noisy_scene(rng: np.random.Generator, n_frames: int = 20) -> tuple[list[dict], list[dict]]:
    gts, dts = [], []
    for _ in range(n_frames):
        objs = [("Vehicle", box("Vehicle", rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(-3, 3)),
                 int(rng.choice([3, 40]))) for _ in range(4)]
        objs += [("Pedestrian", box("Pedestrian", rng.uniform(-40, 40), rng.uniform(-40, 40)), 20) for _ in range(2)]
        gts.append(gt_frame(objs))
        dets = []
        for name, b, _ in objs:
            for _ in range(rng.integers(0, 3)):
                noisy = b + np.r_[rng.normal(0, 0.2, 3), rng.normal(0, 0.05, 3), rng.normal(0, 0.3)]
                dets.append((name, noisy, rng.uniform()))
        dets.append(("Vehicle", box("Vehicle", 70.0, 70.0), rng.uniform()))
        dts.append(dt_frame(dets))
    return gts, dts


def test_shuffled_prediction_order_gives_identical_results():
    rng = np.random.default_rng(5)
    gts, dts = _noisy_scene(rng)
    base = waymo_eval(gts, dts, classes=("Vehicle", "Pedestrian"))
    shuffled = []
    for d in dts:
        order = rng.permutation(len(d["names"]))
        shuffled.append({k: v[order] for k, v in d.items()})
    again = waymo_eval(gts, shuffled, classes=("Vehicle", "Pedestrian"))
    assert again["summary"] == pytest.approx(base["summary"], nan_ok=True)
    assert 0.0 < base["summary"]["LEVEL_2/mAP"] < 100.0


def test_perturbed_predictions_lower_ap_monotonically():
    gts = [gt_frame([("Vehicle", box("Vehicle", 10.0 + 10.0 * k, 5.0 * k), 100) for k in range(4)]) for _ in range(10)]
    rng = np.random.default_rng(1)
    shifts = [rng.normal(size=(4, 2)) for _ in gts]
    aps = []
    for scale in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8):
        dts = []
        for g, s in zip(gts, shifts):
            d = as_predictions(g)
            d["boxes_lidar"][:, :2] += scale * s
            d["scores"] = np.array([0.9, 0.7, 0.5, 0.3])
            dts.append(d)
        aps.append(waymo_eval(gts, dts, classes=("Vehicle",))["classes"]["Vehicle"]["LEVEL_2"]["AP"])
    assert aps[0] == pytest.approx(100.0)
    assert all(a >= b - 1e-9 for a, b in zip(aps, aps[1:])), aps
    assert aps[-1] < aps[0]


def test_bad_input_is_named():
    gt = gt_frame(_four_level1_vehicles())
    with pytest.raises(ValueError, match="1 ground-truth frames but 0 prediction frames"):
        waymo_eval([gt], [])
    no_points = {k: v for k, v in gt.items() if k != "num_points_in_gt"}
    with pytest.raises(KeyError, match="num_points_in_gt"):
        waymo_eval([no_points], [as_predictions(gt)])
    short = as_predictions(gt)
    short["scores"] = short["scores"][:2]
    with pytest.raises(ValueError, match="disagree in length"):
        waymo_eval([gt], [short])
    with pytest.raises(ValueError, match="strictly increasing"):
        waymo_eval([gt], [as_predictions(gt)], score_cutoffs=[0.5, 0.1])


# ------------------------------------------------------------------ sparsekd-eval on a Waymo-format root
import json  # noqa: E402

from sparsekd_core.cli.eval import main as eval_main  # noqa: E402
from sparsekd_core.data.infos import POINT_FEATURES, FrameInfo, ObjectAnnos, infos_path, save_infos  # noqa: E402


def test_cli_ground_truth_as_predictions_on_waymo_infos(tmp_path, capsys):
    infos = []
    for i in range(6):
        g = gt_frame([("Vehicle", box("Vehicle", 12.0 + i, 3.0), 60), ("Pedestrian", box("Pedestrian", 35.0, -4.0), 4),
                      ("Cyclist", box("Cyclist", -55.0, 10.0), 12, 2)])
        annos = ObjectAnnos(g["names"], g["boxes_lidar"], g["num_points_in_gt"], g["difficulty"])
        infos.append(FrameInfo("waymo", f"seg_{i:03d}", f"seg/{i:04d}.npy", POINT_FEATURES["waymo"], annos,
                               sequence="seg", sample_idx=i))
    save_infos(infos_path(tmp_path, "waymo", "val"), infos)
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(tmp_path), "--gt-as-predictions", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["format"] == "waymo" and "kitti" not in report
    assert report["waymo"]["mean"]["LEVEL_2"] == pytest.approx({"mAP": 100.0, "mAPH": 100.0})
    # The 4-point pedestrian and the labelled cyclist are LEVEL_2 only: no LEVEL_1 ground truth, but
    # matched at LEVEL_1 too, so LEVEL_1 AP is the official 100 (the best precision where one matches).
    assert report["waymo"]["classes"]["Pedestrian"]["LEVEL_1"]["num_gt"] == 0
    assert report["waymo"]["classes"]["Pedestrian"]["LEVEL_1"]["AP"] == pytest.approx(100.0)
    assert report["waymo"]["range"]["Vehicle"]["50+"]["LEVEL_2"]["AP"] == 0.0  # no vehicle that far
    assert report["waymo"]["range"]["Cyclist"]["50+"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert eval_main(["--dataset", str(tmp_path), "--gt-as-predictions", "--metric", "kitti"]) == 1
    assert "KITTI metric needs KITTI-format data" in capsys.readouterr().err
