"""sparsekd-sim --road-people: pedestrians who walk on the carriageway, along it or across, as in pedestrian zones."""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.placement import ROAD_PEOPLE_REACH, rects_overlap
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sim_streets import assert_a_seeded_share_of_scenes, busy_street


def street(seed: int, road: bool):
    """Every road user of one street around the ego, and the ego; with or without people on the road."""
    return busy_street(seed, SimOptions(road_people=1.0 if road else 0.0))


def on_road(scene, actor) -> bool:
    kerb = scene.layout.kerb_y(1 if actor.box[1] > 0 else -1)
    return abs(actor.box[1]) < kerb


def test_road_people_walk_on_the_carriageway_along_it_and_across_and_leave_the_rest_of_the_street_alone():
    added, along, headings = 0, 0, []
    for seed in range(8):
        scene, ego, plain = street(seed, road=False)
        _, _, busy = street(seed, road=True)
        # everyone else stands where they stood: the road's people come on top, from a stream of their own
        assert len(busy) >= len(plain)
        for a, b in zip(plain, busy):
            assert a.kind == b.kind and np.array_equal(a.box, b.box)
        new = busy[len(plain):]
        assert all(a.kind == "pedestrian" for a in new)
        for a in new:
            assert on_road(scene, a), a.box
            assert ROAD_PEOPLE_REACH[0] - 2.0 <= abs(a.box[0] - ego.x) <= ROAD_PEOPLE_REACH[1] + 2.0
            assert np.linalg.norm(a.velocity[:2]) > 0.8  # they walk
            folded = abs((a.box[6] + np.pi / 2) % np.pi - np.pi / 2)  # 0: along the road either way
            along += folded < np.radians(25)
            headings.append(folded)
        added += len(new)
        rects = [(a.box[0], a.box[1], a.box[3], a.box[4], a.box[6]) for a in busy]
        for i, r in enumerate(rects):  # nobody overlaps anybody
            assert not any(rects_overlap(r, q, 0.1) for q in rects[i + 1:])
    # about 3 a street; most walk along the road, some across it at any angle
    assert 12 <= added <= 40, added
    assert 0.45 <= along / added <= 0.9, (along, added)
    assert max(headings) > np.radians(45)
    # without a stream for them nobody walks along the road (crossers walk across it)
    scene, ego, plain = street(0, road=False)
    assert sum(a.kind == "pedestrian" and on_road(scene, a) and abs(a.velocity[1]) < 0.5 for a in plain) == 0


def test_road_people_are_a_seeded_share_of_scenes_and_off_by_default():
    assert_a_seeded_share_of_scenes("road_people", outside=-0.1)


def test_a_road_people_frame_is_the_same_for_the_same_seed():
    options = SimOptions(road_people=1.0)
    scene = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0, options=options)
    a = scene.frame(0)
    b = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0, options=options).frame(0)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    plain = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0).frame(0)
    assert len(a.boxes) > len(plain.boxes)
