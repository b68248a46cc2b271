"""A busy simulated street around the ego, populated as a snapshot frame is, for the simulator's placement tests."""
from __future__ import annotations

from sparsekd_core.data.sim.actors import Actor
from sparsekd_core.data.sim.placement import Densities, EgoState, populate
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sizes import SizeSampler


def busy_street(seed: int, options: SimOptions = SimOptions()) -> tuple[SnapshotScene, EgoState, list[Actor]]:
    """Scene 0 of ``seed`` (hdl64), its ego at the street's middle and every road user within 60 m of it, at full
    pedestrian and cyclist density; the scene's own streams for frame 0 (``close_rng``, ``road_rng``, ``pairs_rng``,
    ``turning_rng``) decide whether its people keep close company, walk on the road, walk in pairs or walk at any
    heading, as ``options`` asks."""
    scene = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0, options=options)
    rng = frame_rng(seed, 0, 0, 1)
    ego = scene._sample_ego(rng, 0.0)
    actors = populate(scene.world, rng, (ego.x - 60, ego.x + 60), ego, sequence=False, library=scene.library,
                      sizes=SizeSampler(rng, scene.style), density=Densities(pedestrians=1.0, cyclists=1.0),
                      close=scene.close_rng(0), road=scene.road_rng(0), pairs=scene.pairs_rng(0),
                      turning=scene.turning_rng(0))
    return scene, ego, actors
