"""Percentile intervals of KITTI AP over frames drawn with replacement
(eval/bootstrap.py, sparsekd-eval --bootstrap)."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.eval.bootstrap import bootstrap_kitti
from sparsekd_core.eval.kitti import kitti_eval_uncapped

from test_eval_kitti import as_predictions, dt_frame, gt_frame, image_box, lidar_box, one_car_frames


def test_perfect_predictions_are_100_in_every_draw():
    frames = one_car_frames(10)
    result = bootstrap_kitti(frames, [as_predictions(f) for f in frames], resamples=30, uncapped=True,
                             classes=("Car",))
    assert result["interval"]["Car/3d/moderate"] == [pytest.approx(100.0), pytest.approx(100.0)]
    assert result["median"]["Car/bev/moderate"] == pytest.approx(100.0)
    assert result["drawn"]["Car/3d/moderate"] == 30 and result["frames"] == 10
    assert "Car/3d/moderate" in result["table"] and "90% of 30 draws of the 10 frames" in result["table"]


def test_interval_spans_what_the_frames_alone_can_move():
    # 20 cars, the first 8 found (scores falling), then 4 false cars scored above all of them: AP about 30
    frames = one_car_frames(20)
    preds = [as_predictions(f, score=0.9 - 0.01 * i) if i < 8 else dt_frame([]) for i, f in enumerate(frames)]
    for i in range(4):
        preds[10 + i] = dt_frame([{"name": "Car", "box": lidar_box("Car", 30.0, 5.0), "bbox": image_box(1),
                                   "score": 0.95}])
    point = kitti_eval_uncapped(frames, preds, classes=("Car",))["summary"]["Car/bev/moderate"]
    result = bootstrap_kitti(frames, preds, resamples=120, uncapped=True, seed=4, classes=("Car",))
    low, high = result["interval"]["Car/bev/moderate"]
    assert 10.0 < point < 50.0
    assert low < point < high and high - low > 15.0  # 20 frames cannot pin it down
    assert low <= result["median"]["Car/bev/moderate"] <= high
    again = bootstrap_kitti(frames, preds, resamples=120, uncapped=True, seed=4, classes=("Car",))
    assert again["interval"] == result["interval"]  # a seed gives the same draws
    narrow = bootstrap_kitti(frames, preds, resamples=120, uncapped=True, seed=4, confidence=0.5, classes=("Car",))
    assert low <= narrow["interval"]["Car/bev/moderate"][0] <= narrow["interval"]["Car/bev/moderate"][1] <= high


def test_draws_without_a_class_do_not_count_as_zero():
    # one pedestrian in 10 frames, found: a draw that misses its frame has no pedestrian AP at all (the devkit
    # would print 0.00); only the draws that hold it make the interval
    frames = one_car_frames(10)
    frames[0] = gt_frame([{"name": "Pedestrian", "box": lidar_box("Pedestrian", 10.0), "bbox": image_box(0)}])
    result = bootstrap_kitti(frames, [as_predictions(f) for f in frames], resamples=40, uncapped=True, seed=1,
                             classes=("Car", "Pedestrian"))
    drawn = result["drawn"]["Pedestrian/bev/moderate"]
    assert 15 < drawn < 37  # about 1 - (9/10)^10 = 65% of draws hold the frame
    assert result["interval"]["Pedestrian/bev/moderate"] == [pytest.approx(100.0), pytest.approx(100.0)]
    assert result["drawn"]["Car/bev/moderate"] == 40


def test_paired_draws_give_the_interval_of_a_difference():
    frames = one_car_frames(12)
    perfect = [as_predictions(f) for f in frames]
    half = [as_predictions(f) if i % 2 else dt_frame([]) for i, f in enumerate(frames)]
    result = bootstrap_kitti(frames, perfect, resamples=40, uncapped=True, seed=2, baseline_annos=half,
                             classes=("Car",))
    diff = result["difference"]
    low, high = diff["interval"]["Car/bev/moderate"]
    assert 20.0 < low <= high < 80.0  # about 50 points better, by an amount the draws move
    assert diff["above"]["Car/bev/moderate"] == 1.0  # better in every draw
    assert "minus baseline" in result["table"] and "higher in" in result["table"]
    same = bootstrap_kitti(frames, perfect, resamples=10, uncapped=True, baseline_annos=perfect, classes=("Car",))
    assert same["difference"]["interval"]["Car/3d/moderate"] == [0.0, 0.0]
    assert same["difference"]["above"]["Car/3d/moderate"] == 0.0
    with pytest.raises(ValueError, match="prediction frames"):
        bootstrap_kitti(frames, perfect, resamples=5, baseline_annos=half[:5])


def test_bad_settings_are_refused():
    frames = one_car_frames(3)
    preds = [as_predictions(f) for f in frames]
    with pytest.raises(ValueError, match="at least one resample"):
        bootstrap_kitti(frames, preds, resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_kitti(frames, preds, resamples=5, confidence=1.0)
    with pytest.raises(ValueError, match="no frames"):
        bootstrap_kitti([], [], resamples=5)
    with pytest.raises(ValueError, match="prediction frames"):
        bootstrap_kitti(frames, preds[:2], resamples=5)
    assert np.isfinite(bootstrap_kitti(frames, preds, resamples=2)["median"]["Car/3d/moderate"])
