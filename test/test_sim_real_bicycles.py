"""sparsekd-sim --real-bicycles (actors.bicycle_builder's ``real``): bicycles built as a LiDAR sees real ones, open
wheels (tyre, rim and hub, where the version-4 streets' solid discs return the whole wheel from the side) and a saddle
behind the bottom bracket at a real height with the rider on it (version-4 riders sit over the middle of the frame)."""
import numpy as np
import pytest

from sparsekd_core.cli.sim import build_parser
from sparsekd_core.data.sim.actors import (HUB_RADIUS, HUB_WIDTH, RIM_SECTION, SADDLE_HEIGHT, SEAT_TUBE_ANGLE,
                                           TYRE_SECTION, _wheel, bicycle_builder, cyclist_mesh, pedalling_rider_mesh,
                                           real_seat)
from sparsekd_core.data.sim.meshes import MeshBuilder
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.eval.domain_gap import rider_on_bicycle
from sparsekd_core.geometry.boxes import points_in_boxes

KITTI_CYCLIST = np.array([1.76, 0.6, 1.73])


def test_an_open_wheel_is_tyre_rim_and_hub_with_nothing_between():
    r, centre = 0.34, np.array([0.5, 0.0, 0.34])
    disc, wheel = MeshBuilder(), MeshBuilder()
    _wheel(disc, centre, r, 0.3, 0.05, open_wheel=False)
    _wheel(wheel, centre, r, 0.3, 0.05, open_wheel=True)
    for mesh in (disc.build(), wheel.build()):
        d = np.hypot(*(mesh.vertices[:, [0, 2]] - centre[[0, 2]]).T)
        assert d.max() == pytest.approx(r, abs=1e-4)  # the tyre's outside is the wheel's radius
    v = wheel.build().vertices
    d = np.hypot(*(v[:, [0, 2]] - centre[[0, 2]]).T)
    hub, rim = d <= HUB_RADIUS + 1e-4, d >= r - TYRE_SECTION - RIM_SECTION - 1e-4
    assert np.all(hub | rim)  # no vertex, so no triangle, between the hub and the rim
    assert np.abs(v[:, 1]).max() == pytest.approx(HUB_WIDTH / 2, abs=1e-5)
    # the tyre is a closed ring: its outer edge runs all round the wheel
    angles = np.degrees(np.arctan2(v[rim, 2] - centre[2], v[rim, 0] - centre[0]))
    assert np.histogram(angles, bins=12, range=(-180, 180))[0].min() > 0


def test_a_real_bicycle_draws_the_same_numbers_and_has_its_saddle_behind_the_bracket():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    disc = bicycle_builder(1.7, 0.0, a).build()
    real = bicycle_builder(1.7, 0.0, b, real=True).build()
    assert a.random() == b.random()
    r, wx = 0.34, 1.7 / 2 - 0.34
    bracket, saddle = real_seat(wx, r, 0.0, SADDLE_HEIGHT)
    assert saddle[1] - bracket[1] == pytest.approx(SADDLE_HEIGHT)
    assert np.degrees(np.arctan2(saddle[1] - bracket[1], bracket[0] - saddle[0])) == pytest.approx(SEAT_TUBE_ANGLE)
    assert -wx < saddle[0] < bracket[0] < 0  # over the rear wheel's front half, behind the bracket
    # the saddle is the bicycle's top, at the real height; the version-4 bicycle's top is its handlebar, lower
    assert real.vertices[:, 2].max() == pytest.approx(saddle[1], abs=1e-5)
    assert disc.vertices[:, 2].max() < saddle[1] - 0.1


@pytest.mark.parametrize("build", [
    lambda seed, real: cyclist_mesh(KITTI_CYCLIST, np.random.default_rng(seed), real=real),
    lambda seed, real: pedalling_rider_mesh(KITTI_CYCLIST, np.random.default_rng(seed), real=real)])
def test_riders_of_real_bicycles_sit_over_the_rear_half(build):
    """Head and shoulders (above 1.25 m): version-4 riders a median 0.16-0.20 m ahead of the box centre; on real
    bicycles behind it, as the real KITTI cyclists' returns are (-0.19 m; docs/results.md 'Real bicycles')."""
    def upper(real: bool) -> float:
        return float(np.median([np.median(m.vertices[m.vertices[:, 2] > 1.25 - KITTI_CYCLIST[2] / 2, 0])
                                for m in (build(seed, real) for seed in range(6))]))

    assert upper(False) > 0.1
    assert upper(True) < -0.02


def cyclists(share: float, scenes: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over ``scenes`` scenes of seed 7 with cyclists in the traffic lane: sparsekd-gap's figures of where the rider
    sits (eval/domain_gap.rider_on_bicycle) for each cyclist 5-40 m away seen from the side, and every frame's
    cyclists' and other road users' boxes."""
    riders, cyclist_boxes, others = [], [], []
    for scene_index in range(scenes):
        frame = SnapshotScene(PRESETS["hdl64"], seed=7, scene_index=scene_index,
                              options=SimOptions(real_bicycles=share, lane_cyclists=1.0)).frame(0)
        boxes = frame.boxes
        distance = np.hypot(*boxes[:, :2].T)
        chosen = (frame.kinds == "cyclist") & (distance >= 5) & (distance < 40)
        inside = points_in_boxes(frame.points[:, :3], boxes[chosen]).astype(bool)
        riders += [rider_on_bicycle(frame.points, box, inside[:, k]) for k, box in enumerate(boxes[chosen])]
        cyclist_boxes.append(boxes[frame.kinds == "cyclist"])
        others.append(boxes[frame.kinds != "cyclist"])
    return (np.array([r for r in riders if r is not None]), np.concatenate(cyclist_boxes), np.concatenate(others))


def test_real_bicycles_put_the_rider_behind_the_centre_over_fewer_low_returns_and_change_nothing_else():
    """16 scenes of seed 7, 32 cyclists seen from the side: head and shoulders a median 0.14 m ahead of the box centre
    on the version-4 bicycles, 0.15 m behind it on real ones; returns below 0.9 m 0.67 -> 0.58 (the 25 held-out KITTI
    sweeps' riders: 0.20 m behind, 0.59; docs/results.md 'Real bicycles')."""
    disc, disc_riders, disc_others = cyclists(0.0)
    real, riders, others = cyclists(1.0)
    assert len(disc) >= 25 and len(real) >= 25
    assert np.median(disc[:, 0]) > 0.05 and np.median(real[:, 0]) < -0.05, (np.median(disc, 0), np.median(real, 0))
    assert np.median(real[:, 1]) < np.median(disc[:, 1]) - 0.05
    # the same cyclists where they were, but for the odd one that another's wheel or rider hides or no longer hides
    kept = {tuple(box) for box in disc_riders} & {tuple(box) for box in riders}
    assert len(kept) >= 0.95 * max(len(riders), len(disc_riders)), (len(kept), len(riders), len(disc_riders))
    same = {tuple(box) for box in others} & {tuple(box) for box in disc_others}
    assert len(same) >= 0.99 * max(len(others), len(disc_others)), (len(same), len(others), len(disc_others))


def test_the_option_is_a_seeded_share_of_scenes_off_by_default_and_on_the_command_line():
    def rider(scene_index: int, share: float) -> np.ndarray:
        scene = SnapshotScene(PRESETS["hdl64"], seed=5, scene_index=scene_index,
                              options=SimOptions(real_bicycles=share))
        return scene.library.mesh("cyclist", KITTI_CYCLIST, True, np.random.default_rng(0)).vertices

    drawn = [len(rider(s, 0.5)) != len(rider(s, 0.0)) for s in range(12)]
    assert 2 <= sum(drawn) <= 10
    assert drawn == [len(rider(s, 0.5)) != len(rider(s, 0.0)) for s in range(12)]
    assert all(len(rider(s, 1.0)) != len(rider(s, 0.0)) for s in range(3))
    with pytest.raises(ValueError, match="real_bicycles must be a share"):
        SimOptions(real_bicycles=-0.1)
    assert build_parser().parse_args(["--real-bicycles", "0.8"]).real_bicycles == 0.8
    assert build_parser().parse_args([]).real_bicycles == 0.0
