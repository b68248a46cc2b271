"""Augmentation keeps points and boxes consistent; gt-sampling pastes objects without collisions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from sparsekd_core.data.augment import (
    SWEEP_AGE_TOLERANCE, AugmentConfig, AugmentPipeline, GtSampler, GtSamplingConfig, bev_overlap, flip, random_flip,
    random_rotation, random_scaling, random_translation, rotate, scale, shuffle_points, translate,
)
from sparsekd_core.data.gt_database import DbFrame, GtDatabase, build_gt_database
from sparsekd_core.geometry.boxes import bev_corners, points_in_boxes

DIMS = {"Car": (4.2, 1.8, 1.5), "Pedestrian": (0.7, 0.7, 1.7), "Cyclist": (1.8, 0.6, 1.7)}
PASTED_INTENSITY = 7.0  # database points carry this intensity so a test can tell them from scene points


def make_scene(rng: np.random.Generator, names=("Car", "Car", "Pedestrian", "Cyclist"), intensity=None,
               x0: float = 8.0):
    """Non-overlapping boxes on a line (12 m apart), points inside each, and background clutter.

    Returns points (N, 4) float32, boxes (M, 7) float32, names (M,) str.
    """
    boxes, pts = [], []
    for i, name in enumerate(names):
        box = np.array([x0 + 12.0 * i, rng.uniform(-20, 20), rng.uniform(-1, 0), *DIMS[name],
                        rng.uniform(-np.pi, np.pi)], np.float32)
        boxes.append(box)
        local = rng.uniform(-0.45, 0.45, size=(int(rng.integers(30, 60)), 3)) * box[3:6]
        c, s = np.cos(box[6]), np.sin(box[6])
        pts.append(np.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c, local[:, 2]], 1)
                   + box[:3])
    clutter = rng.uniform([-70, -40, -3], [70, 40, 2], size=(3000, 3))
    xyz = np.concatenate(pts + [clutter]).astype(np.float32)
    inten = rng.uniform(0, 1, (len(xyz), 1)) if intensity is None else np.full((len(xyz), 1), intensity)
    return np.concatenate([xyz, inten.astype(np.float32)], 1), np.stack(boxes), np.array(names)


def assert_same_membership(p0, b0, p1, b1):
    """Every point inside (outside) a box before is inside (outside) the same box after, up to 0.1 mm."""
    before = points_in_boxes(p0, b0)
    assert before.any()
    assert np.all(points_in_boxes(p1, b1, margin=1e-4)[before])
    assert not np.any(points_in_boxes(p1, b1, margin=-1e-4)[~before])


def corner_sets_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same 4 BEV corners per box, in any order (a flip reverses the corner order)."""
    return all(np.allclose(np.sort(x.round(4), axis=0), np.sort(y.round(4), axis=0), atol=1e-3) for x, y in zip(a, b))


@pytest.mark.parametrize("axis", ["x", "y"])
def test_flip_mirrors_boxes_and_is_an_involution(axis):
    points, boxes, _ = make_scene(np.random.default_rng(0))
    p1, b1 = flip(points, boxes, axis)
    assert_same_membership(points, boxes, p1, b1)
    mirror = np.array([1, -1]) if axis == "x" else np.array([-1, 1])
    # The flipped box's footprint is the mirror image of the original's: yaw is mirrored correctly.
    assert corner_sets_equal(bev_corners(b1), bev_corners(boxes) * mirror)
    p2, b2 = flip(p1, b1, axis)
    np.testing.assert_allclose(p2, points)
    np.testing.assert_allclose(b2[:, :6], boxes[:, :6])
    np.testing.assert_allclose(np.cos(b2[:, 6]), np.cos(boxes[:, 6]), atol=1e-6)
    np.testing.assert_allclose(np.sin(b2[:, 6]), np.sin(boxes[:, 6]), atol=1e-6)
    assert np.all((b1[:, 6] >= -np.pi) & (b1[:, 6] < np.pi))
    assert points[:, 3].tolist() == p1[:, 3].tolist()  # features untouched


def test_flip_heading_values():
    box = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3]], np.float32)
    _, bx = flip(np.zeros((1, 4), np.float32), box, "x")
    np.testing.assert_allclose(bx[0], [10, -5, -1, 4, 2, 1.5, -0.3], atol=1e-6)
    _, by = flip(np.zeros((1, 4), np.float32), box, "y")
    np.testing.assert_allclose(by[0], [-10, 5, -1, 4, 2, 1.5, math.pi - 0.3], atol=1e-6)


def test_rotation_moves_points_and_boxes_together():
    points, boxes, _ = make_scene(np.random.default_rng(1))
    angle = 0.7
    p1, b1 = rotate(points, boxes, angle)
    assert_same_membership(points, boxes, p1, b1)
    c, s = math.cos(angle), math.sin(angle)
    expected = bev_corners(boxes) @ np.array([[c, s], [-s, c]])
    np.testing.assert_allclose(bev_corners(b1), expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(p1[:, :2], axis=1), np.linalg.norm(points[:, :2], axis=1), rtol=1e-5)
    np.testing.assert_array_equal(p1[:, 2:], points[:, 2:])


def test_scaling_scales_extents_and_keeps_membership():
    points, boxes, _ = make_scene(np.random.default_rng(2))
    p1, b1 = scale(points, boxes, 1.05)
    assert_same_membership(points, boxes, p1, b1)
    np.testing.assert_allclose(np.prod(b1[:, 3:6], 1), np.prod(boxes[:, 3:6], 1) * 1.05 ** 3, rtol=1e-5)
    np.testing.assert_allclose(p1[:, 3], points[:, 3])
    with pytest.raises(ValueError, match="> 0"):
        scale(points, boxes, 0.0)


def test_random_transforms_stay_in_their_ranges():
    points, boxes, _ = make_scene(np.random.default_rng(3))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        _, b1 = random_rotation(points, boxes, rng, (-0.1, 0.2))
        turned = np.arctan2(b1[0, 1], b1[0, 0]) - np.arctan2(boxes[0, 1], boxes[0, 0])
        assert -0.1 - 1e-5 <= turned <= 0.2 + 1e-5
        _, b2 = random_scaling(points, boxes, rng, (0.9, 1.1))
        assert 0.9 - 1e-6 <= b2[0, 3] / boxes[0, 3] <= 1.1 + 1e-6
    flips = [random_flip(points, boxes, np.random.default_rng(s), ("x",))[1][0, 1] for s in range(200)]
    mirrored = np.mean(np.isclose(flips, -boxes[0, 1]))
    assert 0.35 < mirrored < 0.65  # about half, as prob 0.5 says


def test_shuffle_is_a_permutation():
    points, _, _ = make_scene(np.random.default_rng(4))
    shuffled = shuffle_points(points, np.random.default_rng(0))
    assert not np.array_equal(shuffled, points)
    np.testing.assert_array_equal(np.unique(shuffled, axis=0), np.unique(points, axis=0))


# A box driving along its heading at SPEED m/s: its velocity is SPEED (cos yaw, sin yaw). Every transform must keep
# it so (a mirrored or turned car still drives forwards), with the speed scaled as the scene is.
MOVING = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3, 3 * math.cos(0.3), 3 * math.sin(0.3)],
                   [-6.0, 2.0, -1.0, 0.8, 0.8, 1.7, -2.0, 1.2 * math.cos(-2.0), 1.2 * math.sin(-2.0)]], np.float32)


def assert_drives_along_heading(boxes: np.ndarray, speeds) -> None:
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], axis=1)
    np.testing.assert_allclose(boxes[:, 7:9], heading * np.asarray(speeds)[:, None], atol=1e-5)


def test_velocities_flip_with_their_boxes():
    points = np.zeros((1, 4), np.float32)
    _, bx = flip(points, MOVING, "x")  # y -> -y: vy -> -vy
    np.testing.assert_allclose(bx[0], [10, -5, -1, 4, 2, 1.5, -0.3, 3 * math.cos(0.3), -3 * math.sin(0.3)], atol=1e-6)
    _, by = flip(points, MOVING, "y")  # x -> -x: vx -> -vx
    np.testing.assert_allclose(by[0], [-10, 5, -1, 4, 2, 1.5, math.pi - 0.3, -3 * math.cos(0.3), 3 * math.sin(0.3)],
                               atol=1e-6)
    for flipped in (bx, by):
        assert_drives_along_heading(flipped, [3.0, 1.2])
    np.testing.assert_allclose(flip(points, bx, "x")[1][:, 7:], MOVING[:, 7:], atol=1e-6)  # an involution


def test_velocities_turn_scale_and_stay_under_translation():
    points = np.zeros((1, 4), np.float32)
    _, turned = rotate(points, MOVING, math.pi / 2)  # a quarter turn: (vx, vy) -> (-vy, vx)
    np.testing.assert_allclose(turned[0, :2], [-5, 10], atol=1e-5)
    np.testing.assert_allclose(turned[:, 7:9], np.stack([-MOVING[:, 8], MOVING[:, 7]], 1), atol=1e-6)
    assert_drives_along_heading(turned, [3.0, 1.2])
    _, scaled = scale(points, MOVING, 1.1)  # the scene 10 % larger: 10 % more metres per second too
    np.testing.assert_allclose(scaled[:, 7:9], MOVING[:, 7:9] * 1.1, rtol=1e-6)
    np.testing.assert_allclose(scaled[:, 6], MOVING[:, 6])
    moved_points, moved = translate(np.ones((1, 4), np.float32), MOVING, (0.5, -1.0, 0.25))
    np.testing.assert_allclose(moved[:, :3], MOVING[:, :3] + [0.5, -1.0, 0.25], atol=1e-6)
    np.testing.assert_array_equal(moved[:, 3:], MOVING[:, 3:])
    np.testing.assert_allclose(moved_points[0], [1.5, 0.0, 1.25, 1.0])


def test_velocities_follow_their_boxes_through_the_pipeline():
    """Flips, rotation, scaling and translation drawn at random: every box still drives along its heading, at its
    speed times the scale its extents got; points stay in their boxes."""
    pipe = AugmentPipeline(AugmentConfig(flip_axes=("x", "y"), rotation_range=(-math.pi, math.pi),
                                         scale_range=(0.9, 1.1), translation_std=(0.5, 0.5, 0.5)))
    points = np.concatenate([np.column_stack([np.random.default_rng(0).uniform(-0.25, 0.25, (20, 3)) + b[:3],
                                              np.zeros(20)]) for b in MOVING]).astype(np.float32)
    for seed in range(12):
        p, b, n = pipe(points, MOVING, ["car", "pedestrian"], np.random.default_rng(seed))
        factor = b[0, 3] / MOVING[0, 3]
        assert 0.9 - 1e-6 <= factor <= 1.1 + 1e-6
        assert_drives_along_heading(b, [3.0 * factor, 1.2 * factor])
        assert points_in_boxes(p, b[:, :7], margin=1e-4).any(axis=1).all()
    shifts = [random_translation(points, MOVING, np.random.default_rng(s), (0.5, 0.0, 2.0))[1][0, :3] - MOVING[0, :3]
              for s in range(300)]
    assert np.std(shifts, axis=0) == pytest.approx([0.5, 0.0, 2.0], rel=0.15, abs=1e-6)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(M, 7\)"):
        rotate(np.zeros((3, 4), np.float32), np.zeros((2, 6)), 0.1)
    with pytest.raises(ValueError, match=r"\(N, >=3\)"):
        rotate(np.zeros((3,), np.float32), np.zeros((0, 7)), 0.1)
    with pytest.raises(ValueError, match="flip axis"):
        flip(np.zeros((3, 4), np.float32), np.zeros((0, 7)), "z")


# ------------------------------------------------------------------------------------------ gt-sampling
@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A database of 40 frames (80 cars, 40 pedestrians, 40 cyclists) whose points carry PASTED_INTENSITY."""
    root = tmp_path_factory.mktemp("db")
    rng = np.random.default_rng(10)
    frames = []
    for i in range(40):
        points, boxes, names = make_scene(rng, intensity=PASTED_INTENSITY, x0=-20.0)
        difficulty = np.array([0, -1, 1, 2])  # the second car of each frame is "unknown" difficulty
        frames.append(DbFrame(f"{i:06d}", points, boxes, names, difficulty))
    build_gt_database(frames, root, "gt.bin", "dbinfos.pkl", progress=False)
    return GtDatabase.load("dbinfos.pkl", root)


def polygon(box: np.ndarray) -> Polygon:
    return Polygon(bev_corners(box[None])[0])


def test_gt_sampling_invariants(database):
    groups = {"Car": 12, "Pedestrian": 6, "Cyclist": 5}
    sampler = GtSampler(database, GtSamplingConfig("dbinfos.pkl", groups, min_points={"Car": 45},
                                                   filter_difficulty=(-1,)))
    assert all(o.num_points >= 45 and o.difficulty != -1 for o in sampler.pools["Car"])
    assert all(o.num_points >= 5 for o in sampler.pools["Pedestrian"])
    total_pasted = 0
    for seed in range(8):
        points, boxes, names = make_scene(np.random.default_rng(100 + seed))
        p1, b1, n1 = sampler(points, boxes, names, np.random.default_rng(seed))
        new = b1[len(boxes):]
        total_pasted += len(new)
        np.testing.assert_array_equal(b1[: len(boxes)], boxes)
        for cls, target in groups.items():
            assert np.sum(names == cls) <= np.sum(n1 == cls) <= target  # per-class counts respected
        # No two boxes (scene or pasted) overlap: exact polygon check, independent of the IoU code.
        polys = [polygon(b) for b in b1]
        for i in range(len(boxes), len(b1)):
            for j in range(len(b1)):
                if i != j:
                    assert polys[i].intersection(polys[j]).area < 1e-6, (i, j)
        pasted = p1[:, 3] == PASTED_INTENSITY
        inside_new = points_in_boxes(p1, new, margin=1e-4)
        assert np.all(inside_new[pasted].any(axis=1))  # every pasted point lies in a pasted box
        assert not np.any(points_in_boxes(p1[~pasted], new, margin=-1e-4))  # scene points under them removed
        expected_rows = sum(int((points_in_boxes(p1[pasted], b[None])[:, 0]).sum()) for b in new)
        assert expected_rows >= pasted.sum() > 0
        # Scene points outside the pasted boxes all survive.
        kept = ~points_in_boxes(points, new).any(axis=1)
        assert (~pasted).sum() == kept.sum()
    assert total_pasted > 8 * 5  # the sampler pastes more than a handful


def test_gt_sampling_is_deterministic_and_respects_existing_counts(database):
    sampler = GtSampler(database, GtSamplingConfig("dbinfos.pkl", {"Car": 2, "Cyclist": 3}))
    points, boxes, names = make_scene(np.random.default_rng(5))  # already has 2 cars
    a = sampler(points, boxes, names, np.random.default_rng(1))
    b = sampler(points, boxes, names, np.random.default_rng(1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.sum(a[2] == "Car") == 2  # target already met: no car pasted
    assert 1 < np.sum(a[2] == "Cyclist") <= 3


def test_pasted_objects_get_zeros_in_the_columns_the_database_lacks(database):
    """A multi-sweep scene has a time_lag column the database's objects lack: they are pasted with time lag 0 (the
    current sweep); without fill_columns the mismatch is an error that says to rebuild the database."""
    points, boxes, names = make_scene(np.random.default_rng(5))
    lagged = np.column_stack([points, np.full(len(points), 0.3, np.float32)])
    config = GtSamplingConfig("dbinfos.pkl", {"Cyclist": 3})
    p1, b1, _ = GtSampler(database, config, fill_columns=1)(lagged, boxes, names, np.random.default_rng(1))
    pasted = p1[:, 3] == PASTED_INTENSITY
    assert len(b1) > len(boxes) and pasted.any()
    assert np.all(p1[pasted, 4] == 0.0) and np.all(p1[~pasted, 4] == np.float32(0.3))
    with pytest.raises(ValueError, match="rebuild the database"):
        GtSampler(database, config)(lagged, boxes, names, np.random.default_rng(1))


def test_gt_sampling_carries_the_database_velocities(tmp_path, database):
    """Scene boxes with velocities (M, 9) get pasted boxes with their database objects' velocities; a database
    without velocities is an error that says to rebuild it."""
    rng = np.random.default_rng(11)
    frames, speeds = [], {}
    for i in range(10):
        points, boxes, names = make_scene(rng, intensity=PASTED_INTENSITY, x0=-20.0)
        velocity = np.stack([np.full(len(boxes), float(i)), np.arange(len(boxes), dtype=float)], 1)  # (frame, index)
        frames.append(DbFrame(f"{i:06d}", points, boxes, names, np.zeros(len(boxes)), velocity))
    build_gt_database(frames, tmp_path, "gt.bin", "dbinfos.pkl", progress=False)
    db = GtDatabase.load("dbinfos.pkl", tmp_path)
    sampler = GtSampler(db, GtSamplingConfig("dbinfos.pkl", {"Car": 6, "Pedestrian": 4}, filter_difficulty=()))
    points, boxes, names = make_scene(np.random.default_rng(12))
    moving = np.column_stack([boxes, np.full((len(boxes), 2), 7.0)]).astype(np.float32)
    p1, b1, n1 = sampler(points, moving, names, np.random.default_rng(0))
    assert b1.shape[1] == 9 and len(b1) > len(boxes)
    np.testing.assert_array_equal(b1[: len(boxes)], moving)
    for box, name in zip(b1[len(boxes):], n1[len(boxes):]):
        frame_index, gt_idx = int(box[7]), int(box[8])  # the velocity names the object it came from
        np.testing.assert_array_equal(box[:7], frames[frame_index].boxes[gt_idx])
        assert frames[frame_index].names[gt_idx] == name
    # The module's database was written without velocities: pasting from it into such a scene is refused.
    with pytest.raises(ValueError, match=r"velocities .* rebuild the database"):
        GtSampler(database, GtSamplingConfig("dbinfos.pkl", {"Car": 6}))(points, moving, names,
                                                                          np.random.default_rng(0))


def test_pasted_objects_keep_only_the_sweeps_the_scene_has(tmp_path):
    """A multi-sweep database (each point's time_lag in column 4: 0 for the key frame, 0.05 s per earlier sweep)
    pasted into a scene of three sweeps (time lags up to 0.1 s): pasted points from older sweeps are left out."""
    rng = np.random.default_rng(13)
    frames = []
    for i in range(6):
        points, boxes, names = make_scene(rng, names=("Car", "Car"), intensity=PASTED_INTENSITY, x0=-20.0)
        lag = 0.05 * rng.integers(0, 10, len(points)) + rng.uniform(-0.004, 0.004, len(points))
        frames.append(DbFrame(f"{i:06d}", np.column_stack([points, lag.clip(0)]), boxes, names, np.zeros(2)))
    build_gt_database(frames, tmp_path, "gt.bin", "dbinfos.pkl", progress=False)
    db = GtDatabase.load("dbinfos.pkl", tmp_path)
    config = GtSamplingConfig("dbinfos.pkl", {"Car": 6}, filter_difficulty=())
    points, boxes, names = make_scene(np.random.default_rng(14), names=("Car",))
    scene = np.column_stack([points, 0.05 * np.random.default_rng(15).integers(0, 3, len(points))]).astype(np.float32)
    p1, b1, _ = GtSampler(db, config, time_lag_column=4)(scene, boxes, names, np.random.default_rng(0))
    pasted = p1[:, 3] == PASTED_INTENSITY
    assert len(b1) > 1 and pasted.any()
    assert p1[pasted, 4].max() <= 0.1 + SWEEP_AGE_TOLERANCE
    assert set(np.round(p1[pasted, 4] / 0.05).astype(int)) == {0, 1, 2}
    # Without the column named, every sweep of the database is pasted.
    p2, _, _ = GtSampler(db, config)(scene, boxes, names, np.random.default_rng(0))
    assert p2[p2[:, 3] == PASTED_INTENSITY, 4].max() > 0.4


def test_bev_overlap_matches_polygons():
    rng = np.random.default_rng(6)
    a = np.concatenate([rng.uniform(-5, 5, (30, 2)), np.zeros((30, 1)), rng.uniform(0.5, 4, (30, 3)),
                        rng.uniform(-np.pi, np.pi, (30, 1))], 1).astype(np.float32)
    got = bev_overlap(a, a)
    polys = [polygon(b) for b in a]
    area = np.array([[p.intersection(q).area for q in polys] for p in polys])
    assert np.all(got[area > 1e-4])  # never misses a collision
    assert not np.any(got[area < 1e-9])  # nor invents one (rotated test, not a bounding-circle one)
    assert (area < 1e-9).any() and (area > 1e-4).sum() > 30  # both kinds of pair occur
    assert bev_overlap(a, np.zeros((0, 7))).shape == (30, 0)


# ------------------------------------------------------------------------------------------ pipeline
def test_pipeline_from_dict_is_reproducible_and_consistent(database):
    cfg = AugmentConfig.from_dict({
        "gt_sampling": {"dbinfos_path": "dbinfos.pkl", "sample_groups": {"Car": 8, "Pedestrian": 4},
                        "filter_difficulty": [-1]},
        "flip_axes": ["x", "y"], "rotation_range": [-0.5, 0.5], "scale_range": [0.9, 1.1],
    })
    pipe = AugmentPipeline(cfg, database=database)
    points, boxes, names = make_scene(np.random.default_rng(7))
    out1 = pipe(points, boxes, names, np.random.default_rng(3))
    out2 = pipe(points, boxes, names, np.random.default_rng(3))
    out3 = pipe(points, boxes, names, np.random.default_rng(4))
    for x, y in zip(out1, out2):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(out1[1], out3[1])
    p, b, n = out1
    assert p.dtype == np.float32 and b.dtype == np.float32 and len(b) == len(n) > len(boxes)
    # Original objects keep exactly their points through the whole pipeline.
    before = points_in_boxes(points, boxes).sum(axis=0)
    after = points_in_boxes(p, b[: len(boxes)], margin=1e-4).sum(axis=0)
    np.testing.assert_array_equal(after, before)


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="rotation_rnge"):
        AugmentConfig.from_dict({"rotation_rnge": [0, 1]})
    with pytest.raises(ValueError, match="low 1.0 is above high 0.0"):
        AugmentConfig.from_dict({"scale_range": [1, 0]})
    with pytest.raises(ValueError, match="flip_axes"):
        AugmentConfig.from_dict({"flip_axes": ["z"]})
    with pytest.raises(ValueError, match="sample_group"):
        AugmentConfig.from_dict({"gt_sampling": {"dbinfos_path": "x", "sample_group": {}}})
    with pytest.raises(ValueError, match="root"):
        AugmentPipeline(AugmentConfig(gt_sampling=GtSamplingConfig("x.pkl", {"Car": 1})))
    defaults = AugmentConfig()
    assert defaults.rotation_range == pytest.approx((-math.pi / 4, math.pi / 4))
    assert defaults.scale_range == (0.95, 1.05)


def test_part_dropout_takes_one_part_of_each_person_and_nothing_else():
    rng = np.random.default_rng(3)
    points, boxes, names = make_scene(rng, names=("Car", "Pedestrian", "Cyclist", "Pedestrian"))
    inside = points_in_boxes(points[:, :3], boxes)
    pipeline = AugmentPipeline(AugmentConfig.from_dict({
        "part_dropout": {"classes": ["Pedestrian", "Cyclist"], "prob": 1.0, "grid": [2, 2]},
        "flip_axes": [], "rotation_range": None, "scale_range": None, "shuffle_points": False}))
    out, out_boxes, out_names = pipeline(points, boxes, names, np.random.default_rng(0))
    np.testing.assert_array_equal(out_boxes, boxes)  # labels stay, only returns go
    assert list(out_names) == list(names)
    after = points_in_boxes(out[:, :3], boxes)
    # the car and everything outside the boxes keep every return
    assert after[:, 0].sum() == inside[:, 0].sum()
    assert (~after.any(1)).sum() == (~inside.any(1)).sum()
    for k in (1, 2, 3):
        kept = out[after[:, k], :2] - boxes[k, :2]
        c, s = math.cos(boxes[k, 6]), math.sin(boxes[k, 6])
        u, v = c * kept[:, 0] + s * kept[:, 1], -s * kept[:, 0] + c * kept[:, 1]
        quadrants = {(bool(a), bool(b)) for a, b in zip(u >= 0, v >= 0)}
        assert len(quadrants) == 3  # one quarter of the footprint is empty, the other three are not
        assert 0.5 * inside[:, k].sum() < after[:, k].sum() < inside[:, k].sum()
    # off for a class not listed, and nothing at all with prob 0
    none = AugmentPipeline(AugmentConfig.from_dict({"part_dropout": {"prob": 0.0}, "shuffle_points": False}))
    assert len(none(points, boxes, names, np.random.default_rng(0))[0]) == len(points)
    unlisted = AugmentPipeline(AugmentConfig.from_dict({"part_dropout": {"classes": ["Van"], "prob": 1.0}}))
    assert len(unlisted(points, boxes, names, np.random.default_rng(0))[0]) == len(points)


def test_part_dropout_config_errors_are_named():
    with pytest.raises(ValueError, match="part_dropout: unknown keys"):
        AugmentConfig.from_dict({"part_dropout": {"probability": 0.5}})
    with pytest.raises(ValueError, match="prob must be a chance"):
        AugmentConfig.from_dict({"part_dropout": {"prob": 1.5}})
    with pytest.raises(ValueError, match="grid: two whole numbers"):
        AugmentConfig.from_dict({"part_dropout": {"grid": [2, 0]}})
