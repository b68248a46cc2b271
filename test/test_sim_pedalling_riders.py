"""sparsekd-sim --pedalling-riders (actors.pedalling_rider_mesh): riders with bent legs on the pedals, knees apart,
broad shoulders and arms bent out to the grips, which read wider to a LiDAR than the upright riders on straight legs
close together of the version-4 streets."""
import numpy as np
import pytest

from sparsekd_core.cli.sim import build_parser
from sparsekd_core.data.sim.actors import (KNEE_Y, MESH_MARGIN, PEDAL_Y, _knee, cyclist_mesh,
                                           pedalling_rider_mesh)
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.eval.domain_gap import returns_thickness
from sparsekd_core.geometry.boxes import points_in_boxes

KITTI_CYCLIST = np.array([1.76, 0.6, 1.73])


def test_a_knee_bends_forward_with_thigh_and_shin_of_the_same_length():
    hip = np.array([-0.2, 0.0])
    for foot in (np.array([-0.1, -0.6]), np.array([0.05, -0.35]), np.array([-0.25, -0.45])):
        knee = _knee(hip, foot, 0.36)
        assert np.linalg.norm(knee - hip) == pytest.approx(0.36, abs=1e-6)
        assert np.linalg.norm(knee - foot) == pytest.approx(0.36, abs=1e-6)
        d = foot - hip
        assert knee[0] > hip[0] + (knee[1] - hip[1]) * d[0] / d[1]  # ahead of the straight line from hip to foot


def test_a_pedalling_rider_fills_its_box_wider_than_an_upright_one_and_varies():
    meshes = [pedalling_rider_mesh(KITTI_CYCLIST, np.random.default_rng(seed)) for seed in range(6)]
    half = KITTI_CYCLIST / 2
    for mesh in meshes:
        v = mesh.vertices
        assert np.all(np.abs(v[:, :2]) <= half[:2] - MESH_MARGIN + 1e-5)
        assert v[:, 2].min() > -half[2] and v[:, 2].max() <= half[2] - MESH_MARGIN + 1e-5
        legs = v[(v[:, 2] > -half[2] + 0.35) & (v[:, 2] < -half[2] + 0.75)]  # knee and shin height
        assert np.abs(legs[:, 1]).max() >= KNEE_Y  # knees apart, beyond the pedals' PEDAL_Y
    upright = cyclist_mesh(KITTI_CYCLIST, np.random.default_rng(0)).vertices
    chest = [m.vertices[np.abs(m.vertices[:, 2] - 0.35) < 0.1] for m in meshes]
    assert min(np.ptp(c[:, 1]) for c in chest) > np.ptp(upright[np.abs(upright[:, 2] - 0.35) < 0.1][:, 1]) + 0.03
    assert PEDAL_Y < KNEE_Y
    # each draws its own crank angle: one foot (right of the frame) is low on some riders, high on others
    foot = [m.vertices[m.vertices[:, 1] > 0.05, 2].min() for m in meshes]
    assert np.ptp(foot) > 0.1, foot


def riders(share: float, scenes: int = 6) -> tuple[list[float], list[int], np.ndarray]:
    """The returns' thickness (sparsekd-gap's) and count of labelled cyclists 5-40 m away over ``scenes`` scenes of
    seed 7 with cyclists in the traffic lane, and every frame's cars' and pedestrians' boxes."""
    thickness, counts, others = [], [], []
    for scene_index in range(scenes):
        frame = SnapshotScene(PRESETS["hdl64"], seed=7, scene_index=scene_index,
                              options=SimOptions(pedalling_riders=share, lane_cyclists=1.0)).frame(0)
        distance = np.hypot(*frame.boxes[:, :2].T)
        chosen = (frame.kinds == "cyclist") & (distance >= 5) & (distance < 40)
        inside = points_in_boxes(frame.points[:, :3], frame.boxes[chosen])
        for k, box in enumerate(frame.boxes[chosen]):
            t = returns_thickness(frame.points, box, inside[:, k].astype(bool))
            if t is not None:
                thickness.append(t)
        counts += frame.num_points[chosen].tolist()
        others.append(frame.boxes[frame.kinds != "cyclist"])
    return thickness, counts, np.concatenate(others)


def test_pedalling_riders_read_thicker_and_return_more_and_change_nothing_else_in_the_street():
    """6 scenes of seed 7: upright riders' median thickness 0.100 m, pedalling ones' 0.127 m; returns 89 -> 105."""
    plain, plain_counts, plain_others = riders(0.0)
    pedalling, counts, others = riders(1.0)
    assert len(plain) >= 15 and len(pedalling) >= 15
    assert np.median(pedalling) > np.median(plain) + 0.015, (np.median(plain), np.median(pedalling))
    assert np.median(counts) > np.median(plain_counts)
    # the same street, cars and pedestrians: but for the few that a wider rider hides from the sensor entirely
    same = {tuple(box) for box in others} & {tuple(box) for box in plain_others}
    assert len(same) >= 0.97 * max(len(others), len(plain_others)), (len(same), len(others), len(plain_others))


def test_the_option_is_a_seeded_share_of_scenes_off_by_default_and_on_the_command_line():
    def rider(scene_index: int, share: float) -> np.ndarray:
        scene = SnapshotScene(PRESETS["hdl64"], seed=5, scene_index=scene_index,
                              options=SimOptions(pedalling_riders=share))
        return scene.library.mesh("cyclist", KITTI_CYCLIST, True, np.random.default_rng(0)).vertices

    drawn = [not np.array_equal(rider(s, 0.5), rider(s, 0.0)) for s in range(12)]
    assert 2 <= sum(drawn) <= 10
    assert drawn == [not np.array_equal(rider(s, 0.5), rider(s, 0.0)) for s in range(12)]
    assert all(not np.array_equal(rider(s, 1.0), rider(s, 0.0)) for s in range(3))
    with pytest.raises(ValueError, match="pedalling_riders must be a share"):
        SimOptions(pedalling_riders=1.5)
    assert build_parser().parse_args(["--pedalling-riders", "0.8"]).pedalling_riders == 0.8
    assert build_parser().parse_args([]).pedalling_riders == 0.0
