"""The simulator's ray caster in plain torch, on CPU or CUDA (for machines without open3d: GPU training machines).

Hand-written: no maintained library casts first-hit rays against triangle meshes with torch alone (open3d's
Embree needs open3d; PyTorch3D and nvdiffrast rasterise from a camera and need their own builds).

The test (both faces count, as in open3d): in coordinates relative to the ray's origin, a ray ``t d`` meets
triangle (a, b, c) when the three signed volumes ``d . (a x b)``, ``d . (b x c)``, ``d . (c x a)`` share a sign
(the ray passes inside all three edges), at ``t = (a . n) / (d . n)`` with ``n = (b - a) x (c - a)``. A shared
edge's cross product is the exact negative of its neighbour's in floating point, so a ray never slips
between two triangles of a mesh (watertight), and a ray along a shared edge hits both at the same t. Of
equal hits the lower triangle id wins: each (ray, triangle) hit becomes the int64 key
``float32 bits of t << 32 | id`` (positive floats order as their bits), reduced per ray with a scatter min.
Triangle constants are computed in float64 relative to the origin, the per-pair work in float32.

Acceleration:
- rays that share one origin (a sensor's whole revolution): triangles are binned by the azimuth interval
  they span as seen from the origin (every point of such a ray lies at the ray's own azimuth about it);
  triangles over the origin's vertical axis, or spanning half a turn or more, go into every bin; triangles
  wholly beyond ``max_distance`` into none. Each ray is tested only against its bin's triangles: bins with
  equal ray counts and similar triangle counts form dense (bins x rays x triangles) batches of at most
  ``chunk`` pairs, so memory stays bounded.
- rays whose lines all pass through one point behind their origins (a sensor's rays continued from where
  they left a road user's box, as the simulator's depth peeling does): the same, cast from that point, with
  hits before each ray's own origin left out.
- any other rays: the triangles are grouped in runs of consecutive ids (meshes are built part by part, so a
  run is compact) with a bounding box each; each ray is tested against the triangles of the boxes it passes
  through.
"""
from __future__ import annotations

import numpy as np
import torch

from sparsekd_core.data.sim.raycast import MISS, RayCaster, RayHits, resolve_device

_NO_HIT = torch.iinfo(torch.int64).max
#: Azimuth bins of the shared-origin path (0.25 deg: about one hdl64 firing and a half per bin).
AZIMUTH_BINS = 1440
#: Angular margin of a triangle's azimuth interval (radians): float32 rounding of the directions is ~1e-7.
AZIMUTH_PAD = 1e-4
#: Triangles with a vertex this close to the origin's vertical axis (m) go into every bin.
NEAR_AXIS = 1e-3
#: Consecutive triangles per bounding box of the differing-origin path.
CLUSTER = 32


class TorchRayCaster(RayCaster):
    """First hits of rays against one triangle mesh, with torch on ``device`` ("auto", "cpu" or "cuda").

    chunk: (ray, triangle) pairs tested at once (bounds memory: about 100 bytes a pair); default 2**20 on
    CPU, 2**24 on CUDA. ``stats`` holds what the last cast did: rays, candidate pairs, pairs tested (with
    the batches' padding) and batches (about 40 small kernels each), for planning device runs.
    similar: how alike (0..1) the ray and triangle counts of the bins batched together must be (default 0.5
    on CUDA, 0.7 on CPU); it changes the speed, not the hits.
    """

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, device: str = "auto", chunk: int | None = None,
                 similar: float | None = None):
        self.device = torch.device(resolve_device(device))
        self.chunk = int(chunk or (2 ** 24 if self.device.type == "cuda" else 2 ** 20))
        # How alike the bins of a batch are: on a GPU each batch's ~40 kernel launches cost more than the
        # padding of looser batches (~1.7x the pairs, ~3x fewer batches); on a CPU every pair costs.
        self._similar = float(similar or (0.5 if self.device.type == "cuda" else 0.7))
        self._v = torch.as_tensor(np.asarray(vertices, np.float64).reshape(-1, 3), device=self.device)
        self._tri = torch.as_tensor(np.asarray(triangles, np.int64).reshape(-1, 3), device=self.device)
        a, b, c = (self._v[self._tri[:, k]] for k in range(3))
        n = torch.linalg.cross(b - a, c - a)
        length = n.norm(dim=1, keepdim=True)
        self._normals = torch.where(length > 0, n / length.clamp_min(1e-300), 0.0).float()
        self.stats: dict[str, int] = {}

    @property
    def num_triangles(self) -> int:
        return len(self._tri)

    def cast_rays(self, rays: np.ndarray, max_distance: float = np.inf) -> RayHits:
        rays = np.ascontiguousarray(rays, np.float32).reshape(-1, 6)
        best = torch.full((len(rays),), _NO_HIT, dtype=torch.int64, device=self.device)
        self.stats = {"rays": len(rays), "pairs": 0, "tested": 0, "batches": 0}
        start = None
        if len(rays) and self.num_triangles:
            with torch.no_grad():
                if np.all(rays[:, :3] == rays[0, :3]):
                    self._cast_from_point(rays[0, :3].astype(np.float64), rays[:, 3:], best, float(max_distance))
                else:
                    pivot, start = _common_point(rays)
                    if pivot is not None:  # rays continued beyond their sensor: cast from it, hits past the start
                        start_t = torch.as_tensor(start, device=self.device)
                        self._cast_from_point(pivot, rays[:, 3:], best, np.inf, start_t.float())
                    else:
                        self._cast_general(rays, best)
        hits = self._hits(best)
        if start is not None:
            hits.t_hit = (hits.t_hit - start).astype(np.float32)
        return hits

    # ---------------------------------------------------------------- rays from one point
    def _cast_from_point(self, origin: np.ndarray, directions: np.ndarray, best: torch.Tensor,
                         max_distance: float, t_min: torch.Tensor | None = None) -> None:
        """Rays from ``origin`` along ``directions``; t_min: (N,) hits at or before it do not count."""
        rel = self._v - torch.as_tensor(origin, device=self.device)
        a, b, c = (rel[self._tri[:, k]] for k in range(3))
        n = torch.linalg.cross(b - a, c - a)
        # Per triangle: the three edge cross products, the normal and the plane offset a . n (float64 -> float32).
        consts = torch.cat([torch.linalg.cross(a, b), torch.linalg.cross(b, c), torch.linalg.cross(c, a), n,
                            (a * n).sum(1, keepdim=True)], dim=1).float()
        first, count = _azimuth_bins(a, b, c)
        centre = (a + b + c) / 3
        radius = torch.stack([(p - centre).norm(dim=1) for p in (a, b, c)], 1).amax(1)
        count = torch.where(centre.norm(dim=1) - radius <= max_distance, count, 0)

        tri = torch.repeat_interleave(torch.arange(self.num_triangles, device=self.device), count)
        start = torch.cumsum(count, 0) - count
        within = torch.arange(len(tri), device=self.device) - torch.repeat_interleave(start, count)
        tri_bin = (torch.repeat_interleave(first, count) + within) % AZIMUTH_BINS
        order = torch.argsort(tri_bin, stable=True)
        tri_sorted = tri[order]
        tri_count = torch.bincount(tri_bin, minlength=AZIMUTH_BINS)
        tri_start = torch.cumsum(tri_count, 0) - tri_count

        d = torch.as_tensor(directions, device=self.device)
        az = torch.atan2(d[:, 1].double(), d[:, 0].double()) % (2 * np.pi)
        ray_bin = (az * (AZIMUTH_BINS / (2 * np.pi))).long().clamp_(0, AZIMUTH_BINS - 1)
        ray_sorted = torch.argsort(ray_bin, stable=True)
        ray_count = torch.bincount(ray_bin, minlength=AZIMUTH_BINS)
        ray_start = torch.cumsum(ray_count, 0) - ray_count

        # Bins in order of their ray and triangle counts, cut into runs of similar ray and triangle counts
        # (within a factor 1 / self._similar) that fit a chunk: each run is one dense batch (bins x rays x
        # triangles, padded with a ray and a triangle that never hit), so few batches cover a cast.
        self.stats["pairs"] = int((ray_count * tri_count).sum())
        rc, tc = ray_count.cpu().numpy(), tri_count.cpu().numpy()
        ray_class = np.floor(np.log(np.maximum(rc, 1)) / -np.log(self._similar))
        bin_order = np.lexsort((-tc, -ray_class))
        bin_order = bin_order[(rc[bin_order] > 0) & (tc[bin_order] > 0)]
        consts = torch.cat([consts, consts.new_full((1, 13), float("nan"))])  # the padding triangle
        d = torch.cat([d, d.new_zeros(1, 3)])  # the padding ray (direction 0 meets nothing) ...
        extra = torch.full((1,), _NO_HIT, dtype=torch.int64, device=self.device)  # ... and its slot in best
        hits = torch.cat([best, extra])
        if t_min is not None:
            t_min = torch.cat([t_min, t_min.new_zeros(1)])
        no_tri, no_ray = len(consts) - 1, len(d) - 1
        i = 0
        while i < len(bin_order):
            width, height = int(tc[bin_order[i]]), int(rc[bin_order[i]])
            j = i + 1
            while j < len(bin_order) and ray_class[bin_order[j]] == ray_class[bin_order[i]] \
                    and tc[bin_order[j]] > self._similar * width \
                    and (j + 1 - i) * max(height, int(rc[bin_order[j]])) * width <= self.chunk:
                height = max(height, int(rc[bin_order[j]]))
                j += 1
            bins = torch.as_tensor(bin_order[i:j], device=self.device)
            rank = torch.arange(height, device=self.device)
            rays = torch.where(rank < ray_count[bins, None],
                               ray_sorted[(ray_start[bins, None] + rank).clamp_max(len(ray_sorted) - 1)], no_ray)
            step = max(1, self.chunk // ((j - i) * height))  # a bin too big for a chunk: a slice at a time
            for w0 in range(0, width, step):
                slot = torch.arange(w0, min(w0 + step, width), device=self.device)
                tris = torch.where(slot < tri_count[bins, None],
                                   tri_sorted[(tri_start[bins, None] + slot).clamp_max(len(tri_sorted) - 1)], no_tri)
                self._test_bins(d[rays], consts[tris], rays, tris, hits, max_distance,
                                None if t_min is None else t_min[rays])
                self.stats["tested"] += rays.numel() * len(slot)
                self.stats["batches"] += 1
            i = j
        best.copy_(hits[:-1])

    @staticmethod
    def _test_bins(d: torch.Tensor, k: torch.Tensor, rays: torch.Tensor, tris: torch.Tensor, best: torch.Tensor,
                   max_distance: float, t_min: torch.Tensor | None) -> None:
        """Every ray of a bin against every triangle of it: d (B, R, 3) directions, k (B, W, 13) constants of
        ``tris`` (B, W). The dot products are spelt out, not a matrix product: a BLAS kernel's summation
        order (or TF32 on a GPU) would break the exact negation that keeps neighbouring triangles watertight."""
        dx, dy, dz = d[..., 0:1], d[..., 1:2], d[..., 2:3]  # (B, R, 1)
        kt = k.transpose(1, 2)[:, :, None, :]  # (B, 13, 1, W)
        e1, e2, e3, dn = (dx * kt[:, j] + dy * kt[:, j + 1] + dz * kt[:, j + 2] for j in (0, 3, 6, 9))
        t = kt[:, 12] / dn
        inside = ((e1 >= 0) & (e2 >= 0) & (e3 >= 0)) | ((e1 <= 0) & (e2 <= 0) & (e3 <= 0))
        ok = inside & (t <= max_distance)
        if t_min is not None:
            ok &= t > t_min[..., None]
        _keep_nearest(best, rays, tris[:, None, :].expand_as(t), t, ok, reduce_dim=2)

    # ---------------------------------------------------------------- rays from anywhere
    def _cast_general(self, rays: np.ndarray, best: torch.Tensor) -> None:
        """Rays from anywhere: each against the triangles of the cluster boxes it passes through."""
        reference = rays[:, :3].astype(np.float64).mean(0)
        rel = self._v - torch.as_tensor(reference, device=self.device)
        lo, hi = self._cluster_boxes(rel)
        o = torch.as_tensor(rays[:, :3].astype(np.float64) - reference, device=self.device).float()
        d = torch.as_tensor(rays[:, 3:], device=self.device)
        inv = 1.0 / torch.where(d == 0, torch.full_like(d, 1e-30), d)
        verts = rel.float()
        step = max(1, self.chunk // max(len(lo), 1))
        for r0 in range(0, len(rays), step):
            r1 = min(r0 + step, len(rays))
            # slab test of each ray's half line against every cluster's box
            t0 = (lo[None] - o[r0:r1, None]) * inv[r0:r1, None]
            t1 = (hi[None] - o[r0:r1, None]) * inv[r0:r1, None]
            near = torch.minimum(t0, t1).amax(2)
            far = torch.maximum(t0, t1).amin(2)
            ray, cluster = torch.nonzero((near <= far) & (far >= 0), as_tuple=True)
            ray = (ray + r0).repeat_interleave(CLUSTER)
            tri = (cluster[:, None] * CLUSTER + torch.arange(CLUSTER, device=self.device)).reshape(-1)
            valid = tri < self.num_triangles
            ray, tri = ray[valid], tri[valid]
            self.stats["pairs"] += len(tri)
            self.stats["tested"] += len(tri)
            self.stats["batches"] += (len(tri) + self.chunk - 1) // self.chunk
            for p0 in range(0, len(tri), self.chunk):
                rr, tt = ray[p0:p0 + self.chunk], tri[p0:p0 + self.chunk]
                orr, dr = o[rr], d[rr]
                a, b, c = (verts[self._tri[tt, j]] - orr for j in range(3))
                n = torch.linalg.cross(b - a, c - a)
                e1 = (dr * torch.linalg.cross(a, b)).sum(1)
                e2 = (dr * torch.linalg.cross(b, c)).sum(1)
                e3 = (dr * torch.linalg.cross(c, a)).sum(1)
                t = (a * n).sum(1) / (dr * n).sum(1)
                inside = ((e1 >= 0) & (e2 >= 0) & (e3 >= 0)) | ((e1 <= 0) & (e2 <= 0) & (e3 <= 0))
                _keep_nearest(best, rr, tt, t, inside)

    def _cluster_boxes(self, rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, 3) float32 corners of the boxes around each run of CLUSTER triangles, relative to the reference,
        padded by a hair so float32 rounding cannot shave a triangle off its box."""
        t = self.num_triangles
        pts = rel[self._tri].reshape(t, 9)
        pad = (t + CLUSTER - 1) // CLUSTER * CLUSTER - t
        pts = torch.cat([pts, pts[-1:].expand(pad, 9)]).reshape(-1, CLUSTER * 3, 3)
        lo, hi = pts.amin(1), pts.amax(1)
        margin = 1e-6 * (1.0 + torch.maximum(lo.abs(), hi.abs()))
        return (lo - margin).float(), (hi + margin).float()

    def _hits(self, best: torch.Tensor) -> RayHits:
        hit = best != _NO_HIT
        ids = torch.where(hit, best & 0xFFFFFFFF, 0)
        t = torch.where(hit, (best >> 32).int().view(torch.float32), float("inf"))
        normals = torch.where(hit[:, None], self._normals[ids], 0.0)
        prim = ids.cpu().numpy().astype(np.uint32)
        prim[~hit.cpu().numpy()] = MISS
        return RayHits(t.cpu().numpy(), prim, normals.cpu().numpy())


def _common_point(rays: np.ndarray, tolerance: float = 1e-6) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The point all rays' lines pass through, each ray starting at or beyond it (a sensor's rays continued
    from where they left something), and (N,) how far along each ray its origin lies from it; (None, None)
    when there is none (the lines must pass within float32 rounding of it: ``tolerance`` x (1 + |origin|))."""
    o, d = rays[:, :3].astype(np.float64), rays[:, 3:].astype(np.float64)
    u = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    across = np.eye(3)[None] - u[:, :, None] * u[:, None, :]  # projections onto each line's normal plane
    lhs, rhs = across.sum(0), np.einsum("nij,nj->i", across, o)
    if np.linalg.cond(lhs) > 1e6:  # (nearly) parallel rays meet nowhere
        return None, None
    pivot = np.linalg.solve(lhs, rhs)
    start = np.einsum("ij,ij->i", o - pivot, d) / np.einsum("ij,ij->i", d, d)
    off = np.linalg.norm(o - pivot - start[:, None] * d, axis=1)
    if np.all(off <= tolerance * (1.0 + np.abs(o).max(1))) and np.all(start >= 0):
        return pivot, start
    return None, None


def _azimuth_bins(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T,) first azimuth bin and number of bins of each triangle (vertices relative to the origin, float64):
    the shortest arc holding its vertices' azimuths (a triangle seen from outside spans the arc between its
    outermost vertices), padded; every bin for triangles over the origin, near its axis, or spanning half a turn."""
    xy = torch.stack([a[:, :2], b[:, :2], c[:, :2]], 1)  # (T, 3, 2)
    az, _ = torch.sort(torch.atan2(xy[..., 1], xy[..., 0]) % (2 * np.pi), dim=1)
    gaps = torch.stack([az[:, 1] - az[:, 0], az[:, 2] - az[:, 1], az[:, 0] + 2 * np.pi - az[:, 2]], 1)
    widest, after = gaps.max(1)
    arc_start = az.gather(1, ((after + 1) % 3)[:, None])[:, 0]
    arc = 2 * np.pi - widest
    width = 2 * np.pi / AZIMUTH_BINS
    first = torch.floor((arc_start - AZIMUTH_PAD) / width).long()
    last = torch.floor((arc_start + arc + AZIMUTH_PAD) / width).long()
    count = last - first + 1
    everywhere = (arc >= np.pi - 1e-6) | (xy.norm(dim=2).amin(1) < NEAR_AXIS) | (count >= AZIMUTH_BINS)
    first = torch.where(everywhere, 0, first % AZIMUTH_BINS)
    count = torch.where(everywhere, AZIMUTH_BINS, count)
    return first, count


def _keep_nearest(best: torch.Tensor, ray: torch.Tensor, tri: torch.Tensor, t: torch.Tensor,
                  inside: torch.Tensor, reduce_dim: int | None = None) -> None:
    """Fold hits (ray, triangle, t) where ``inside`` and 0 < t < inf into ``best`` (per ray: nearest, then lowest
    id). ``reduce_dim``: a dimension of t along which all pairs share their ray (``ray`` lacks it)."""
    ok = inside & (t > 0) & torch.isfinite(t)
    key = torch.where(ok, (t.clamp_min(0).view(torch.int32).long() << 32) | tri, _NO_HIT)
    if reduce_dim is not None:
        key = key.amin(reduce_dim)
    best.scatter_reduce_(0, ray.reshape(-1), key.reshape(-1), reduce="amin")
