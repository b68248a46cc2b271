"""A busy simulated street around the ego, populated as a snapshot frame is, for the simulator's placement tests, and
the check every opt-in street option drawn per scene passes."""
from __future__ import annotations

import pytest

from sparsekd_core.data.sim.actors import Actor
from sparsekd_core.data.sim.placement import Densities, EgoState, populate
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sizes import SizeSampler


def busy_street(seed: int, options: SimOptions = SimOptions()) -> tuple[SnapshotScene, EgoState, list[Actor]]:
    """Scene 0 of ``seed`` (hdl64), its ego at the street's middle and every road user within 60 m of it, at full
    pedestrian and cyclist density; the scene's own streams for frame 0 (``people_draws``) decide whether its people
    keep close company, walk on the road, walk in pairs or walk at any heading, and whether cyclists ride in the
    traffic lane, as ``options`` asks."""
    scene = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0, options=options)
    rng = frame_rng(seed, 0, 0, 1)
    ego = scene._sample_ego(rng, 0.0)
    actors = populate(scene.world, rng, (ego.x - 60, ego.x + 60), ego, sequence=False, library=scene.library,
                      sizes=SizeSampler(rng, scene.style), density=Densities(pedestrians=1.0, cyclists=1.0),
                      **scene.people_draws(0))
    return scene, ego, actors


def assert_a_seeded_share_of_scenes(option: str, outside: float, seed: int = 5) -> None:
    """The per-frame street option ``option`` (a SimOptions field) is off by default (the scene's ``people_rng``
    gives None for it), on in 3-13 of 16 scenes of ``seed`` at 0.5, the same scenes each time, and a value
    ``outside`` [0, 1] is refused as not a share."""
    def on(scene_index: int) -> bool:
        scene = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=scene_index, options=SimOptions(**{option: 0.5}))
        return scene.people_rng(option, 0) is not None

    assert SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0).people_rng(option, 0) is None
    drawn = [on(s) for s in range(16)]
    assert 3 <= sum(drawn) <= 13
    assert drawn == [on(s) for s in range(16)]
    with pytest.raises(ValueError, match=f"{option} must be a share"):
        SimOptions(**{option: outside})
