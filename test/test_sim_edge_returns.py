"""sparsekd-sim --edge-returns (data/sim/edge_returns.py): rays grazing a silhouette return a range between the
object and what lies behind it, and simulated people stop reading flatter than real ones."""
import numpy as np
import pytest

from sparsekd_core.cli.sim import build_parser
from sparsekd_core.data.sim.edge_returns import EDGE_STEP, MIXED_REACH, mix_edge_returns
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.eval.domain_gap import FLAT, returns_thickness
from sparsekd_core.geometry.boxes import points_in_boxes

BEAMS = 2


def ranges_of(columns: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """One revolution of ``len(columns)`` firings of BEAMS rays each, every ray of a firing at that range (None: no
    return), in firing order as a scan casts them."""
    t = np.repeat([np.nan if c is None else c for c in columns], BEAMS).astype(np.float32)
    return np.nan_to_num(t, nan=np.inf), np.isfinite(t)


def test_only_rays_next_to_something_farther_are_moved_back_and_never_past_it():
    # a post at 10 m in firings 3-5 before a wall at 10.6 m, a person at 20 m in firing 8 before open sky
    t, valid = ranges_of([10.6, 10.6, 10.6, 10.0, 10.0, 10.0, 10.6, None, 20.0, None])
    mixed_t, mixed = mix_edge_returns(t, valid, BEAMS, 1.0, np.random.default_rng(0))
    by_firing = mixed.reshape(-1, BEAMS).all(axis=1)
    assert by_firing.tolist() == [False, False, False, True, False, True, False, False, False, False]
    edge = mixed_t[mixed]
    assert np.all((edge > 10.0) & (edge <= 10.6))  # between the post and the wall behind it
    assert np.array_equal(mixed_t[~mixed], t[~mixed])  # the wall, the post's middle, the person before the sky
    assert len(np.unique(edge)) == len(edge)  # each ray its own mixture


def test_the_share_and_the_reach_of_the_mixing():
    far_wall = [30.0, 10.0] * 2000  # every ray on an edge, the wall 20 m behind
    t, valid = ranges_of(far_wall)
    mixed_t, mixed = mix_edge_returns(t, valid, BEAMS, 0.5, np.random.default_rng(1))
    near = t == 10.0
    assert mixed[near].mean() == pytest.approx(0.5, abs=0.03) and not mixed[~near].any()
    assert mixed_t[mixed].max() <= 10.0 + MIXED_REACH  # a mixture lies at most MIXED_REACH back
    assert mixed_t[mixed].mean() == pytest.approx(10.0 + MIXED_REACH / 2, abs=0.03)
    step = [10.0 + 0.9 * EDGE_STEP, 10.0] * 10  # a neighbour less than EDGE_STEP farther: no edge
    same, moved = mix_edge_returns(*ranges_of(step), BEAMS, 1.0, np.random.default_rng(1))
    assert not moved.any() and np.array_equal(same, ranges_of(step)[0])
    none, moved = mix_edge_returns(t, valid, BEAMS, 0.0, np.random.default_rng(1))
    assert not moved.any() and np.array_equal(none, t)


def flat_share(edge_returns: float) -> tuple[float, int, int]:
    """The share of labelled pedestrians 5-40 m away that read flat (sparsekd-gap's measure), over 8 scenes of seed 5,
    and the frames' points that belong to no object."""
    flat, world = [], 0
    for scene_index in range(8):
        frame = SnapshotScene(PRESETS["hdl64"], seed=5, scene_index=scene_index,
                              options=SimOptions(edge_returns=edge_returns)).frame(0)
        people = frame.boxes[(frame.kinds == "pedestrian") & (np.hypot(*frame.boxes[:, :2].T) >= 5)
                             & (np.hypot(*frame.boxes[:, :2].T) < 40)]
        inside = points_in_boxes(frame.points[:, :3], people)
        for k, box in enumerate(people):
            thickness = returns_thickness(frame.points, box, inside[:, k])
            if thickness is not None:
                flat.append(thickness < FLAT)
        world += int((frame.point_label < 0).sum())
    return float(np.mean(flat)), len(flat), world


def test_simulated_people_with_edge_returns_read_flat_far_less_often():
    """Ideal rays: about a quarter of the simulated pedestrians read flatter than any real one (0.066 m and more);
    with half the edge rays mixed, under a tenth on 40 frames (session 54). The mixed returns are world points."""
    plain, n_plain, world_plain = flat_share(0.0)
    mixed, n_mixed, world_mixed = flat_share(0.5)
    assert n_plain > 60 and n_mixed > 60
    assert plain > 0.15 and mixed < 0.6 * plain, (plain, mixed)
    assert world_mixed > world_plain


def test_the_option_is_a_share_and_on_the_command_line():
    with pytest.raises(ValueError, match="edge_returns must be a share"):
        SimOptions(edge_returns=1.5)
    assert build_parser().parse_args(["--edge-returns", "0.5"]).edge_returns == 0.5
    assert build_parser().parse_args([]).edge_returns == 0.0
