"""A box's support (geometry/box_support.py): returns counted inside boxes, and the Detector dropping the boxes
that hold too few."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scripted_detector import BOX_SIZE, BOX_Z, cell_centre, scripted_detector
from sparsekd_core.geometry.box_support import check_min_points, points_per_box
from sparsekd_core.config import ConfigError, load_model_config
from sparsekd_core.geometry.boxes import points_in_boxes


def test_counts_match_the_numpy_points_in_boxes_for_turned_boxes():
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-20, 20, 20000), rng.uniform(-20, 20, 20000), rng.uniform(-3, 1, 20000)])
    boxes = np.column_stack([rng.uniform(-18, 18, 40), rng.uniform(-18, 18, 40), rng.uniform(-2, 0, 40),
                             rng.uniform(0.5, 5, 40), rng.uniform(0.5, 2, 40), rng.uniform(1, 2, 40),
                             rng.uniform(-np.pi, np.pi, 40)])
    want = points_in_boxes(points, boxes).sum(axis=0)
    got = points_per_box(torch.from_numpy(points).float(), torch.from_numpy(boxes).float()).numpy()
    assert want.sum() > 300 and (want > 0).all()  # the boxes hold points: the comparison is not between zeros
    np.testing.assert_array_equal(got, want)


def test_a_turned_box_counts_only_what_lies_inside_its_own_axes():
    box = torch.tensor([[10.0, 0.0, 0.0, 4.0, 1.0, 2.0, np.pi / 2]])  # 4 m long along y after the quarter turn
    points = torch.tensor([[10.0, 1.9, 0.0], [10.0, -1.9, 0.5], [11.9, 0.0, 0.0], [10.4, 0.0, 0.0],
                           [10.0, 0.0, 1.1]])
    assert points_per_box(points, box).tolist() == [3]  # along y: in; 1.9 m along x: out; z 1.1: above the top


def test_no_boxes_or_no_points_count_nothing():
    assert points_per_box(torch.zeros(5, 3), torch.zeros(0, 7)).shape == (0,)
    assert points_per_box(torch.zeros(0, 3), torch.tensor([[0, 0, 0, 1, 1, 1, 0.0]])).tolist() == [0]


@pytest.mark.parametrize("bad", [-1, 2.5, "5", True])
def test_a_bad_minimum_is_refused_naming_the_rule(bad):
    with pytest.raises(ValueError, match="integer >= 0"):
        check_min_points(bad)


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
