"""The simulator's ray casters: hand-made hits, the torch backend against open3d on a real street with road
users, whole frames from both, and generation with torch alone (no open3d)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sparsekd_core.data.sim.meshes import _unit_sphere, merge, pose_meshes
from sparsekd_core.data.sim.placement import populate
from sparsekd_core.data.sim.raycast import MISS, RayCasterChoice
from sparsekd_core.data.sim.raycast_torch import TorchRayCaster
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS, Lidar
from sparsekd_core.data.sim.sizes import SizeSampler

BACKENDS = ["open3d", "torch"]
# Two triangles: one in z = 0 (0..1 in x and y), one in z = 0.5 above it, wound so that +z is their normal.
STACK_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0.5], [1, 0, 0.5], [0, 1, 0.5]], np.float32)
STACK_T = np.array([[0, 1, 2], [3, 4, 5]])


def _caster(backend, vertices, triangles):
    return RayCasterChoice(backend, "cpu").build(vertices, triangles)


def _rays(origins, directions) -> np.ndarray:
    o, d = np.broadcast_arrays(np.asarray(origins, np.float64), np.asarray(directions, np.float64))
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    return np.hstack([o, d]).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shared_origin", [True, False])
def test_hand_made_hits(backend, shared_origin):
    """Known answers: the nearer of two stacked triangles, a miss beside them, the back face counts."""
    if shared_origin:  # one sensor: the torch backend's binned path
        origin = np.array([[0.2, 0.3, 2.0]])
        targets = np.array([[0.2, 0.3, 0.0], [1.5, 1.5, 0.0], [0.25, 0.25, 0.0]])
        hits = _caster(backend, STACK_V, STACK_T).cast_rays(_rays(origin, targets - origin))
        t_expect = [1.5, np.inf, 0.75 * np.linalg.norm(origin[0] - targets[2])]  # z = 0.5: 3/4 of the way down
    else:  # parallel rays from different points: the torch backend's general path
        origins = np.array([[0.2, 0.3, 2.0], [1.5, 1.5, 2.0], [0.25, 0.25, 1.0]])
        hits = _caster(backend, STACK_V, STACK_T).cast_rays(_rays(origins, [0, 0, -1]))
        t_expect = [1.5, np.inf, 0.5]
    np.testing.assert_allclose(hits.t_hit, t_expect, rtol=1e-6)
    np.testing.assert_array_equal(hits.primitive_ids, [1, MISS, 1])
    np.testing.assert_allclose(hits.primitive_normals, [[0, 0, 1], [0, 0, 0], [0, 0, 1]], atol=1e-7)
    # from below: the lower triangle's back face is the first hit, its normal still +z
    up = _caster(backend, STACK_V, STACK_T).cast_rays(_rays([[0.3, 0.2, -1.0]], [[0, 0, 1]]))
    np.testing.assert_allclose(up.t_hit, [1.0], rtol=1e-6)
    assert up.primitive_ids[0] == 0
    np.testing.assert_allclose(up.primitive_normals[0], [0, 0, 1], atol=1e-7)
    # a ray that starts between the two sees only the upper one; one pointing away sees nothing
    between = _caster(backend, STACK_V, STACK_T).cast_rays(_rays([[0.1, 0.1, 0.25]] * 2, [[0, 0, 1], [1, 0, 0]]))
    np.testing.assert_allclose(between.t_hit, [0.25, np.inf], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_ray_slips_between_the_triangles_of_a_mesh(backend):
    """A closed sphere of 1280 triangles seen from 10 m: every ray aimed within its outline hits it (rays
    through shared edges and vertices included), at the distance a sphere gives."""
    v, t = _unit_sphere(3)
    rng = np.random.default_rng(0)
    origin = np.array([10.0, 0.0, 0.0])
    # aim at vertices, edge midpoints and random points on the sphere's front half
    front = v[v[:, 0] > 0.3].astype(np.float64)
    mids = ((v[t[:, 0]] + v[t[:, 1]]) / 2).astype(np.float64)
    mids = mids[mids[:, 0] > 0.3]
    rand = rng.normal(size=(3000, 3))
    rand[:, 0] = np.abs(rand[:, 0]) + 0.5
    rand = rand / np.linalg.norm(rand, axis=1, keepdims=True)
    aims = np.concatenate([front, mids, rand[rand[:, 0] > 0.3]])
    rays = _rays(origin, aims - origin)
    hits = _caster(backend, v, t).cast_rays(rays)
    assert np.isfinite(hits.t_hit).all()
    assert (hits.primitive_ids != MISS).all()
    # on the polyhedron: inside the unit sphere, outside the sphere through its faces' centres
    radius = np.linalg.norm(rays[:, :3] + hits.t_hit[:, None] * rays[:, 3:], axis=1)
    assert np.all((radius <= 1 + 1e-5) & (radius >= 0.99))


def _street_with_road_users():
    """A real simulated street (vlp16's, the smallest) with a frame's road users: (mesh, sensor position)."""
    scene = SnapshotScene(PRESETS["vlp16"], seed=2, scene_index=0)
    rng = np.random.default_rng(5)
    ego = scene._sample_ego(rng, 0.0)
    actors = populate(scene.world, rng, (-70.0, 70.0), ego, sequence=False, library=scene.library,
                      sizes=SizeSampler(rng, scene.style), density=scene.densities)
    users, _ = pose_meshes([a.mesh for a in actors], np.array([a.box for a in actors]).reshape(-1, 7))
    mesh, _ = merge([scene.world.mesh, users])
    sensor = np.array([ego.x, ego.y, scene.layout.ground_height(ego.x, ego.y) + 1.73])
    return mesh, sensor, len(actors)


def _distance_to_triangles(rays: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N,) where each ray meets its triangle's plane (N, 3, 3), in float64; nan if it passes outside the
    triangle by more than a hair."""
    o, d = rays[:, :3].astype(np.float64), rays[:, 3:].astype(np.float64)
    a, b, c = (corners[:, k].astype(np.float64) for k in range(3))
    n = np.cross(b - a, c - a)
    t = np.einsum("ij,ij->i", a - o, n) / np.einsum("ij,ij->i", d, n)
    p = o + t[:, None] * d
    area = np.einsum("ij,ij->i", n, n)
    bary = [np.einsum("ij,ij->i", np.cross(q - p, r - p), n) / area for q, r in ((b, c), (c, a), (a, b))]
    return np.where(np.min(bary, axis=0) >= -1e-4, t, np.nan)


def test_torch_casts_as_open3d_does_on_a_street_with_road_users():
    """One hdl64 revolution (shared origin), the same rays continued from 3-30 m along themselves (rays
    with a common point behind them) and rays from scattered points (no common point): the torch backend
    finds the same first hits as open3d.

    Bound: a ray can only disagree when it passes within float32 rounding (~1e-7 rad) of a triangle's
    silhouette edge; at 0.17 deg between rays, that is far below 1 ray in 10,000."""
    mesh, sensor, num_actors = _street_with_road_users()
    assert num_actors > 20 and mesh.num_triangles > 50_000
    local, _ = Lidar(PRESETS["hdl64"]).local_directions(0.0011)
    revolution = _rays(sensor, local)
    rng = np.random.default_rng(1)
    pick = rng.choice(len(local), 4000, replace=False)
    ahead = rng.uniform(3.0, 30.0, size=(len(pick), 1))
    continued = _rays(sensor + ahead * local[pick], local[pick])
    scattered = _rays(sensor + rng.uniform(-20, 20, size=(500, 3)) * [1, 1, 0.05], rng.normal(size=(500, 3)))
    o3d_caster, torch_caster = _caster("open3d", mesh.vertices, mesh.triangles), \
        _caster("torch", mesh.vertices, mesh.triangles)
    for rays in (revolution, continued, scattered):
        a, b = o3d_caster.cast_rays(rays), torch_caster.cast_rays(rays)
        hit_a, hit_b = np.isfinite(a.t_hit), np.isfinite(b.t_hit)
        assert hit_a.mean() > 0.25
        both = hit_a & hit_b
        close = np.zeros(len(rays), bool)
        close[both] = np.abs(a.t_hit[both] - b.t_hit[both]) <= np.minimum(1e-3, 1e-5 * a.t_hit[both] + 1e-5)
        disagree = (hit_a != hit_b) | (both & ~close)
        assert disagree.sum() <= max(1, 1e-4 * len(rays)), f"{disagree.sum()} of {len(rays)} rays disagree"
        # The same triangle, but where two are hit at the same distance: overlapping coplanar parts of a
        # road user's mesh (tyre and body side) or a ray along a shared edge. Each picks one of them.
        other = np.flatnonzero(close & (a.primitive_ids != b.primitive_ids))
        assert len(other) <= 0.005 * len(rays)
        for ids in (a.primitive_ids[other], b.primitive_ids[other]):
            np.testing.assert_allclose(_distance_to_triangles(rays[other], mesh.vertices[mesh.triangles[ids]]),
                                       a.t_hit[other], rtol=1e-5, atol=1e-4)
        same = close & (a.primitive_ids == b.primitive_ids)
        np.testing.assert_allclose(np.abs(np.sum(a.primitive_normals[same] * b.primitive_normals[same], 1)), 1.0,
                                   atol=1e-5)
        assert (b.primitive_ids[~hit_b] == MISS).all() and (b.primitive_normals[~hit_b] == 0).all()
    # GPU batching (looser batches) and small chunks (bins cut into slices) give exactly the same hits
    small = TorchRayCaster(mesh.vertices, mesh.triangles, device="cpu", chunk=2 ** 16, similar=0.5)
    for rays in (revolution, continued):
        a, b = torch_caster.cast_rays(rays), small.cast_rays(rays)
        assert small.stats["batches"] > 30
        np.testing.assert_array_equal(a.t_hit, b.t_hit)
        np.testing.assert_array_equal(a.primitive_ids, b.primitive_ids)


def test_a_frame_is_the_same_with_either_caster():
    """The same seed gives the same frame with open3d and with torch: the same labelled road users, point counts
    and points (up to float32 rounding of the ranges; an intensity right at KITTI's zero threshold may flip)."""
    frames = {b: SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=0,
                               options=SimOptions(raycaster=RayCasterChoice(b, "cpu"))).frame(0)
              for b in BACKENDS}
    a, b = frames["open3d"], frames["torch"]
    assert len(a.boxes) > 20
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert abs(len(a.points) - len(b.points)) <= 0.005 * len(a.points)
    assert np.abs(a.num_points - b.num_points).sum() <= max(3, 0.01 * a.num_points.sum())
    np.testing.assert_allclose(a.occlusion, b.occlusion, atol=0.02)
    if len(a.points) == len(b.points):  # the same rays returned: the same points
        assert np.mean(np.abs(a.points[:, :3] - b.points[:, :3]).max(1) <= 1e-3) > 0.999
        assert np.mean(a.point_label == b.point_label) > 0.999


def test_generation_with_torch_never_imports_open3d(tmp_path):
    """A dataset generated with --raycaster torch in a Python where open3d cannot be imported (as on a GPU
    machine without it); choosing open3d there fails with an error that names the fix."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["open3d"] = None  # any `import open3d` now raises ImportError
        from sparsekd_core.cli.sim import main
        assert main(["--out", r"{tmp_path / 'sim'}", "--frames", "1", "--preset", "vlp16", "--format", "kitti",
                     "--raycaster", "torch", "--device", "cpu", "--quiet"]) == 0
        assert main(["--out", r"{tmp_path / 'o3d'}", "--frames", "1", "--preset", "vlp16", "--quiet"]) == 2
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    points = np.fromfile(tmp_path / "sim" / "kitti" / "training" / "velodyne" / "000000.bin", np.float32)
    assert len(points) // 4 > 5000
    assert "pip install open3d" in run.stderr and "--raycaster torch" in run.stderr


def test_cli_explains_the_casters_and_refuses_a_missing_gpu(capsys):
    import torch

    from sparsekd_core.cli.sim import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--raycaster torch" in text and "without open3d" in text and "fastest on CPU" in text
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["--out", "unused", "--frames", "1", "--raycaster", "torch", "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err


@pytest.mark.parametrize("subdivisions, triangles", [(0, 20), (1, 80), (2, 320)])
def test_sphere_template_is_a_closed_outward_unit_polyhedron(subdivisions, triangles):
    v, t = _unit_sphere(subdivisions)
    assert len(t) == triangles and len(v) == 2 + triangles // 2  # Euler: V - E + F = 2 with E = 3F/2
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    assert (np.unique(edges, axis=0, return_counts=True)[1] == 2).all()  # closed: every edge in two faces
    normals = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    assert (np.einsum("ij,ij->i", normals, v[t].mean(1)) > 0).all()  # wound outwards
