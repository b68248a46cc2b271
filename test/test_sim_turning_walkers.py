"""sparsekd-sim --turning-walkers: sidewalk walkers at any heading, as real pedestrians walk, not only along the line
of their sidewalk (which, seen from a sensor on the road, is along its ray)."""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.placement import TURNING_WALKER_SHARE, rects_overlap
from sparsekd_core.data.sim.scene import SimOptions
from sim_streets import assert_a_seeded_share_of_scenes, busy_street


def sidewalk_walkers(scene, actors):
    """The moving pedestrians on a sidewalk strip ("walk" lanes), with their lane."""
    out = []
    for a in actors:
        if a.kind != "pedestrian" or np.linalg.norm(a.velocity[:2]) < 0.5:
            continue
        for lane in scene.layout.lanes_of("walk"):
            if abs(a.box[1] - lane.y_centre) <= lane.width / 2:
                out.append((a, lane))
    return out


def off_axis_deg(a) -> float:
    """How far a walker's heading is turned from the street's axis, folded to 0..90 degrees."""
    return float(np.degrees(abs((a.box[6] + np.pi / 2) % np.pi - np.pi / 2)))


def test_turning_walkers_face_any_way_stay_on_their_sidewalk_and_overlap_nobody():
    plain_off, turned_off, walkers = [], [], 0
    for seed in range(6):
        scene, _, plain = busy_street(seed)
        _, _, turned = busy_street(seed, SimOptions(turning_walkers=1.0))
        plain_off += [off_axis_deg(a) for a, _ in sidewalk_walkers(scene, plain)]
        ours = sidewalk_walkers(scene, turned)
        turned_off += [off_axis_deg(a) for a, _ in ours]
        walkers += len(ours)
        for a, lane in ours:
            # they walk where they face (the turned ones exactly, the others within their sway of 0.08 rad sd), and
            # the whole turned box stays on the strip
            heading = np.arctan2(a.velocity[1], a.velocity[0])
            assert abs((heading - a.box[6] + np.pi) % (2 * np.pi) - np.pi) < 0.4
            c, s = abs(np.cos(a.box[6])), abs(np.sin(a.box[6]))
            half_across = (s * a.box[3] + c * a.box[4]) / 2
            assert abs(a.box[1] - lane.y_centre) + half_across <= lane.width / 2 + 1e-9
        rects = [(a.box[0], a.box[1], a.box[3], a.box[4], a.box[6]) for a in turned]
        for i, r in enumerate(rects):
            assert not any(rects_overlap(r, q, 0.0) for q in rects[i + 1:])
    assert walkers > 60
    # without the option every walker keeps to the sidewalk's line (within the 0.08 rad of sway); with it about
    # TURNING_WALKER_SHARE of them face any way: uniform over 0..90 folded, so half of those beyond 45 degrees
    assert max(plain_off) < 20
    beyond = np.mean(np.array(turned_off) > 45)
    assert 0.6 * TURNING_WALKER_SHARE / 2 <= beyond <= 1.4 * TURNING_WALKER_SHARE / 2, beyond


def test_turning_walkers_are_a_seeded_share_of_scenes_off_by_default():
    assert_a_seeded_share_of_scenes("turning_walkers", outside=-0.1)
    # the same seed and options give the same street, and the option changes only the streets it is drawn in
    _, _, a = busy_street(3, SimOptions(turning_walkers=1.0))
    _, _, b = busy_street(3, SimOptions(turning_walkers=1.0))
    assert [x.box.tolist() for x in a] == [x.box.tolist() for x in b]
