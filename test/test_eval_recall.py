"""Recall at IoU thresholds, and the sparse same-frame IoU every metric is built on."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.eval.recall import frame_pair_overlaps, recall_eval, same_frame_pairs
from sparsekd_core.geometry.iou import iou_3d, iou_bev

LENGTH = 4.0


def car(x: float, y: float = 0.0) -> np.ndarray:
    return np.array([x, y, 0.0, LENGTH, 2.0, 1.5, 0.0])


def shift_for_iou(iou: float) -> float:
    """Shifting an axis-aligned box along its length by s gives IoU (L - s) / (L + s)."""
    return LENGTH * (1 - iou) / (1 + iou)


def frame(names: list[str], boxes: list[np.ndarray], scores: list[float] | None = None, **extra) -> dict:
    out = {"names": np.array(names, dtype=str), "boxes_lidar": np.array(boxes, np.float64).reshape(-1, 7)}
    if scores is not None:
        out["scores"] = np.array(scores, np.float64)
    out.update({k: np.asarray(v) for k, v in extra.items()})
    return out


def test_same_frame_pairs_lists_exactly_the_pairs_of_each_frame():
    fa = np.array([0, 0, 2, 3, 3, 3])
    fb = np.array([0, 1, 3, 3, 4])
    ia, ib = same_frame_pairs(fa, fb)
    expected = {(i, j) for i in range(len(fa)) for j in range(len(fb)) if fa[i] == fb[j]}
    assert set(zip(ia.tolist(), ib.tolist())) == expected
    assert len(ia) == len(expected) == 2 + 6
    with pytest.raises(ValueError, match="sorted"):
        same_frame_pairs(np.array([1, 0]), np.array([0]))


@pytest.mark.parametrize("metric, dense", [("bev", iou_bev), ("3d", iou_3d)])
def test_frame_pair_overlaps_equals_dense_iou_within_frames(metric, dense):
    rng = np.random.default_rng(0)
    n_frames = 6
    def boxes(n):
        return np.c_[rng.uniform(0, 8, (n, 2)), rng.uniform(-0.5, 0.5, n), rng.uniform(1, 4, (n, 3)),
                     rng.uniform(-3, 3, n)]
    fa = np.sort(rng.integers(0, n_frames, 40))
    fb = np.sort(rng.integers(0, n_frames, 30))
    a, b = boxes(40), boxes(30)
    ia, ib, iou = frame_pair_overlaps(fa, a, fb, b, metric)
    got = np.zeros((40, 30))
    got[ia, ib] = iou
    want = np.asarray(dense(a, b)) * (fa[:, None] == fb[None, :])
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert (want > 0).sum() > 20  # the boxes are crowded enough to overlap often


def test_recall_at_each_threshold():
    # Three cars found with IoU 0.4, 0.6 and 0.8 (3D and BEV alike: same heights and z).
    gt = frame(["Car"] * 3, [car(0.0), car(20.0), car(40.0)])
    dt = frame(["Car"] * 3, [car(0.0 + shift_for_iou(0.4)), car(20.0 + shift_for_iou(0.6)),
                             car(40.0 + shift_for_iou(0.8))], [0.9, 0.9, 0.9])
    result = recall_eval([gt], [dt])
    for metric in ("3d", "bev"):
        r = result["recall"]["Car"][metric]
        assert r["0.3"] == pytest.approx(100.0)
        assert r["0.5"] == pytest.approx(100 * 2 / 3)
        assert r["0.7"] == pytest.approx(100 * 1 / 3)
    assert result["num_gt"] == {"Car": 3}
    assert result["summary"]["Car/3d/0.7"] == pytest.approx(100 / 3)
    assert "R@0.7" in result["table"]


def test_class_score_and_point_filters():
    gt = frame(["Car", "Pedestrian", "Car"], [car(0.0), car(20.0), car(40.0)], num_points_in_gt=[10, 10, 0])
    dt = frame(["Car", "Car", "Car"], [car(0.0), car(20.0), car(40.0)], [0.2, 0.9, 0.9])
    result = recall_eval([gt], [dt], classes=["Car", "Pedestrian"])
    assert result["num_gt"] == {"Car": 1, "Pedestrian": 1}  # the 0-point car is left out
    assert result["recall"]["Car"]["3d"]["0.7"] == pytest.approx(100.0)
    assert result["recall"]["Pedestrian"]["3d"]["0.3"] == pytest.approx(0.0)  # a Car box does not count
    strict = recall_eval([gt], [dt], classes=["Car"], min_score=0.5)
    assert strict["recall"]["Car"]["3d"]["0.3"] == pytest.approx(0.0)  # the only Car match scores 0.2


def test_frames_are_kept_apart_and_missing_classes_are_nan():
    gts = [frame(["Car"], [car(0.0)]), frame(["Car"], [car(30.0)])]
    dts = [frame(["Car"], [car(30.0)], [0.9]), frame([], [], [])]  # right place, wrong frame
    result = recall_eval(gts, dts, classes=["Car", "Cyclist"])
    assert result["recall"]["Car"]["bev"]["0.3"] == pytest.approx(0.0)
    assert np.isnan(result["recall"]["Cyclist"]["bev"]["0.5"])


def test_default_classes_and_openpcdet_style_dontcare():
    gt = {"name": np.array(["Car", "Cyclist", "DontCare"]), "gt_boxes_lidar": np.stack([car(0.0), car(20.0)])}
    dt = {"name": np.array(["Cyclist"]), "boxes_lidar": car(20.0)[None], "score": np.array([0.5])}
    result = recall_eval([gt], [dt])
    assert list(result["recall"]) == ["Car", "Cyclist"]
    assert result["recall"]["Cyclist"]["3d"]["0.7"] == pytest.approx(100.0)
    assert result["recall"]["Car"]["3d"]["0.3"] == pytest.approx(0.0)
