"""KITTI AP: hand-computed cases for every rule of the official devkit.

Frames here hold boxes far apart (IoU 0 between different objects) and 2D boxes tall enough
for "easy" unless a test says otherwise, so each expected value can be derived by hand from the
devkit's rules: thresholds are the TP scores kept by its recall sampling, precision is
interpolated as the max over later thresholds, R40 sums slots 1..40 / 40, R11 slots 0,4,..,40 / 11.
"""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.eval.kitti import kitti_eval, kitti_eval_uncapped, recall_thresholds, small_set_repeats

SIZES = {"Car": (4.0, 1.8, 1.5), "Van": (5.0, 2.0, 2.0), "Truck": (8.0, 2.5, 3.0),
         "Pedestrian": (0.8, 0.6, 1.7), "Person_sitting": (0.8, 0.6, 1.2), "Cyclist": (1.8, 0.6, 1.7)}


def lidar_box(name: str, x: float, y: float = 0.0, yaw: float = 0.3) -> np.ndarray:
    return np.array([x, y, -0.8, *SIZES[name], yaw])


def image_box(slot: int, height: float = 60.0) -> np.ndarray:
    """A 2D box at its own place in the image (slots never overlap)."""
    x1 = 20.0 + 110.0 * slot
    return np.array([x1, 150.0, x1 + 100.0, 150.0 + height])


def gt_frame(objects: list[dict]) -> dict:
    """objects: dicts with name, box (7,), bbox (4,), optional occluded/truncated."""
    return {
        "names": np.array([o["name"] for o in objects], dtype=str),
        "bbox": np.array([o["bbox"] for o in objects], dtype=np.float64).reshape(-1, 4),
        "truncated": np.array([o.get("truncated", 0.0) for o in objects], dtype=np.float64),
        "occluded": np.array([o.get("occluded", 0) for o in objects], dtype=np.int64),
        "boxes_lidar": np.array([o["box"] for o in objects], dtype=np.float64).reshape(-1, 7),
    }


def dt_frame(objects: list[dict]) -> dict:
    return {
        "names": np.array([o["name"] for o in objects], dtype=str),
        "bbox": np.array([o["bbox"] for o in objects], dtype=np.float64).reshape(-1, 4),
        "scores": np.array([o["score"] for o in objects], dtype=np.float64),
        "boxes_lidar": np.array([o["box"] for o in objects], dtype=np.float64).reshape(-1, 7),
        **({"alpha": np.array([o["alpha"] for o in objects])} if objects and "alpha" in objects[0] else {}),
    }


def as_predictions(gt: dict, score: float = 1.0) -> dict:
    keep = gt["names"] != "DontCare"
    return {"names": gt["names"][keep], "bbox": gt["bbox"][keep], "boxes_lidar": gt["boxes_lidar"],
            "scores": np.full(int(keep.sum()), score)}


def one_car_frames(n: int) -> list[dict]:
    return [gt_frame([{"name": "Car", "box": lidar_box("Car", 15.0), "bbox": image_box(0)}]) for _ in range(n)]


def ap(result: dict, cls: str = "Car", metric: str = "3d", diff: str = "moderate", rp: str = "R40") -> float:
    return result["ap"][cls][metric][diff][rp]


def test_perfect_predictions_score_100_everywhere():
    frames = [
        gt_frame([
            {"name": "Car", "box": lidar_box("Car", 12.0), "bbox": image_box(0)},
            {"name": "Pedestrian", "box": lidar_box("Pedestrian", 20.0, 5.0), "bbox": image_box(1)},
            {"name": "Cyclist", "box": lidar_box("Cyclist", 30.0, -5.0), "bbox": image_box(2)},
        ])
        for _ in range(45)
    ]
    result = kitti_eval(frames, [as_predictions(f) for f in frames], metrics=("bbox", "bev", "3d", "aos"))
    for cls in ("Car", "Pedestrian", "Cyclist"):
        assert result["num_gt"][cls] == {"easy": 45, "moderate": 45, "hard": 45}
        for metric in ("bbox", "bev", "3d", "aos"):
            for diff in ("easy", "moderate", "hard"):
                assert result["ap"][cls][metric][diff] == pytest.approx({"R40": 100.0, "R11": 100.0})
    assert result["summary"]["Car/3d/moderate"] == pytest.approx(100.0)
    assert "Pedestrian @0.50" in result["table"] and "100.00" in result["table"]


def test_few_ground_truths_cannot_fill_the_41_recall_positions():
    # 10 cars, all found: every TP score becomes a threshold (recall jumps 0.1 per TP while the
    # sampling position advances 1/40), so slots 0..9 hold precision 1 and the rest 0:
    # R40 = 9/40, R11 = slots 0, 4, 8 -> 3/11. This is the devkit's behaviour on small sets.
    frames = one_car_frames(10)
    result = kitti_eval(frames, [as_predictions(f) for f in frames], classes=("Car",))
    assert ap(result) == pytest.approx(100 * 9 / 40)
    assert ap(result, rp="R11") == pytest.approx(100 * 3 / 11)


def four_cars_curve() -> tuple[list[dict], list[dict]]:
    """4 frames of one car each; detections scored 0.9 TP, 0.8 FP, 0.7 TP, 0.6 TP, 0.5 FP (one car missed)."""
    frames = one_car_frames(4)
    car, far = lidar_box("Car", 15.0), lidar_box("Car", 40.0, 10.0)
    det = lambda score, box: {"name": "Car", "box": box, "bbox": image_box(0), "score": score}
    preds = [dt_frame([det(0.9, car), det(0.8, far)]), dt_frame([det(0.7, car)]),
             dt_frame([det(0.6, car), det(0.5, far)]), dt_frame([])]
    return frames, preds


def test_known_pr_curve_four_ground_truths():
    # Thresholds = TP scores [0.9, 0.7, 0.6]; precisions 1/1, 2/3, 3/4 -> interpolated
    # [1, 0.75, 0.75, 0, ...]: R40 = (0.75 + 0.75)/40 = 3.75 %, R11 = 1/11 = 9.09 %.
    frames, preds = four_cars_curve()
    result = kitti_eval(frames, preds, classes=("Car",), metrics=("bev", "3d"))
    for metric in ("bev", "3d"):
        assert ap(result, metric=metric) == pytest.approx(3.75)
        assert ap(result, metric=metric, rp="R11") == pytest.approx(100 / 11)


def test_uncapped_estimate_samples_the_same_pr_curve_at_all_40_positions():
    # The four-car curve above, frames repeated ceil(41 / 4) = 11 times: 44 cars, recall 1/4 at
    # precision 1 (0.9), 2/4 at 2/3 (0.7), 3/4 at 3/4 (0.6). Interpolated: 1 up to recall 0.25
    # (slots 1..10), 0.75 up to 0.75 (slots 11..30), 0 beyond: R40 = (10 + 20 * 0.75) / 40 = 62.5 %;
    # R11: slots 0, 0.1, 0.2 at 1, 0.3..0.7 at 0.75 -> (3 + 3.75) / 11.
    frames, preds = four_cars_curve()
    result = kitti_eval_uncapped(frames, preds, classes=("Car",), metrics=("bev", "3d"))
    assert result["repeats"] == 11 and result["num_frames"] == 4
    assert result["num_gt"]["Car"]["moderate"] == 44
    for metric in ("bev", "3d"):
        assert ap(result, metric=metric) == pytest.approx(62.5)
        assert ap(result, metric=metric, rp="R11") == pytest.approx(100 * 6.75 / 11)
    assert "without the small-set cap (4 frames, each counted 11 times" in result["table"]
    # given the official counts (as sparsekd-eval passes them), the same result without counting again
    counts = kitti_eval(frames, preds, classes=("Car",), metrics=("bev",))["num_gt"]
    given = kitti_eval_uncapped(frames, preds, num_gt=counts, classes=("Car",), metrics=("bev", "3d"))
    assert given["repeats"] == 11 and given["summary"] == result["summary"]


def test_uncapped_estimate_of_all_found_is_100_and_large_sets_are_left_as_they_are():
    frames = one_car_frames(10)
    capped = kitti_eval(frames, [as_predictions(f) for f in frames], classes=("Car",))
    assert ap(capped) == pytest.approx(100 * 9 / 40)
    assert ap(kitti_eval_uncapped(frames, [as_predictions(f) for f in frames], classes=("Car",))) == pytest.approx(100)
    # 45 valid cars: nothing is short, so the estimate is the official figure itself.
    frames, preds = _noisy_scene(np.random.default_rng(3), n_frames=45)
    official = kitti_eval(frames, preds, classes=("Car",))
    uncapped = kitti_eval_uncapped(frames, preds, classes=("Car",))
    assert uncapped["repeats"] == 1 and official["num_gt"]["Car"]["moderate"] >= 41
    assert ap(uncapped) == pytest.approx(ap(official))
    # The smallest class/difficulty with ground truth sets the repeats; one without any is left out.
    assert small_set_repeats({"Car": {"easy": 3, "moderate": 8}, "Cyclist": {"easy": 0, "moderate": 2}}) == 21
    assert small_set_repeats({"Car": {"easy": 0}}) == 1


def test_half_found_gives_r40_50():
    # 82 cars, 41 found exactly with distinct scores: recall reaches 0.5 in 41 steps of 1/82.
    # The sampling keeps TP i while 80 i + 120 >= 164 k (k kept so far), i.e. 20 of the
    # first 40, plus the last: 21 thresholds with precision 1 -> R40 = 20/40, R11 = 6/11.
    frames = one_car_frames(82)
    preds = [as_predictions(f, score=1.0 - 0.01 * i) if i < 41 else dt_frame([]) for i, f in enumerate(frames)]
    result = kitti_eval(frames, preds, classes=("Car",))
    assert ap(result) == pytest.approx(50.0)
    assert ap(result, rp="R11") == pytest.approx(100 * 6 / 11)
    assert len(recall_thresholds(np.linspace(1, 0.6, 41), 82)) == 21


def test_low_scored_false_positives_do_not_lower_ap_but_high_scored_ones_do():
    frames = one_car_frames(45)
    far = lidar_box("Car", 50.0, 10.0)
    fp = {"name": "Car", "box": far, "bbox": image_box(3)}
    low = [dt_frame([{"name": "Car", "box": f["boxes_lidar"][0], "bbox": f["bbox"][0], "score": 0.9},
                     {**fp, "score": 0.1}]) for f in frames]
    high = [dt_frame([{"name": "Car", "box": f["boxes_lidar"][0], "bbox": f["bbox"][0], "score": 0.5},
                      {**fp, "score": 0.95}]) for f in frames]
    assert ap(kitti_eval(frames, low, classes=("Car",))) == pytest.approx(100.0)
    # Every threshold sees all 45 FPs above it and 45 TPs at most: precision <= 1/2.
    assert ap(kitti_eval(frames, high, classes=("Car",))) == pytest.approx(50.0)


def test_orientation_similarity_halves_at_90_degrees():
    frames = one_car_frames(45)
    for f in frames:
        f["alpha"] = np.array([0.2])
    preds = []
    for f in frames:
        p = as_predictions(f)
        p["alpha"] = np.array([0.2 + np.pi / 2])  # (1 + cos 90 deg) / 2 = 0.5 per TP
        preds.append(p)
    result = kitti_eval(frames, preds, classes=("Car",), metrics=("bbox", "aos"))
    assert ap(result, metric="bbox") == pytest.approx(100.0)
    assert ap(result, metric="aos") == pytest.approx(50.0)


def _cars_plus(extra_gt: list[dict], extra_dt: list[dict], n: int = 45) -> tuple[list[dict], list[dict]]:
    """n frames with one perfectly found car; the first frame gets extra objects/detections."""
    frames, preds = [], []
    for i in range(n):
        car = {"name": "Car", "box": lidar_box("Car", 15.0), "bbox": image_box(0)}
        frames.append(gt_frame([car] + (extra_gt if i == 0 else [])))
        preds.append(dt_frame([{**car, "score": 0.5}] + (extra_dt if i == 0 else [])))
    return frames, preds


def test_van_detected_as_car_is_neither_tp_nor_fp():
    van = {"name": "Van", "box": lidar_box("Van", 30.0, 8.0), "bbox": image_box(2)}
    as_car = {"name": "Car", "box": van["box"], "bbox": van["bbox"], "score": 0.9}
    frames, preds = _cars_plus([van], [as_car])
    result = kitti_eval(frames, preds, classes=("Car",), metrics=("bbox", "bev", "3d"))
    assert result["num_gt"]["Car"]["moderate"] == 45  # the van is not counted
    for metric in ("bbox", "bev", "3d"):
        assert ap(result, metric=metric) == pytest.approx(100.0)
    # A truck is not Car's neighbour class: the same detection is then a top-scored FP.
    truck = {**van, "name": "Truck"}
    frames, preds = _cars_plus([truck], [as_car])
    assert ap(kitti_eval(frames, preds, classes=("Car",))) < 100.0


def test_person_sitting_is_ignored_for_pedestrian():
    sitting = {"name": "Person_sitting", "box": lidar_box("Person_sitting", 25.0, 3.0), "bbox": image_box(2)}
    frames, preds = [], []
    for i in range(45):
        ped = {"name": "Pedestrian", "box": lidar_box("Pedestrian", 15.0), "bbox": image_box(0)}
        frames.append(gt_frame([ped] + ([sitting] if i == 0 else [])))
        extra = [{"name": "Pedestrian", "box": sitting["box"], "bbox": sitting["bbox"], "score": 0.9}] if i == 0 else []
        preds.append(dt_frame([{**ped, "score": 0.5}] + extra))
    result = kitti_eval(frames, preds, classes=("Pedestrian",))
    assert result["num_gt"]["Pedestrian"]["easy"] == 45
    assert ap(result, cls="Pedestrian") == pytest.approx(100.0)


def test_dontcare_region_absorbs_a_detection_in_2d_only():
    dontcare = {"name": "DontCare", "box": np.zeros(7), "bbox": np.array([600.0, 100.0, 900.0, 300.0])}
    inside = {"name": "Car", "box": lidar_box("Car", 40.0, 12.0), "bbox": np.array([650.0, 150.0, 750.0, 230.0]),
              "score": 0.9}
    frames, preds = _cars_plus([dontcare], [inside])
    # OpenPCDet-style infos: LiDAR boxes for the non-DontCare objects only.
    frames[0]["boxes_lidar"] = frames[0]["boxes_lidar"][:1]
    result = kitti_eval(frames, preds, classes=("Car",), metrics=("bbox", "bev", "3d"))
    assert ap(result, metric="bbox") == pytest.approx(100.0)
    # The devkit's BEV/3D DontCare test compares against the label's dummy 3D box: no effect.
    assert ap(result, metric="bev") < 100.0
    assert ap(result, metric="3d") < 100.0
    # Moved out of the DontCare box, the same detection is a 2D FP too.
    outside = {**inside, "bbox": np.array([950.0, 150.0, 1050.0, 230.0])}
    frames, preds = _cars_plus([dontcare], [outside])
    assert ap(kitti_eval(frames, preds, classes=("Car",), metrics=("bbox",)), metric="bbox") < 100.0


@pytest.mark.parametrize("height, ignored_at", [(20.0, ("easy", "moderate", "hard")), (30.0, ("easy",))])
def test_detections_below_the_minimum_2d_height_are_ignored(height, ignored_at):
    small = {"name": "Car", "box": lidar_box("Car", 45.0, -12.0), "bbox": image_box(3, height=height), "score": 0.9}
    frames, preds = _cars_plus([], [small])
    result = kitti_eval(frames, preds, classes=("Car",))
    for diff in ("easy", "moderate", "hard"):
        if diff in ignored_at:
            assert ap(result, diff=diff) == pytest.approx(100.0)
        else:
            assert ap(result, diff=diff) < 100.0


def _cyclists_and_a_short_pedestrian(pedestrian_score: float) -> tuple[list[dict], list[dict]]:
    """4 valid cyclists C1..C4 (2D height 60) found at 0.9, 0.7, 0.5, 0.3, a cyclist FP at 0.6, and a
    Pedestrian detection on C2's box whose 2D box is 35 px high (2D IoU with C2 35/60 > 0.5)."""
    cyclists = [{"name": "Cyclist", "box": lidar_box("Cyclist", 10.0 + 8.0 * k, 2.0 * k), "bbox": image_box(k)}
                for k in range(4)]
    found = [{**c, "score": s} for c, s in zip(cyclists, (0.9, 0.7, 0.5, 0.3))]
    false_positive = {"name": "Cyclist", "box": lidar_box("Cyclist", 50.0, -15.0), "bbox": image_box(5), "score": 0.6}
    short_pedestrian = {"name": "Pedestrian", "box": cyclists[1]["box"], "bbox": image_box(1, height=35.0),
                        "score": pedestrian_score}
    return [gt_frame(cyclists)], [dt_frame(found + [false_positive, short_pedestrian])]


def test_a_too_small_detection_of_another_class_can_take_a_ground_truth():
    # The devkit's clean_data marks every detection lower than the difficulty's minimum height as
    # ignored (1), whatever its class; other classes' detections otherwise take no part (-1). Easy
    # needs 40 px, so at easy the 35 px Pedestrian detection takes part in Cyclist matching.
    #
    # Easy, threshold pass (each ground truth takes the highest-scoring overlapping detection, ignored
    # or not): C1 <- 0.9 TP; C2 <- the pedestrian 0.8 (above the cyclist's 0.7), ignored: no TP and
    # no threshold; C3 <- 0.5 TP; C4 <- 0.3 TP. TP scores [0.9, 0.5, 0.3], 4 valid ground truths;
    # recall sampling keeps all three. With thresholds (counted detections preferred):
    #   0.9: 1 TP, 0 FP -> p 1;  0.5: C2 now takes its cyclist 0.7, 3 TP + the 0.6 FP -> p 3/4;
    #   0.3: 4 TP 1 FP -> p 4/5.  Interpolated [1, 0.8, 0.8, 0, ...]:
    #   R40 = (0.8 + 0.8) / 40 = 4.00 %, R11 = 1 / 11 = 9.09 %.
    # Moderate (25 px): the pedestrian detection is tall enough, so it takes no part (-1): thresholds
    # [0.9, 0.7, 0.5, 0.3] with p 1, 1, 3/4, 4/5 -> interpolated [1, 1, 0.8, 0.8, 0, ...]:
    #   R40 = (1 + 0.8 + 0.8) / 40 = 6.50 %, R11 = 9.09 %. Easy was 6.50 as well before this rule.
    frames, preds = _cyclists_and_a_short_pedestrian(pedestrian_score=0.8)
    result = kitti_eval(frames, preds, classes=("Cyclist", "Pedestrian"), metrics=("bbox", "bev", "3d"))
    assert result["num_gt"]["Cyclist"] == {"easy": 4, "moderate": 4, "hard": 4}
    for metric in ("bbox", "bev", "3d"):
        assert ap(result, "Cyclist", metric, "easy") == pytest.approx(4.0)
        assert ap(result, "Cyclist", metric, "easy", "R11") == pytest.approx(100 / 11)
        assert ap(result, "Cyclist", metric, "moderate") == pytest.approx(6.5)
        assert ap(result, "Cyclist", metric, "hard") == pytest.approx(6.5)
        np.testing.assert_allclose(result["precision"]["Cyclist"][metric]["easy"][:4], [1, 0.8, 0.8, 0])

    # Scored below the cyclist's 0.7 the pedestrian no longer wins C2 in the threshold pass: 6.50.
    frames, preds = _cyclists_and_a_short_pedestrian(pedestrian_score=0.65)
    result = kitti_eval(frames, preds, classes=("Cyclist",), metrics=("bbox", "bev", "3d"))
    for metric in ("bbox", "bev", "3d"):
        assert ap(result, "Cyclist", metric, "easy") == pytest.approx(6.5)


def test_a_class_without_valid_ground_truth_scores_0():
    # No pedestrian in the labels: no TP, so the recall sampling yields no threshold and all 41
    # precision slots stay 0. The devkit prints 0.0000 (not NaN); so do we.
    frames, preds = _cyclists_and_a_short_pedestrian(pedestrian_score=0.8)
    result = kitti_eval(frames, preds, classes=("Cyclist", "Pedestrian"), metrics=("bev", "3d"))
    assert result["num_gt"]["Pedestrian"] == {"easy": 0, "moderate": 0, "hard": 0}
    for metric in ("bev", "3d"):
        assert result["ap"]["Pedestrian"][metric] == {d: {"R40": 0.0, "R11": 0.0} for d in ("easy", "moderate", "hard")}
    row = next(line for line in result["table"].splitlines() if line.startswith("Pedestrian") and " 3d " in line)
    assert row.split()[3:6] == ["0.00", "0.00", "0.00"]


def test_difficulty_membership_from_occlusion_truncation_and_height():
    hidden = {"name": "Car", "box": lidar_box("Car", 30.0, 8.0), "bbox": image_box(1), "occluded": 1}
    cut = {"name": "Car", "box": lidar_box("Car", 35.0, -8.0), "bbox": image_box(2), "truncated": 0.4}
    low = {"name": "Car", "box": lidar_box("Car", 45.0, 12.0), "bbox": image_box(3, height=30.0)}
    frames, preds = _cars_plus([hidden, cut, low], [])
    result = kitti_eval(frames, preds, classes=("Car",))
    # easy: none of the three; moderate: occlusion 1 and height 30 qualify; hard: truncation 0.4 too.
    assert result["num_gt"]["Car"] == {"easy": 45, "moderate": 47, "hard": 48}
    assert ap(result, diff="easy") == pytest.approx(100.0)  # missing ignored objects costs nothing
    assert ap(result, diff="hard") < ap(result, diff="easy")


def _noisy_scene(rng: np.random.Generator, n_frames: int = 30) -> tuple[list[dict], list[dict]]:
    frames, preds = [], []
    for _ in range(n_frames):
        cars = [{"name": "Car", "box": lidar_box("Car", 10.0 + 12.0 * k, rng.uniform(-5, 5), rng.uniform(-3, 3)),
                 "bbox": image_box(k)} for k in range(3)]
        frames.append(gt_frame(cars))
        dets = []
        for c in cars:
            for _ in range(rng.integers(0, 3)):
                box = c["box"] + np.r_[rng.normal(0, 0.15, 3), rng.normal(0, 0.05, 3), rng.normal(0, 0.05)]
                dets.append({"name": "Car", "box": box, "bbox": c["bbox"] + rng.normal(0, 4, 4),
                             "score": rng.uniform()})
        dets.append({"name": "Car", "box": lidar_box("Car", 60.0, 20.0), "bbox": image_box(5), "score": rng.uniform()})
        preds.append(dt_frame(dets))
    return frames, preds


def test_shuffled_prediction_order_gives_identical_results():
    rng = np.random.default_rng(3)
    frames, preds = _noisy_scene(rng)
    base = kitti_eval(frames, preds, metrics=("bbox", "bev", "3d", "aos"), classes=("Car",))
    shuffled = []
    for p in preds:
        order = rng.permutation(len(p["names"]))
        shuffled.append({k: v[order] for k, v in p.items()})
    again = kitti_eval(frames, shuffled, metrics=("bbox", "bev", "3d", "aos"), classes=("Car",))
    assert again["ap"] == base["ap"]
    assert 0.0 < ap(base) < 100.0  # the scene is neither trivial nor hopeless


def test_perturbed_predictions_lower_ap_monotonically():
    frames = [gt_frame([{"name": "Car", "box": lidar_box("Car", 10.0 + 12.0 * k, 0.0, 0.1 * k), "bbox": image_box(k)}
                        for k in range(3)]) for _ in range(20)]
    rng = np.random.default_rng(0)
    direction = [rng.normal(size=(3, 2)) for _ in frames]  # a fixed random shift per box
    results = []
    for scale in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8):
        preds = []
        for f, d in zip(frames, direction):
            p = as_predictions(f, score=0.5)
            p["boxes_lidar"] = f["boxes_lidar"].copy()
            p["boxes_lidar"][:, :2] += scale * d
            p["scores"] = np.linspace(0.9, 0.3, 3)
            preds.append(p)
        results.append(ap(kitti_eval(frames, preds, classes=("Car",)), metric="3d", diff="hard"))
    assert results[0] == pytest.approx(100.0)  # 60 cars, all found exactly
    assert all(a >= b for a, b in zip(results, results[1:])), results
    assert results[-1] < results[0]


def test_bad_input_is_named():
    frames = one_car_frames(3)
    with pytest.raises(ValueError, match="3 ground-truth frames but 2 prediction frames"):
        kitti_eval(frames, [as_predictions(f) for f in frames[:2]])
    broken = as_predictions(frames[0])
    del broken["scores"]
    with pytest.raises(KeyError, match="predictions of frame 0 has no 'scores'"):
        kitti_eval(frames[:1], [broken])
    with pytest.raises(ValueError, match="unknown KITTI metric"):
        kitti_eval(frames, [as_predictions(f) for f in frames], metrics=("iou",))
    with pytest.raises(ValueError, match="no IoU threshold"):
        kitti_eval(frames, [as_predictions(f) for f in frames], classes=("Tram",))


# ------------------------------------------------------------------ sparsekd-eval on a KITTI-format root
from pathlib import Path  # noqa: E402
import json  # noqa: E402

from sparsekd_core.cli.eval import main as eval_main  # noqa: E402
from sparsekd_core.eval.annotations import gt_annos_for, predictions_from_detections  # noqa: E402
from sparsekd_core.data import kitti_format as kf  # noqa: E402
from sparsekd_core.data.infos import load_split  # noqa: E402
from sparsekd_core.data.kitti_infos import create_kitti_infos  # noqa: E402

REAL_CALIB = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "training" / "calib"
              / "000008.txt")


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory) -> Path:
    """45 frames, each with a Car, a Pedestrian and a Cyclist in the camera's view (labels projected
    with the real KITTI calibration), points inside every box; infos built by sparsekd-data's code."""
    root = tmp_path_factory.mktemp("kitti")
    calib = kf.read_calib(REAL_CALIB)
    layout = kf.KittiLayout(root)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(45):
        fid = kf.frame_id(i)
        ids.append(fid)
        boxes = {"Car": lidar_box("Car", 14.0, 2.0, 0.4), "Pedestrian": lidar_box("Pedestrian", 11.0, -3.0),
                 "Cyclist": lidar_box("Cyclist", 18.0, -5.0, 1.2)}
        objects = [kf.make_object(name, box, calib) for name, box in boxes.items()]
        pts = []
        for box in boxes.values():
            local = rng.uniform(-0.45, 0.45, (40, 3)) * box[3:6]
            c, s = np.cos(box[6]), np.sin(box[6])
            world = np.c_[local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c, local[:, 2]] + box[:3]
            pts.append(np.c_[world, rng.uniform(0, 1, 40)])
        kf.write_points(layout.points_path(fid, reduced=False), np.concatenate(pts).astype(np.float32))
        kf.write_label(layout.label_path(fid), objects)
        kf.write_calib(layout.calib_path(fid), calib)
    kf.write_image_set(layout.image_set_path("val"), ids)
    create_kitti_infos(root, ["val"], workers=1, db_split=None, progress=False)
    return root


def test_cli_ground_truth_as_predictions_gives_100(kitti_root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--metric", "both",
                      "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["format"] == "kitti" and report["num_frames"] == 45
    for cls in ("Car", "Pedestrian", "Cyclist"):
        for metric in ("bbox", "bev", "3d", "aos"):
            for diff in ("easy", "moderate", "hard"):
                assert report["kitti"]["ap"][cls][metric][diff] == pytest.approx({"R40": 100.0, "R11": 100.0})
        assert report["waymo"]["classes"][cls]["LEVEL_2"]["AP"] == pytest.approx(100.0)
        assert report["recall"]["recall"][cls]["3d"]["0.7"] == pytest.approx(100.0)
    printed = capsys.readouterr().out
    assert "KITTI AP R40 (45 frames)" in printed and "Waymo 3D detection" in printed and "wrote" in printed


def test_cli_adds_the_uncapped_estimate_on_a_small_set(kitti_root, tmp_path, capsys):
    # 3 frames: 3 valid objects per class, so perfect predictions officially score 100 (3 - 1) / 40 = 5,
    # and the frames counted ceil(41 / 3) = 14 times score 100.
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--max-frames", "3", "--json", str(out),
                      "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["kitti"]["summary"]["Car/bev/moderate"] == pytest.approx(5.0)
    assert report["kitti_uncapped"]["repeats"] == 14
    assert report["kitti_uncapped"]["summary"]["Car/bev/moderate"] == pytest.approx(100.0)
    printed = capsys.readouterr().out
    assert "capped below 100" in printed and "without the small-set cap (3 frames, each counted 14 times" in printed
    # 45 frames: no class is short, no estimate.
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--json", str(out), "--quiet"]) == 0
    assert "kitti_uncapped" not in json.loads(out.read_text())


def test_cli_bootstrap_resamples_the_frames(kitti_root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--max-frames", "3", "--bootstrap", "5",
                      "--json", str(out), "--quiet"]) == 0
    boot = json.loads(out.read_text())["kitti_bootstrap"]
    assert boot["resamples"] == 5 and boot["frames"] == 3 and boot["uncapped"]  # a small set: the uncapped AP
    assert boot["interval"]["Pedestrian/3d/moderate"] == [pytest.approx(100.0), pytest.approx(100.0)]
    assert "90% of 5 draws of the 3 frames" in capsys.readouterr().out
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--max-frames", "3", "--metric", "waymo",
                      "--bootstrap", "5", "--quiet"]) == 1
    assert "--bootstrap resamples the KITTI metric" in capsys.readouterr().err



def test_cli_bootstrap_against_scores_two_models_on_the_same_draws(kitti_root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(kitti_root), "--checkpoint", "cp_pillar_v0.64", "--max-frames", "4",
                      "--bootstrap", "6", "--bootstrap-against", "cp_pillar_v0.64", "--device", "cpu",
                      "--json", str(out), "--quiet"]) == 0
    boot = json.loads(out.read_text())["kitti_bootstrap"]
    assert boot["against"] == "cp_pillar_v0.64"
    for key, (low, high) in boot["difference"]["interval"].items():  # a model against itself: 0 in every draw
        assert (low, high) == (0.0, 0.0) and boot["difference"]["above"][key] == 0.0, key
    assert "minus baseline" in capsys.readouterr().out
    assert eval_main(["--dataset", str(kitti_root), "--checkpoint", "cp_pillar_v0.64", "--max-frames", "2",
                      "--bootstrap-against", "cp_pillar_v0.64", "--quiet"]) == 1
    assert "give both" in capsys.readouterr().err


def test_projected_predictions_reproduce_the_labels_2d_boxes(kitti_root):
    # The prediction path projects LiDAR boxes with the calibration: fed the ground-truth boxes it
    # must recover the label's 2D boxes (up to the label file's rounding of location and size to
    # 0.01 m, a fraction of a pixel here) and score 100 on every metric.
    infos = load_split(kitti_root, "kitti", "val")
    gts = [i.annos.as_dict() for i in infos]
    preds = [predictions_from_detections(i, i.annos.boxes_lidar, np.ones(len(i.annos)), i.annos.names) for i in infos]
    np.testing.assert_allclose(preds[0]["bbox"], gts[0]["bbox"], atol=0.5)
    np.testing.assert_allclose(preds[0]["alpha"], gts[0]["alpha"], atol=0.01)
    result = kitti_eval(gts, preds, metrics=("bbox", "bev", "3d", "aos"))
    assert all(v == pytest.approx(100.0, abs=0.01) for v in result["summary"].values())


def test_objects_outside_the_models_range_are_dontcare(kitti_root):
    # Car at x 14 m, Pedestrian at 11 m, Cyclist at 18 m: a model that sees x 0..15 m is scored on the first two.
    infos = load_split(kitti_root, "kitti", "val")
    pc_range = (0.0, -20.0, -3.0, 15.0, 20.0, 1.0)
    gts = [gt_annos_for(i, "kitti", pc_range) for i in infos]
    assert list(gts[0]["names"]) == ["Car", "Pedestrian", "DontCare"]
    assert list(gt_annos_for(infos[0], "kitti")["names"]) == ["Car", "Pedestrian", "Cyclist"]  # no range: all
    seen = [i.annos.select(i.annos.names != "Cyclist") for i in infos]
    preds = [predictions_from_detections(i, a.boxes_lidar, np.ones(len(a)), a.names) for i, a in zip(infos, seen)]
    scored = kitti_eval(gts, preds, metrics=("bev", "3d"))
    assert scored["summary"]["Car/3d/moderate"] == pytest.approx(100.0)
    assert scored["summary"]["Pedestrian/3d/moderate"] == pytest.approx(100.0)
    assert scored["num_gt"]["Cyclist"]["moderate"] == 0  # not a miss: outside the model's view
    everything = kitti_eval([gt_annos_for(i, "kitti") for i in infos], preds, metrics=("bev", "3d"))
    assert everything["summary"]["Cyclist/3d/moderate"] == pytest.approx(0.0)  # scored on all: every cyclist missed


@pytest.mark.parametrize("model", ["cp_pillar_v0.64_sim", "pointpillar_s_sim"])  # CenterPoint and anchor heads
def test_cli_runs_a_checkpoint_and_reports_every_metric(kitti_root, tmp_path, model):
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint(model, tmp_path / "untrained.pth")
    out = tmp_path / "eval.json"
    assert eval_main(["--dataset", str(kitti_root), "--checkpoint", str(ckpt), "--device", "cpu",
                      "--max-frames", "1", "--score-threshold", "0.0", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["model"]["class_names"] == ["Car", "Pedestrian", "Cyclist"]
    assert report["num_frames"] == 1 and report["timing_s"]["inference"] > 0
    assert "x 0..30.72 m" in report["scored_area"]  # both models cover x 0..30.72 m, y +-15.36 m
    assert set(report) >= {"kitti", "recall"} and "waymo" not in report  # default metric: the dataset's own
    ap_values = [v for v in report["kitti"]["summary"].values()]
    assert all(0.0 <= v <= 100.0 for v in ap_values)


def test_cli_names_its_input_problems(tmp_path, capsys):
    assert eval_main(["--dataset", str(tmp_path)]) == 2
    assert "give --checkpoint" in capsys.readouterr().err
    assert eval_main(["--dataset", str(tmp_path), "--gt-as-predictions"]) == 1
    assert "run `sparsekd-data" in capsys.readouterr().err


def test_cli_prints_operating_points_counted_on_every_valid_object(kitti_root, tmp_path, capsys):
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path / "untrained.pth")
    out = tmp_path / "eval.json"
    args = ["--dataset", str(kitti_root), "--checkpoint", str(ckpt), "--device", "cpu", "--max-frames", "2",
            "--json", str(out), "--quiet", "--operating-points", "0.0", "0.5", "0.25"]
    assert eval_main(args + ["--score-threshold", "0.0"]) == 0
    report = json.loads(out.read_text())
    op = report["operating_points"]
    assert op["thresholds"] == [0.0, 0.25, 0.5] and op["matching"] == "KITTI BEV, moderate"
    for cls in ("Car", "Pedestrian", "Cyclist"):
        rows = op["per_class"][cls]
        # every valid object is found or missed at each threshold; fewer boxes are kept as it rises
        assert [r["tp"] + r["fn"] for r in rows] == [report["kitti"]["num_gt"][cls]["moderate"]] * 3 == [2] * 3
        assert rows[0]["tp"] + rows[0]["fp"] >= rows[1]["tp"] + rows[1]["fp"] >= rows[2]["tp"] + rows[2]["fp"]
    assert "operating points (KITTI BEV matching, moderate)" in capsys.readouterr().out
    assert eval_main(["--dataset", str(kitti_root), "--checkpoint", str(ckpt), "--record-operating-points",
                      str(tmp_path / "recorded.pth")]) == 2
    assert "give both" in capsys.readouterr().err
    # boxes below the grid's first threshold were never kept: refused, naming the fix
    assert eval_main(args + ["--score-threshold", "0.1"]) == 1
    assert "give --score-threshold 0 or lower" in capsys.readouterr().err
    assert eval_main(["--dataset", str(kitti_root), "--gt-as-predictions", "--quiet",
                      "--operating-points", "0.3", "0.8", "0.05"]) == 1
    assert "needs a detector on KITTI-format data" in capsys.readouterr().err
