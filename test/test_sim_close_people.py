"""sparsekd-sim --close-people: people who stand against street furniture, at bicycle racks and in tight groups."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.data.sim.meshes import Mesh
from sparsekd_core.data.sim.placement import CLOSE_CLEARANCE, Placer, rects_overlap
from sparsekd_core.data.sim.scene import SimOptions
from sparsekd_core.data.sim.world import StaticWorld, StreetLayout
from sim_streets import assert_a_seeded_share_of_scenes, busy_street


def street(seed: int, close: bool):
    """The standing people of one busy street around the ego, and every other BEV rectangle near them."""
    scene, _, actors = busy_street(seed, SimOptions(close_people=1.0 if close else 0.0))
    rect = lambda box: (box[0], box[1], box[3], box[4], box[6])  # noqa: E731
    standing = [a for a in actors if a.kind == "pedestrian" and not np.any(a.velocity)]
    others = [rect(a.box) for a in actors] + [tuple(o) for o in scene.world.obstacles.tolist()]
    return [rect(a.box) for a in standing], others, [rect(a.box) for a in actors]


def near_something(people, others, within: float) -> float:
    """The share of people whose rectangle comes within ``within`` m of another rectangle."""
    near = [any(rects_overlap(p, o, within / 2) for o in others if o != p) for p in people]
    return float(np.mean(near)) if near else 0.0


def test_people_in_close_company_stand_against_things_and_each_other_without_overlapping():
    apart, close = [], []
    for seed in range(6):
        people, others, _ = street(seed, close=False)
        apart.append(near_something(people, others, 0.2))
        people, others, everyone = street(seed, close=True)
        close.append(near_something(people, others, 0.2))
        for i, a in enumerate(everyone):  # boxes never overlap, however close
            assert not any(rects_overlap(a, b, CLOSE_CLEARANCE / 2 - 1e-3) for b in everyone[i + 1:])
    # version 4 keeps 0.25 m between everything; in close company a third or more stand within 0.2 m of something
    assert max(apart) == 0.0
    assert np.mean(close) > 0.3, close


def test_against_obstacle_puts_a_person_beside_the_nearest_face():
    bin_on_the_road = (20.0, 5.0, 0.8, 0.8, 0.0)  # road furniture (last among the obstacles): nobody leans on it
    world = StaticWorld(StreetLayout((0.0, 50.0)), Mesh.empty(),
                        np.array([(10.0, 5.0, 1.0, 0.6, 0.0), (30.0, 5.0, 1.0, 1.0, 0.0), bin_on_the_road]),
                        np.zeros((0, 4)), np.array([bin_on_the_road]))
    placer = Placer(world, np.random.default_rng(0), library=None)
    size = np.array([0.6, 0.8, 1.7])
    reach = 0.5 * np.hypot(0.6, 0.8) + 0.05
    x, y = placer.against_obstacle(10.2, 7.0, size, 0.05)  # above the planter: against its +y face
    assert (x, y) == pytest.approx((10.2, 5.0 + 0.3 + reach))
    x, y = placer.against_obstacle(8.0, 5.1, size, 0.05)  # to its left: against the -x face
    assert (x, y) == pytest.approx((10.0 - 0.5 - reach, 5.1))
    assert placer.against_obstacle(20.0, 5.0, size, 0.05) is None  # nothing within reach


def test_close_people_is_off_by_default_and_a_share():
    assert_a_seeded_share_of_scenes("close_people", outside=1.5, seed=3)
