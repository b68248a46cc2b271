"""Detector.min_points: boxes holding fewer returns of the cloud than asked are dropped."""
from __future__ import annotations

import numpy as np
import pytest

from scripted_detector import BOX_SIZE, BOX_Z, cell_centre, scripted_detector
from sparsekd_core.config import ConfigError, load_model_config


@pytest.mark.parametrize("bad", [-1, 2.5, "5", True])
def test_a_bad_minimum_is_refused_naming_the_rule(bad, tmp_path):
    det = scripted_detector(tmp_path, {"Car": 0.5})
    with pytest.raises(ValueError, match="integer >= 0"):
        det.min_points = bad
    assert det.min_points == 0


def test_a_config_with_a_bad_minimum_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nhead:\n  post:\n    min_points: -2\n")
    with pytest.raises(ConfigError, match="head.post.min_points must be an integer >= 0"):
        load_model_config(path)


def points_in_scripted_box(det, row: int, col: int, n: int, seed: int = 0) -> np.ndarray:
    """n points (x y z intensity) inside the scripted box at BEV cell (row, col)."""
    rng = np.random.default_rng(seed)
    x, y = cell_centre(det, row, col)
    half = np.array(BOX_SIZE) / 2 * 0.9
    return np.column_stack([x + rng.uniform(-half[0], half[0], n), y + rng.uniform(-half[1], half[1], n),
                            BOX_Z + rng.uniform(-half[2], half[2], n), rng.uniform(0, 1, n)]).astype(np.float32)


def test_the_detector_drops_boxes_with_fewer_returns_than_asked(tmp_path):
    """Car's box holds 12 returns, Pedestrian's 3, Cyclist's none: each minimum keeps exactly the boxes that hold
    at least that many, whatever their scores."""
    det = scripted_detector(tmp_path, {"Car": 0.5, "Pedestrian": 0.9, "Cyclist": 0.8})
    det.score_threshold = 0.3
    cloud = np.concatenate([points_in_scripted_box(det, 8, 10, 12), points_in_scripted_box(det, 16, 18, 3, seed=1),
                            np.array([[29.0, 14.0, -1.5, 0.1]], np.float32)])  # one return far from every box
    assert det.min_points == 0  # the checkpoint's own: CenterPoint keeps every box
    assert sorted(det(cloud).names) == ["Car", "Cyclist", "Pedestrian"]
    kept = {}
    for minimum in (1, 3, 4, 12, 13):
        det.min_points = minimum
        kept[minimum] = sorted(det(cloud).names)
    assert kept == {1: ["Car", "Pedestrian"], 3: ["Car", "Pedestrian"], 4: ["Car"], 12: ["Car"], 13: []}
    with pytest.raises(ValueError, match="integer >= 0"):
        det.min_points = -1
    assert det.min_points == 13  # a refused value changes nothing
