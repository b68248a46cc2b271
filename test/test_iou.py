"""Rotated BEV / 3D IoU against shapely polygons, hand-made edge cases, and input handling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from sparsekd_core.geometry import iou as iou_module
from sparsekd_core.geometry.boxes import bev_corners
from sparsekd_core.geometry.iou import (
    intersection_bev,
    iou_3d,
    iou_3d_aligned,
    iou_bev,
    iou_bev_aligned,
)

TOL = 1e-4


def random_boxes(rng: np.random.Generator, n: int, centre_spread: float = 2.0,
                 offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(n, 7) float32 boxes, sizes 0.5..5 m, any yaw, centres close enough to overlap often."""
    boxes = np.empty((n, 7), dtype=np.float32)
    boxes[:, 0] = rng.uniform(-centre_spread, centre_spread, n) + offset[0]
    boxes[:, 1] = rng.uniform(-centre_spread, centre_spread, n) + offset[1]
    boxes[:, 2] = rng.uniform(-1.0, 1.0, n)
    boxes[:, 3:6] = rng.uniform(0.5, 5.0, (n, 3))
    boxes[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return boxes


def shapely_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference (N, M) BEV intersection areas, BEV IoU and 3D IoU from shapely polygons."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    poly_a = [Polygon(c) for c in bev_corners(a64)]
    poly_b = [Polygon(c) for c in bev_corners(b64)]
    inter = np.array([[pa.intersection(pb).area for pb in poly_b] for pa in poly_a]).reshape(len(a), len(b))
    area_a, area_b = a64[:, 3] * a64[:, 4], b64[:, 3] * b64[:, 4]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        bev = np.where(union > 0, inter / union, 0.0)
    top = np.minimum(a64[:, None, 2] + a64[:, None, 5] / 2, b64[None, :, 2] + b64[None, :, 5] / 2)
    bottom = np.maximum(a64[:, None, 2] - a64[:, None, 5] / 2, b64[None, :, 2] - b64[None, :, 5] / 2)
    inter3d = inter * np.clip(top - bottom, 0.0, None)
    union3d = (area_a * a64[:, 5])[:, None] + (area_b * b64[:, 5])[None, :] - inter3d
    with np.errstate(invalid="ignore", divide="ignore"):
        iou3d = np.where(union3d > 0, inter3d / union3d, 0.0)
    return inter, bev, iou3d


@pytest.fixture(scope="module")
def random_pair():
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 70), random_boxes(rng, 60)
    return a, b, shapely_overlaps(a, b)


def test_bev_iou_matches_shapely_on_random_boxes(random_pair):
    a, b, (_, ref_bev, _) = random_pair
    got = iou_bev(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (70, 60)
    # The test only means something if many pairs overlap partially.
    assert ((ref_bev > 0.05) & (ref_bev < 0.95)).mean() > 0.3
    assert np.abs(got.numpy() - ref_bev).max() < TOL


def test_intersection_area_and_3d_iou_match_shapely(random_pair):
    a, b, (ref_inter, _, ref_3d) = random_pair
    assert np.abs(intersection_bev(a, b) - ref_inter).max() < TOL
    got_3d = iou_3d(a, b)
    assert (ref_3d > 0.05).mean() > 0.2
    assert np.abs(got_3d - ref_3d).max() < TOL


def test_far_from_the_sensor_keeps_accuracy():
    # Boxes 70 m out: float32 centres there carry ~4 um of rounding, the IoU must not suffer more.
    rng = np.random.default_rng(11)
    a = random_boxes(rng, 40, offset=(70.0, -65.0))
    b = random_boxes(rng, 40, offset=(70.0, -65.0))
    _, ref_bev, ref_3d = shapely_overlaps(a, b)
    assert np.abs(iou_bev(a, b) - ref_bev).max() < TOL
    assert np.abs(iou_3d(a, b) - ref_3d).max() < TOL


def test_collinear_and_right_angle_edges_match_shapely():
    # Integer sizes on a half-metre grid with yaws in multiples of 90 degrees: many edges lie on
    # the same lines, corners touch corners and edges, boxes nest and share sides.
    rng = np.random.default_rng(3)
    n = 60
    boxes = np.zeros((n, 7), dtype=np.float32)
    boxes[:, 0:2] = rng.integers(-4, 5, (n, 2)) * 0.5
    boxes[:, 3:5] = rng.integers(1, 5, (n, 2)).astype(np.float32)
    boxes[:, 5] = 1.0
    boxes[:, 6] = rng.integers(-2, 3, n) * (math.pi / 2)
    _, ref_bev, ref_3d = shapely_overlaps(boxes, boxes)
    got = iou_bev(boxes, boxes)
    assert (ref_bev == 0).any() and ((ref_bev > 0) & (ref_bev < 1)).any()
    assert np.abs(got - ref_bev).max() < TOL
    assert np.abs(iou_3d(boxes, boxes) - ref_3d).max() < TOL


# A unit square and the same square turned 45 degrees overlap in a regular octagon of area
# 2 (sqrt 2 - 1); the union is 2 minus that.
OCTAGON_IOU = 2 * (math.sqrt(2) - 1) / (2 - 2 * (math.sqrt(2) - 1))


def box(x=0.0, y=0.0, z=0.0, dx=1.0, dy=1.0, dz=1.0, yaw=0.0) -> list[float]:
    return [x, y, z, dx, dy, dz, yaw]


@pytest.mark.parametrize(
    "a, b, expected_bev, expected_3d",
    [
        pytest.param(box(dx=4, dy=2, yaw=0.3), box(dx=4, dy=2, yaw=0.3), 1.0, 1.0, id="identical"),
        pytest.param(box(dx=4, dy=2, yaw=0.3), box(dx=4, dy=2, yaw=0.3 + math.pi), 1.0, 1.0, id="yaw_plus_pi"),
        pytest.param(box(dx=2, dy=2), box(dx=2, dy=2, yaw=math.pi / 2), 1.0, 1.0, id="square_quarter_turn"),
        pytest.param(box(), box(x=5.0), 0.0, 0.0, id="disjoint"),
        pytest.param(box(dx=4, dy=4), box(dx=2, dy=2), 0.25, 0.25, id="inside"),
        pytest.param(box(dx=4, dy=4), box(dx=2, dy=2, yaw=math.pi / 4), 0.25, 0.25, id="rotated_inside"),
        pytest.param(box(), box(x=1.0), 0.0, 0.0, id="touching_edge"),
        pytest.param(box(), box(x=1.0, y=1.0), 0.0, 0.0, id="touching_corner"),
        pytest.param(box(dx=2, dy=2), box(x=0.5, dx=1, dy=2), 0.5, 0.5, id="inside_sharing_three_sides"),
        pytest.param(box(dx=2, dy=2), box(x=1.0, dx=2, dy=2), 1 / 3, 1 / 3, id="half_shift_collinear"),
        pytest.param(box(dx=2, dy=2, dz=2), box(dx=2, dy=2, z=1.0, dz=2), 1.0, 1 / 3, id="height_shift"),
        pytest.param(box(dz=1), box(z=1.0, dz=1), 1.0, 0.0, id="stacked_touching"),
        # A unit square and the same square turned 45 degrees: overlap is a regular octagon.
        pytest.param(box(), box(yaw=math.pi / 4), OCTAGON_IOU, OCTAGON_IOU, id="octagon"),
    ],
)
def test_hand_cases(a, b, expected_bev, expected_3d):
    ta, tb = torch.tensor([a]), torch.tensor([b])
    assert iou_bev(ta, tb).item() == pytest.approx(expected_bev, abs=1e-6)
    assert iou_bev(tb, ta).item() == pytest.approx(expected_bev, abs=1e-6)
    assert iou_3d(ta, tb).item() == pytest.approx(expected_3d, abs=1e-6)


def test_diagonal_of_random_boxes_is_one(random_pair):
    a, _, _ = random_pair
    assert np.allclose(np.diag(iou_bev(a, a)), 1.0, atol=1e-6)
    assert np.allclose(np.diag(iou_3d(a, a)), 1.0, atol=1e-6)


def test_degenerate_boxes_give_zero_not_nan():
    boxes = torch.tensor([
        box(dx=0.0, dy=2.0),          # a segment
        box(dx=0.0, dy=0.0),          # a point
        box(dx=2.0, dy=2.0, dz=0.0),  # flat: BEV area but no volume
        box(dx=2.0, dy=2.0),          # a normal box around all of them
    ])
    bev, iou3 = iou_bev(boxes, boxes), iou_3d(boxes, boxes)
    assert torch.isfinite(bev).all() and torch.isfinite(iou3).all()
    assert (bev[:2] == 0).all() and (bev[:, :2] == 0).all()
    assert bev[2, 3].item() == pytest.approx(1.0)  # same footprint
    assert (iou3[2] == 0).all() and (iou3[:, 2] == 0).all()
    assert iou3[3, 3].item() == pytest.approx(1.0)
    assert (intersection_bev(boxes, boxes)[:2] == 0).all()


def test_aligned_versions_equal_the_diagonal(random_pair):
    a, b, _ = random_pair
    a, b = torch.from_numpy(a[:60]), torch.from_numpy(b)
    assert torch.allclose(iou_bev_aligned(a, b), torch.diagonal(iou_bev(a, b)), atol=1e-7)
    assert torch.allclose(iou_3d_aligned(a, b), torch.diagonal(iou_3d(a, b)), atol=1e-7)
    with pytest.raises(ValueError, match="aligned"):
        iou_bev_aligned(a[:3], b[:4])


def test_numpy_in_numpy_out_and_dtypes_follow_the_input(random_pair):
    a, b, _ = random_pair
    out = iou_bev(a, b)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    out64 = iou_bev(torch.from_numpy(a).double(), torch.from_numpy(b).double())
    assert isinstance(out64, torch.Tensor) and out64.dtype == torch.float64
    assert np.abs(out64.numpy() - out).max() < 1e-6
    # One numpy and one torch argument: torch wins.
    assert isinstance(iou_bev(a, torch.from_numpy(b)), torch.Tensor)


def test_empty_inputs_give_empty_results():
    some = torch.rand(3, 7) + 0.5
    none = torch.zeros(0, 7)
    assert iou_bev(none, some).shape == (0, 3)
    assert iou_3d(some, none).shape == (3, 0)
    assert intersection_bev(np.zeros((0, 7), np.float32), np.zeros((0, 7), np.float32)).shape == (0, 0)
    assert iou_bev_aligned(none, none).shape == (0,)


def test_bad_input_names_the_problem():
    good = torch.ones(2, 7)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        iou_bev(torch.ones(2, 5), good)
    bad_extent = good.clone()
    bad_extent[0, 4] = -1.0
    with pytest.raises(ValueError, match="negative extents"):
        iou_3d(good, bad_extent)
    with pytest.raises(ValueError, match="non-finite"):
        iou_bev(torch.full((1, 7), float("nan")), good)


def test_small_chunks_give_the_same_result(random_pair):
    a, b, _ = random_pair
    assert np.array_equal(iou_bev(a, b, chunk_pairs=97), iou_bev(a, b))
    assert np.array_equal(iou_3d_aligned(a[:60], b, chunk_pairs=7), iou_3d_aligned(a[:60], b))


def test_float32_arithmetic_used_on_gpus_is_accurate(monkeypatch, random_pair):
    # CUDA computes in float32 (float64 is slow on most GPUs); run that arithmetic on the CPU here.
    a, b, (_, ref_bev, ref_3d) = random_pair
    monkeypatch.setattr(iou_module, "_compute_dtype", lambda boxes: torch.float32)
    assert np.abs(iou_bev(a, b) - ref_bev).max() < TOL
    assert np.abs(iou_3d(a, b) - ref_3d).max() < TOL
    far = np.random.default_rng(5)
    fa, fb = random_boxes(far, 30, offset=(-72.0, 71.0)), random_boxes(far, 30, offset=(-72.0, 71.0))
    assert np.abs(iou_bev(fa, fb) - shapely_overlaps(fa, fb)[1]).max() < TOL


def test_5000_by_5000_scene_stays_bounded():
    # A full-range scene: 25 M pairs, of which only nearby ones are clipped, in bounded chunks.
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 5000, centre_spread=75.0)
    out = iou_bev(torch.from_numpy(boxes), torch.from_numpy(boxes), chunk_pairs=1 << 14)
    assert out.shape == (5000, 5000) and out.dtype == torch.float32
    assert torch.allclose(torch.diagonal(out), torch.ones(5000), atol=1e-6)
    # Spot-check the overlapping pairs of the first 50 boxes against shapely.
    rows = boxes[:50]
    near = np.flatnonzero((out[:50] > 0).any(0).numpy())
    assert len(near) > 50
    assert np.abs(out[:50, near].numpy() - shapely_overlaps(rows, boxes[near])[1]).max() < TOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_shapely(random_pair):
    a, b, (ref_inter, ref_bev, ref_3d) = random_pair
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    bev, iou3 = iou_bev(ta, tb), iou_3d(ta, tb)
    assert bev.is_cuda and iou3.is_cuda
    assert np.abs(bev.cpu().numpy() - ref_bev).max() < TOL
    assert np.abs(iou3.cpu().numpy() - ref_3d).max() < TOL
    assert np.abs(intersection_bev(ta, tb).cpu().numpy() - ref_inter).max() < TOL
    assert torch.allclose(iou_bev_aligned(ta[:60], tb), torch.diagonal(bev), atol=1e-6)
