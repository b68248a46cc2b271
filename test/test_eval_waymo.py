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
    assert np.isnan(result["range"]["Vehicle"]["50+"]["LEVEL_2"]["AP"])  # no vehicle that far
    # The cyclist is labelled difficulty 2: no LEVEL_1 cyclist, so that AP is undefined.
    assert result["classes"]["Cyclist"]["LEVEL_1"]["num_gt"] == 0
    assert np.isnan(result["classes"]["Cyclist"]["LEVEL_1"]["AP"])
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
    # The 4-point pedestrian and the labelled cyclist are LEVEL_2 only: no LEVEL_1 ground truth.
    assert report["waymo"]["classes"]["Pedestrian"]["LEVEL_1"]["AP"] is None
    assert report["waymo"]["range"]["Cyclist"]["50+"]["LEVEL_2"]["AP"] == pytest.approx(100.0)
    assert eval_main(["--dataset", str(tmp_path), "--gt-as-predictions", "--metric", "kitti"]) == 1
    assert "KITTI metric needs KITTI-format data" in capsys.readouterr().err
