"""sparsekd-sim --walking-pairs: sidewalk walkers with a companion abreast, as real pedestrians often walk."""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.placement import (WALKING_PAIR_GAP, WALKING_PAIR_SHARE, Densities,
                                              populate, rects_overlap)
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sizes import SizeSampler
from sparsekd_core.eval.domain_gap import pedestrians_in_company
from sim_streets import assert_a_seeded_share_of_scenes, busy_street


def walkers_of(scene, actors):
    """The sidewalk's moving pedestrians."""
    return [a for a in actors if a.kind == "pedestrian" and np.linalg.norm(a.velocity[:2]) > 0.5
            and abs(a.box[1]) > scene.layout.kerb_y(1 if a.box[1] > 0 else -1)]


def company_share(actors) -> float:
    """Share of pedestrians with another within sparsekd-gap's COMPANY_REACH, as that tool counts them."""
    people, company = pedestrians_in_company(np.array([a.box for a in actors if a.kind == "pedestrian"]))
    return company / people


def test_walking_pairs_put_companions_abreast_of_half_the_walkers_and_leave_the_rest_of_the_street_alone():
    walkers, companions, alone, paired = 0, 0, [], []
    for seed in range(6):
        scene, _, plain = busy_street(seed)
        _, _, busy = busy_street(seed, SimOptions(walking_pairs=1.0))
        # everyone else stands where they stood: the companions come on top, from a stream of their own
        assert len(busy) > len(plain)
        for a, b in zip(plain, busy):
            assert a.kind == b.kind and np.array_equal(a.box, b.box)
        ours = walkers_of(scene, plain)
        new = busy[len(plain):]
        assert all(a.kind == "pedestrian" for a in new)
        for c in new:
            # each walks beside one walker: same velocity, 0.7-1.05 m away, mostly across the walking direction
            walker = min(ours, key=lambda w: np.linalg.norm(w.box[:2] - c.box[:2]))
            np.testing.assert_allclose(c.velocity, walker.velocity, atol=1e-9)
            offset = c.box[:2] - walker.box[:2]
            heading = walker.velocity[:2] / np.linalg.norm(walker.velocity[:2])
            across = abs(heading[0] * offset[1] - heading[1] * offset[0])
            lo = (walker.box[4] + c.box[4]) / 2 + WALKING_PAIR_GAP[0]
            assert lo - 1e-9 <= across <= (walker.box[4] + c.box[4]) / 2 + WALKING_PAIR_GAP[1] + 1e-9
            assert abs(heading @ offset) < 0.9  # at most 4.5 sd of WALKING_PAIR_STAGGER ahead or behind
        walkers, companions = walkers + len(ours), companions + len(new)
        rects = [(a.box[0], a.box[1], a.box[3], a.box[4], a.box[6]) for a in busy]
        for i, r in enumerate(rects):  # nobody overlaps anybody
            assert not any(rects_overlap(r, q, 0.01) for q in rects[i + 1:])
        alone.append(company_share(plain))
        paired.append(company_share(busy))
    # half the walkers draw a companion; a few find no room on either side (a tree, a bin, the other sub-lane's walker)
    assert 0.6 * WALKING_PAIR_SHARE * walkers <= companions <= WALKING_PAIR_SHARE * walkers * 1.3, (companions, walkers)
    # pedestrians in company: rare without pairs, the share real held-out sweeps show (43%) with them
    assert np.mean(alone) < 0.1 and 0.3 <= np.mean(paired) <= 0.7, (alone, paired)


def test_walking_pairs_are_a_seeded_share_of_scenes_off_by_default_and_not_in_drives():
    assert_a_seeded_share_of_scenes("walking_pairs", outside=1.2)
    # a drive keeps its walkers single file (a companion could step into the other sub-lane's walkers over time)
    scene = SnapshotScene(PRESETS["hdl64"], seed=1, scene_index=0, options=SimOptions(walking_pairs=1.0))
    ego = scene._sample_ego(frame_rng(1, 0, 0, 1), 0.0)

    def drive(pairs):
        rng = frame_rng(1, 0, 0, 1)
        return populate(scene.world, rng, (ego.x - 60, ego.x + 60), ego, sequence=True, library=scene.library,
                        sizes=SizeSampler(rng, scene.style), density=Densities(pedestrians=1.0), pairs=pairs)
    assert ([a.box.tolist() for a in drive(scene.people_rng("walking_pairs", 0))]
            == [a.box.tolist() for a in drive(None)])


def test_a_walking_pairs_frame_is_the_same_for_the_same_seed():
    options = SimOptions(walking_pairs=1.0)
    a = SnapshotScene(PRESETS["vlp16"], seed=3, scene_index=0, options=options).frame(0)
    b = SnapshotScene(PRESETS["vlp16"], seed=3, scene_index=0, options=options).frame(0)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    plain = SnapshotScene(PRESETS["vlp16"], seed=3, scene_index=0).frame(0)
    assert (a.kinds == "pedestrian").sum() > (plain.kinds == "pedestrian").sum()
