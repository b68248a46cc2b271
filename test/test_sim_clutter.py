"""Dense street clutter (sparsekd-sim --street-clutter): what it places, where, and that it leaves the rest alone."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.data.sim.clutter import KINDS, add_street_clutter
from sparsekd_core.data.sim.meshes import Mesh, MeshBuilder
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS, Lidar
from sparsekd_core.data.sim.world import StreetLayout, build_world


def test_clutter_stands_in_the_given_strips_clear_of_what_stands_there_and_of_itself():
    strips = [(-7.5, 0.5), (10.0, 0.35)]
    obstacles = [(0.0, -7.5, 0.3, 0.3, 0.0), (20.0, 10.0, 2.0, 2.0, 0.0)]
    items, kinds = [], set()
    for seed in range(12):
        b = MeshBuilder()
        placed = add_street_clutter(b, (-100.0, 100.0), strips, lambda x, y: 0.13, np.random.default_rng(seed),
                                    list(obstacles))
        items.append(placed)
        kinds |= {k for k, _, _ in placed}
        assert b.build().num_triangles > 0
        for kind, x, y in placed:
            assert any(abs(y - yc) <= half for yc, half in strips), (kind, y)
            assert not (abs(x) < 0.8 and abs(y + 7.5) < 0.5) and not (abs(x - 20.0) < 1.5 and abs(y - 10.0) < 1.5)
        xs = np.array([(x, y) for _, x, y in placed])
        gaps = np.abs(xs[:, None, 0] - xs[None, :, 0]) + 10 * np.abs(xs[:, None, 1] - xs[None, :, 1])
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() > 0.5  # no two items on the same spot
    assert kinds == set(KINDS)
    # about one item every 8 m of each strip (some draws are dropped for lack of room)
    per_metre = np.mean([len(p) for p in items]) / (200.0 * len(strips))
    assert 1 / 16 < per_metre <= 1 / 7


def test_a_cluttered_world_is_the_same_street_with_more_on_its_sidewalks():
    layout = StreetLayout.sample(np.random.default_rng(3), (-80.0, 80.0))
    plain = build_world(layout, np.random.default_rng(4))
    busy = build_world(layout, np.random.default_rng(4), clutter_rng=np.random.default_rng(5))
    n = plain.mesh.num_triangles
    assert busy.mesh.num_triangles > n
    np.testing.assert_array_equal(busy.mesh.triangles[:n], plain.mesh.triangles)  # the same street, then clutter
    np.testing.assert_array_equal(busy.mesh.vertices[: plain.mesh.vertices.shape[0]], plain.mesh.vertices)
    np.testing.assert_array_equal(busy.obstacles[: len(plain.obstacles)], plain.obstacles)
    new = busy.obstacles[len(plain.obstacles):]
    assert len(new) >= 20  # both sides of 160 m of street
    kerb = min(layout.kerb_y(-1), layout.kerb_y(1))
    assert np.all(np.abs(new[:, 1]) > kerb)  # on the sidewalks, never on the road


def test_clutter_adds_person_high_returns_around_the_sensor():
    """The static street alone, cast from the ego's spot: a cluttered street returns more pulses 0.3-2 m above the
    road within 30 m (its posts, cabinets, shrubs), in every scene, and its clutter is not labelled (it is world)."""
    def person_high(share, seed):
        scene = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0, options=SimOptions(street_clutter=share))
        ego = scene._sample_ego(np.random.default_rng(0), 0.0)
        ground = scene.layout.ground_height(ego.x, ego.y)
        scan = Lidar(PRESETS["hdl64"]).scan(scene.world.ray_caster(), scene.world.mesh, Mesh.empty(),
                                            np.zeros(0, np.int32), np.zeros((0, 7)),
                                            np.array([ego.x, ego.y, ground + 1.73]), ego.yaw, np.random.default_rng(1))
        assert np.all(scan.actor == -1)
        height = scan.points[:, 2] + 1.73
        distance = np.hypot(scan.points[:, 0], scan.points[:, 1])
        return int(((height > 0.3) & (height < 2.0) & (distance > 3) & (distance < 30)).sum())

    added = np.array([person_high(1.0, seed) - person_high(0.0, seed) for seed in range(6)])
    assert np.all(added > 0) and np.median(added) > 400, added


def test_a_share_of_scenes_is_cluttered_and_without_it_a_seed_draws_the_same_street():
    def world_size(share, scene):
        return SnapshotScene(PRESETS["hdl64"], seed=2, scene_index=scene,
                             options=SimOptions(street_clutter=share)).world.mesh.num_triangles

    plain = [world_size(0.0, s) for s in range(16)]
    assert [world_size(0.0, s) for s in range(16)] == plain
    half = [world_size(0.5, s) > p for s, p in zip(range(16), plain)]
    assert 3 <= sum(half) <= 13
    assert all(world_size(1.0, s) > p for s, p in zip(range(16), plain))
    with pytest.raises(ValueError, match="street_clutter must be a share"):
        SimOptions(street_clutter=-0.1)
