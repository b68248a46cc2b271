"""Score thresholds: the immutable value, and per-class thresholds that lower or raise the default,
through the real Detector with scripted scores (test/scripted_detector.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scripted_detector import cell_centre, scripted_detector, some_points
from sparsekd_core.thresholds import (ScoreThresholds, class_thresholds_for, parse_class_setting,
                                     parse_class_thresholds)

SCORES = {"Car": 0.35, "Pedestrian": 0.27, "Cyclist": 0.22}


def test_value_is_immutable_normalised_and_checked():
    t = ScoreThresholds.parse(0.3, " Pedestrian:0.25, Cyclist:0.4,")
    assert t.per_class == (("Cyclist", 0.4), ("Pedestrian", 0.25))
    assert t == ScoreThresholds(0.3, {"Pedestrian": 0.25, "Cyclist": 0.4}) and hash(t) == hash(
        ScoreThresholds(0.3, [("Cyclist", 0.4), ("Pedestrian", 0.25)]))
    assert t.of("Pedestrian") == 0.25 and t.of("Car") == 0.3
    assert t.for_classes(["Car", "Pedestrian", "Cyclist"]) == [0.3, 0.25, 0.4]
    assert t.unknown(["Car", "Pedestrian"]) == ["Cyclist"]
    assert t.restricted_to(["Car", "Pedestrian"]).per_class == (("Pedestrian", 0.25),)
    assert t.describe() == "0.3 (Cyclist 0.4, Pedestrian 0.25)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.default = 0.5
    for bad in (1.5, -0.1, "0.3", True):
        with pytest.raises(ValueError, match="score_threshold must be a number in"):
            ScoreThresholds(bad)
    with pytest.raises(ValueError, match="threshold of class 'Car'"):
        ScoreThresholds(0.3, {"Car": 2.0})


def test_class_threshold_parsing():
    assert parse_class_thresholds("") == {} and parse_class_thresholds([]) == {}
    assert parse_class_thresholds(" Car:0.5 , Pedestrian:0.25,") == {"Car": 0.5, "Pedestrian": 0.25}
    assert parse_class_thresholds(["Cyclist:1"]) == {"Cyclist": 1.0}
    for bad in ("Car", "Car:x", "Car:1.5", ":0.3"):
        with pytest.raises(ValueError, match="ClassName:threshold"):
            parse_class_thresholds(bad)


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    return scripted_detector(tmp_path_factory.mktemp("ckpt"), SCORES)


def _found(det, points=None) -> dict[str, float]:
    out = det(some_points() if points is None else points)
    return dict(zip(out.names, out.scores.round(4).tolist()))


@pytest.mark.parametrize("default, per_class, expected", [
    (0.3, "", {"Car"}),                                   # the default alone
    (0.3, "Pedestrian:0.25", {"Car", "Pedestrian"}),      # a class threshold below the default lowers it
    (0.3, "Pedestrian:0.25,Cyclist:0.2", {"Car", "Pedestrian", "Cyclist"}),
    (0.2, "", {"Car", "Pedestrian", "Cyclist"}),
    (0.2, "Car:0.4", {"Pedestrian", "Cyclist"}),          # above the default raises it
    (0.2, "Car:0.4,Cyclist:0.25", {"Pedestrian"}),
    (0.5, "Cyclist:0.22", {"Cyclist"}),                   # a score equal to its threshold is kept
])
def test_a_class_threshold_replaces_the_default_for_its_class(det, default, per_class, expected):
    det.thresholds = ScoreThresholds.parse(default, per_class)
    found = _found(det)
    assert set(found) == expected
    for name, score in found.items():
        assert score == pytest.approx(SCORES[name], abs=1e-4)


def test_scripted_boxes_sit_at_their_cells(det):
    det.thresholds = ScoreThresholds(0.1)
    out = det(some_points())
    car = out.boxes[out.names.index("Car")]
    np.testing.assert_allclose(car[:2], cell_centre(det, 8, 10), atol=1e-4)
    np.testing.assert_allclose(car[2:], [-1.0, 4.0, 2.0, 1.5, 0.0], atol=1e-4)


def test_the_old_setters_swap_a_whole_new_value(det):
    det.thresholds = ScoreThresholds(0.3)
    before = det.thresholds
    det.class_score_thresholds = {"Pedestrian": 0.25}
    det.score_threshold = 0.34
    assert before == ScoreThresholds(0.3)  # the value a frame in flight holds is never changed in place
    assert det.thresholds == ScoreThresholds(0.34, {"Pedestrian": 0.25})
    assert set(_found(det)) == {"Car", "Pedestrian"}
    with pytest.raises(ValueError, match="unknown classes \\['Truck'\\]"):
        det.class_score_thresholds = {"Truck": 0.5}
    assert det.thresholds == ScoreThresholds(0.34, {"Pedestrian": 0.25})


def test_a_frame_uses_one_setting_even_when_it_changes_mid_frame(tmp_path):
    """A change that lands while the model runs applies from the next frame on, entirely."""
    old = ScoreThresholds.parse(0.3, "Pedestrian:0.25")   # -> Car, Pedestrian
    new = ScoreThresholds.parse(0.2, "Car:0.4")           # -> Pedestrian, Cyclist
    swaps = []

    def change_mid_frame():
        if not swaps:
            swaps.append(True)
            det.thresholds = new

    det = scripted_detector(tmp_path, SCORES, on_forward=change_mid_frame)
    det.thresholds = old
    assert set(_found(det)) == {"Car", "Pedestrian"}  # old setting, all of it
    assert swaps and det.thresholds == new
    assert set(_found(det)) == {"Pedestrian", "Cyclist"}  # new setting, all of it


def test_a_class_setting_empty_takes_the_models_operating_point_and_none_takes_nothing():
    operating = {"Car": 0.55, "Pedestrian": 0.75}
    assert parse_class_setting("") is None and parse_class_setting([]) is None
    assert class_thresholds_for(parse_class_setting(""), operating) == operating
    assert parse_class_setting("none") == () == parse_class_setting(" None ")
    assert class_thresholds_for(parse_class_setting("none"), operating) == {}
    assert class_thresholds_for(parse_class_setting("Pedestrian:0.25"), operating) == {"Pedestrian": 0.25}
    assert class_thresholds_for(None, {}) == {}
    with pytest.raises(ValueError, match="ClassName:threshold"):
        parse_class_setting("nothing")


def test_passing_keeps_each_box_at_its_classs_threshold():
    t = ScoreThresholds(0.3, {"Car": 0.55, "Pedestrian": 0.75})
    names = ["Car", "Car", "Pedestrian", "Pedestrian", "Cyclist", "Cyclist"]
    scores = [0.55, 0.54, 0.80, 0.70, 0.30, 0.29]
    assert t.passing(names, scores).tolist() == [True, False, True, False, True, False]
    assert t.passing([], []).tolist() == []
