"""sparsekd-sim --open-squares (world.StreetLayout.with_squares, placement.populate's ``squares``): the street opens
onto squares, open ground where the buildings step back, with pedestrians and cyclists crossing them at any heading;
every version-4 street ran between buildings from end to end with its cyclists along it."""
import numpy as np
import pytest

from sparsekd_core.cli.sim import build_parser
from sparsekd_core.data.sim.placement import SQUARE_EDGE
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.world import SQUARE_DEPTH, SQUARE_GAP, SQUARE_LENGTH, StreetLayout, build_world


def city_street(seed: int = 4) -> StreetLayout:
    layout = StreetLayout.sample(np.random.default_rng(seed), (-150.0, 150.0))
    layout.kind = "city"  # buildings along the whole street, but where a square opens
    return layout


def test_squares_are_drawn_along_the_whole_street_within_their_ranges():
    layout = city_street().with_squares(np.random.default_rng(0))
    assert len(layout.squares) >= 3
    starts = sorted({s[0] for s in layout.squares})
    assert all(SQUARE_GAP[0] + SQUARE_LENGTH[0] <= b - a <= SQUARE_GAP[1] + SQUARE_LENGTH[1]
               for a, b in zip(starts, starts[1:]))
    for x0, x1, side, depth in layout.squares:
        assert side in (-1, 1) and SQUARE_DEPTH[0] <= depth <= SQUARE_DEPTH[1]
        assert x1 - x0 <= SQUARE_LENGTH[1] and x1 <= 150.0
        assert layout.square_depth(x0 + 1, x0 + 2, side) == depth
        assert layout.square_depth(x1 + 0.01, x1 + 0.02, side) in (0.0, *[s[3] for s in layout.squares])
    assert layout.lanes == city_street().lanes  # the same street across


def test_buildings_step_back_behind_a_square_and_the_street_draws_the_same_numbers():
    """Rays cast level, 1.5 m up, out across a square from just short of the street's building line meet facades,
    walls, hedges and fences there in a plain city street, and fly on over the square's ground where a square opens,
    but for what stands on it; the street is built from the same draws either way."""
    plain = city_street()
    squared = plain.with_squares(np.random.default_rng(0))
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    without = build_world(plain, a)
    with_squares = build_world(squared, b, squares_rng=np.random.default_rng(2))
    assert a.random() == b.random()
    assert len(with_squares.obstacles) > len(without.obstacles)  # trees, bollards, benches, bins, lamps on squares
    stopped = {False: [], True: []}  # per ray across a square: does something stand on the square's ground?
    for x0, x1, side, depth in squared.squares:
        line = squared.building_line(side)
        xs = np.arange(x0 + 12.0, x1 - 12.0, 0.25)
        rays = np.zeros((len(xs), 6), np.float32)
        rays[:, 0], rays[:, 1], rays[:, 2], rays[:, 4] = xs, side * (line - 0.3), 1.5, side
        for opened, world in ((False, without), (True, with_squares)):
            reach = line - 0.3 + world.ray_caster().cast_rays(rays, max_distance=200.0).t_hit
            stopped[opened] += list(reach < line + depth - 1.0)
    assert len(stopped[True]) > 60
    assert np.mean(stopped[False]) > 0.5  # facades, walls, hedges, fences at the building line
    assert np.mean(stopped[True]) < 0.15  # only a trunk or a lamp post now and then


def frames(share: float, scenes: int = 8):
    return [SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=k, options=SimOptions(open_squares=share)).frame(0)
            for k in range(scenes)]


def test_people_cross_the_squares_at_any_heading_and_nobody_overlaps():
    from sparsekd_core.geometry.iou import iou_bev

    plain, squared = frames(0.0), frames(1.0)
    cyclists = lambda fs: np.concatenate([f.boxes[f.kinds == "cyclist"] for f in fs])  # noqa: E731
    across = lambda b: float(np.mean(np.abs(np.sin(b[:, 6])) > np.sin(np.radians(45))))  # noqa: E731
    assert len(cyclists(squared)) > len(cyclists(plain))
    assert across(cyclists(squared)) > across(cyclists(plain)) + 0.1  # more of them turned across the street
    for f in squared:
        iou = iou_bev(f.boxes, f.boxes)
        np.fill_diagonal(iou, 0.0)
        assert iou.max() == 0.0
    # off the street, beyond its building line, there are people on squares only
    def beyond(fs):
        return sum(int((np.isin(f.kinds, ["pedestrian", "cyclist"])
                        & (np.abs(f.boxes[:, 1]) > 25.0 + SQUARE_EDGE)).sum()) for f in fs)
    assert beyond(squared) > beyond(plain)


def test_the_option_is_off_by_default_and_draws_nothing_then():
    assert build_parser().parse_args([]).open_squares == 0.0
    assert build_parser().parse_args(["--open-squares", "0.7"]).open_squares == 0.7
    with pytest.raises(ValueError, match="open_squares"):
        SimOptions(open_squares=1.5)
    off, default = frames(0.0, scenes=2), [SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=k).frame(0)
                                           for k in range(2)]
    for a, b in zip(off, default):
        assert np.array_equal(a.points, b.points) and np.array_equal(a.boxes, b.boxes)
    scene = SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=0, options=SimOptions(open_squares=1.0))
    again = SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=0, options=SimOptions(open_squares=1.0))
    assert scene.layout.squares == again.layout.squares and len(scene.layout.squares) > 0
    assert np.array_equal(scene.frame(1).points, again.frame(1).points)
    assert frame_rng(3, 0, 0, 21).random() == frame_rng(3, 0, 0, 21).random()
