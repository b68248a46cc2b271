"""sparsekd-sim --road-furniture: islands, delineators, cones, warning boards, bins, kerb extensions and bicycles on
the carriageway, unlabelled, clear of every road user."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sparsekd_core.cli.sim import main as sim_main
from sparsekd_core.data.sim.meshes import MeshBuilder
from sparsekd_core.data.sim.placement import EgoState, rects_overlap
from sparsekd_core.data.sim.road_furniture import KINDS, add_road_furniture
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sequence import DriveScene
from sim_streets import busy_street

FURNISHED = SimOptions(road_furniture=1.0)


def test_road_furniture_stands_on_the_carriageway_in_every_kind_and_leaves_the_rest_of_the_street_alone():
    kinds: dict[str, int] = {}
    for seed in range(6):
        plain = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0).world
        world = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0, options=FURNISHED).world
        layout = world.layout
        # the version-4 street is all there, unchanged; the furniture comes on top, from a stream of its own
        n = len(plain.mesh.vertices)
        np.testing.assert_array_equal(world.mesh.vertices[:n], plain.mesh.vertices)
        np.testing.assert_array_equal(world.obstacles[:len(plain.obstacles)], plain.obstacles)
        np.testing.assert_array_equal(world.obstacles[len(plain.obstacles):], world.road_obstacles)
        assert len(plain.road_obstacles) == 0
        # a group every 25 m or so along the 440 m street
        assert 20 <= len(world.road_obstacles) <= 120, len(world.road_obstacles)
        for x, y, dx, dy, _ in world.road_obstacles:  # on the road, between the kerbs
            assert abs(y) + dy / 2 <= layout.kerb_y(1 if y > 0 else -1) + 1e-6, (x, y, dy)
        # nothing stands on anything else
        rects = world.road_obstacles.tolist()
        for i, r in enumerate(rects):
            assert not any(rects_overlap(r, q) for q in rects[i + 1:])
        # what the world holds is what the furniture stream draws beside the street's own obstacles
        rng = frame_rng(seed, 0, 0, 14)
        rng.random()  # the scene's draw of whether it is furnished
        groups = add_road_furniture(MeshBuilder(), layout, rng, [tuple(r) for r in plain.obstacles.tolist()])
        np.testing.assert_array_equal(np.array([(*f, 0.0) for _, fs in groups for f in fs]), world.road_obstacles)
        for kind, _ in groups:
            kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == set(KINDS), kinds


#: The height of each kind's top above the road (metres): sign posts on an island, delineators 0.75-1.0, cones 0.5
#: or 0.75, warning boards 1.3-1.4, bins 0.93 or 1.07, a kerb extension's hydrant up to its young tree, bicycles.
TOPS = {"island": (1.3, 2.4), "delineators": (0.75, 1.0), "cones": (0.5, 0.75), "warning_boards": (1.3, 1.4),
        "bins": (0.93, 1.07), "kerb_extension": (0.6, 4.6), "bicycles": (0.8, 1.2)}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_stands_on_the_sloped_road_inside_the_footprints_that_keep_road_users_off_it(kind):
    """What stands on the road is built inside the footprints placement keeps road users out of, stands on the
    road where it slopes (neither sunk nor floating), and has the height of that kind of street furniture."""
    from sparsekd_core.data.sim import road_furniture

    layout = SnapshotScene(PRESETS["hdl64"], seed=1, scene_index=0).world.layout
    layout.slope = 0.02
    side = next(s for s in (-1, 1) if layout.lanes_of("parking", s))
    x = 10.0
    for draw in range(12):
        b = MeshBuilder()
        footprints = road_furniture._BUILDERS[kind](b, layout, side, x, layout.slope * x, np.random.default_rng(draw))
        v = b.build().vertices
        assert len(footprints) >= 1 and len(v) > 0
        road = layout.slope * v[:, 0]
        assert (v[:, 2] >= road - 0.011).all()  # nothing sinks into the road
        top = (v[:, 2] - road).max()
        assert TOPS[kind][0] - 0.02 <= top <= TOPS[kind][1] + 0.2, top  # + the island's kerb, a plate's reach
        for fx, fy, dx, dy in footprints:  # each footprint holds something standing on the road (a wheel's polygon
            under = (np.abs(v[:, 0] - fx) <= dx / 2 + 0.02) & (np.abs(v[:, 1] - fy) <= dy / 2 + 0.02)  # nearly)
            assert (v[under, 2] - road[under]).min() <= 0.03
        low = v[(v[:, 2] - road) < 0.8]  # a young tree's crown overhangs above a person's knees
        inside = np.zeros(len(low), bool)
        for fx, fy, dx, dy in footprints:
            inside |= (np.abs(low[:, 0] - fx) <= dx / 2 + 0.02) & (np.abs(low[:, 1] - fy) <= dy / 2 + 0.02)
        assert inside.all(), low[~inside][:3]


def test_no_road_user_stands_on_road_furniture_and_the_ego_drives_past_it():
    shifted = 0
    for seed in range(6):
        scene, ego, actors = busy_street(seed, SimOptions(road_furniture=1.0, road_people=1.0, close_people=1.0))
        furniture = scene.world.road_obstacles.tolist()
        assert furniture
        # an ego drawn right at a piece of furniture in its lane drives on past it
        for k in range(4 * len(furniture)):
            fx = furniture[k % len(furniture)][0]
            ego_at = scene._sample_ego(np.random.default_rng(k), fx)
            rect = (ego_at.x, ego_at.y, EgoState.FOOTPRINT[0], EgoState.FOOTPRINT[1], ego_at.yaw)
            assert not any(rects_overlap(rect, r) for r in furniture), (fx, ego_at.x)
            shifted += ego_at.x > fx
        for a in actors:
            rect = (a.box[0], a.box[1], a.box[3], a.box[4], a.box[6])
            assert not any(rects_overlap(rect, r) for r in furniture), (a.kind, a.box)
        # the lanes still carry traffic: furniture drops the users it would meet, not the street's
        assert sum(a.kind in ("sedan", "hatchback", "suv", "van", "pickup") for a in actors) >= 5
    assert shifted >= 10, shifted


def test_road_furniture_is_unlabelled_seeded_and_only_where_road_users_stand_still():
    a = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0, options=FURNISHED).frame(0)
    b = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0, options=FURNISHED).frame(0)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert set(a.kinds) <= {"hatchback", "sedan", "suv", "pickup", "van", "truck", "bus", "pedestrian", "cyclist"}
    drawn = [len(SnapshotScene(PRESETS["hdl64"], seed=5, scene_index=s,
                               options=SimOptions(road_furniture=0.5)).world.road_obstacles) > 0 for s in range(16)]
    assert 3 <= sum(drawn) <= 13
    # a drive's cars move along their lanes and would run into it: drives get none
    drive = DriveScene(PRESETS["vlp16"], seed=2, scene_index=0, num_frames=2, options=FURNISHED)
    assert len(drive.world.road_obstacles) == 0
    with pytest.raises(ValueError, match="road_furniture must be a share"):
        SimOptions(road_furniture=1.5)


def test_sparsekd_sim_writes_road_furniture_into_its_meta(tmp_path):
    out = tmp_path / "sim"
    assert sim_main(["--out", str(out), "--frames", "2", "--format", "kitti", "--preset", "vlp16",
                     "--road-furniture", "0.7", "--quiet", "--workers", "1"]) == 0
    assert json.loads((out / "sim_meta.json").read_text())["road_furniture"] == 0.7
    assert sim_main(["--out", str(tmp_path / "bad"), "--frames", "2", "--road-furniture", "2", "--quiet"]) == 2
