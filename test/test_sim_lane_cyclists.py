"""sparsekd-sim --lane-cyclists: where a side of the street has no bike lane, its cyclists ride with the traffic at the
kerb side of the outer travel lane, as on real town streets, instead of that side having almost none."""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.placement import LANE_CYCLIST_OFFSET, rects_overlap
from sparsekd_core.data.sim.scene import SimOptions
from sim_streets import assert_a_seeded_share_of_scenes, busy_street

NARROW = SimOptions(narrow_streets=1.0)
NARROW_WITH_LANE_CYCLISTS = SimOptions(narrow_streets=1.0, lane_cyclists=1.0)


def test_lane_cyclists_ride_with_the_traffic_at_the_kerb_side_of_sides_without_a_bike_lane():
    plain_cyclists, riders, sides_without = 0, 0, 0
    for seed in range(8):
        scene, _, plain = busy_street(seed, NARROW)
        _, _, ridden = busy_street(seed, NARROW_WITH_LANE_CYCLISTS)
        layout = scene.layout
        # the option only adds: everyone the plain street has is where it was
        assert [a.box.tolist() for a in ridden[:len(plain)]] == [a.box.tolist() for a in plain]
        added = ridden[len(plain):]
        plain_cyclists += sum(a.kind == "cyclist" for a in plain)
        riders += len(added)
        for side in (-1, 1):
            if layout.lanes_of("bike", side):
                assert not [a for a in added if np.sign(a.box[1]) == side]
                continue
            sides_without += 1
            outer = max(layout.lanes_of("travel", side), key=lambda lane: abs(lane.y_centre))
            edge = abs(outer.y_centre) + outer.width / 2
            heading = 0.0 if outer.direction > 0 else np.pi
            for a in (a for a in added if np.sign(a.box[1]) == side):
                assert a.kind == "cyclist"
                assert LANE_CYCLIST_OFFSET[0] <= edge - abs(a.box[1]) <= LANE_CYCLIST_OFFSET[1]
                ride = np.arctan2(a.velocity[1], a.velocity[0])
                assert abs((ride - heading + np.pi) % (2 * np.pi) - np.pi) < 1e-6
                assert abs((a.box[6] - heading + np.pi) % (2 * np.pi) - np.pi) < 0.15
                assert 3.0 <= np.hypot(a.velocity[0], a.velocity[1]) <= 7.0
        # riders overlap nobody (narrow streets' sidewalk walkers may touch each other: their 0.71 m strips are
        # narrower than some people, with or without the option)
        rects = [(a.box[0], a.box[1], a.box[3], a.box[4], a.box[6]) for a in ridden]
        for i in range(len(plain), len(rects)):
            assert not any(rects_overlap(rects[i], q, 0.0) for j, q in enumerate(rects) if j != i)
    # narrow streets keep a bike lane on a fifth of their sides, so most sides gain riders, and their streets at least
    # double their cyclists (scene 0 of seeds 0-11: 47 cyclists without the option, 132 with it)
    assert sides_without >= 10
    assert riders >= plain_cyclists, (riders, plain_cyclists)


def test_lane_cyclists_are_a_seeded_share_of_scenes_off_by_default():
    assert_a_seeded_share_of_scenes("lane_cyclists", outside=1.5)
    _, _, a = busy_street(4, NARROW_WITH_LANE_CYCLISTS)
    _, _, b = busy_street(4, NARROW_WITH_LANE_CYCLISTS)
    assert [x.box.tolist() for x in a] == [x.box.tolist() for x in b]
