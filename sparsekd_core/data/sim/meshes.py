"""Triangle meshes for the simulated world, built with numpy from a few unit templates.

A :class:`Mesh` carries three material values per triangle, so a ray hit's primitive id gives its material:
``reflectivity`` (0..1, the reflectance at the LiDAR's wavelength on KITTI's intensity scale, seen head-on),
``returns`` (the chance that the surface sends a pulse back at all: 1 for opaque surfaces, low for glass,
which mostly lets the pulse through or mirrors it away) and ``gloss`` (0..1, the share of the reflectance that is
mirror-like and reaches the sensor only near normal incidence: a car's clear coat; 0 for matte surfaces). Parts are
added to a :class:`MeshBuilder` by scaling, rotating (about z) and translating unit templates: a whole road user
is a dozen array operations, which keeps per-frame actor meshes cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np


#: The share of LiDAR pulses a window sends back (glass mostly transmits or mirrors them away): the ``returns``
#: of glass triangles, on vehicles and on facades alike.
GLASS_RETURNS = 0.12


@dataclass
class Mesh:
    """vertices (V, 3) float32 metres; triangles (T, 3) int32 vertex indices; reflectivity (T,) float32 0..1;
    returns (T,) float32 0..1, the chance of a return off each triangle (None: all 1, opaque); gloss (T,) float32
    0..1, the mirror-like share of each triangle's reflectance (None: all 0, matte)."""

    vertices: np.ndarray
    triangles: np.ndarray
    reflectivity: np.ndarray
    returns: np.ndarray | None = None
    gloss: np.ndarray | None = None

    def __post_init__(self):
        if self.returns is None:
            self.returns = np.ones(len(self.triangles), np.float32)
        if self.gloss is None:
            self.gloss = np.zeros(len(self.triangles), np.float32)

    @property
    def num_triangles(self) -> int:
        return len(self.triangles)

    @staticmethod
    def empty() -> "Mesh":
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros(0, np.float32))

    def with_vertices(self, vertices: np.ndarray) -> "Mesh":
        """The same triangles and materials on other vertex positions."""
        return replace(self, vertices=np.asarray(vertices, np.float32))


def merge(meshes: list[Mesh]) -> tuple[Mesh, np.ndarray]:
    """Concatenate meshes -> (one mesh, (T,) int32 index of the source mesh of every triangle)."""
    if not meshes:
        return Mesh.empty(), np.zeros(0, np.int32)
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    tris = np.concatenate([m.triangles + off for m, off in zip(meshes, offsets)])
    owner = np.repeat(np.arange(len(meshes), dtype=np.int32), [m.num_triangles for m in meshes])
    return Mesh(np.concatenate([m.vertices for m in meshes]).astype(np.float32), tris.astype(np.int32),
                np.concatenate([m.reflectivity for m in meshes]).astype(np.float32),
                np.concatenate([m.returns for m in meshes]).astype(np.float32),
                np.concatenate([m.gloss for m in meshes]).astype(np.float32)), owner


def pose_meshes(meshes: list[Mesh], boxes: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """Place local-frame meshes at boxes (K, 7) (centre x y z, yaw) in one vectorised step.

    Returns (one world-frame mesh, (T,) int32 index of the mesh each triangle came from).
    """
    merged, owner = merge(meshes)
    if not meshes:
        return merged, owner
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    per_vertex = np.repeat(np.arange(len(meshes)), [len(m.vertices) for m in meshes])
    c = np.cos(boxes[per_vertex, 6]).astype(np.float32)
    s = np.sin(boxes[per_vertex, 6]).astype(np.float32)
    v = merged.vertices
    out = np.empty_like(v)
    out[:, 0] = c * v[:, 0] - s * v[:, 1]
    out[:, 1] = s * v[:, 0] + c * v[:, 1]
    out[:, 2] = v[:, 2]
    out += boxes[per_vertex, :3].astype(np.float32)
    return merged.with_vertices(out), owner


# --------------------------------------------------------------------------------------------- templates
@lru_cache(maxsize=None)
def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    """Cube of side 1 centred at the origin: 8 vertices, 12 triangles."""
    v = np.array([[x, y, z] for z in (-0.5, 0.5) for y in (-0.5, 0.5) for x in (-0.5, 0.5)], np.float32)
    t = np.array([[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
                  [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]], np.int32)
    return v, t


@lru_cache(maxsize=None)
def _unit_cylinder(segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed cylinder of radius 1 along z from -0.5 to 0.5."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a)], axis=1)
    bottom = np.column_stack([ring, np.full(segments, -0.5)])
    top = np.column_stack([ring, np.full(segments, 0.5)])
    v = np.concatenate([bottom, top, [[0, 0, -0.5], [0, 0, 0.5]]]).astype(np.float32)
    i = np.arange(segments)
    j = (i + 1) % segments
    side = np.concatenate([np.stack([i, j, i + segments], 1), np.stack([j, j + segments, i + segments], 1)])
    cb, ct = 2 * segments, 2 * segments + 1
    caps = np.concatenate([np.stack([np.full(segments, cb), j, i], 1),
                           np.stack([np.full(segments, ct), i + segments, j + segments], 1)])
    return v, np.concatenate([side, caps]).astype(np.int32)


@lru_cache(maxsize=None)
def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """Regular icosahedron: its 12 vertices are the cyclic permutations of (0, +-1, +-phi); its 20 faces are
    the vertex triples 2 apart from each other (its edge length), wound counter-clockwise seen from outside."""
    phi = (1.0 + np.sqrt(5.0)) / 2.0
    base = np.array([[0, s1, s2 * phi] for s1 in (-1, 1) for s2 in (-1, 1)], np.float64)
    v = np.concatenate([np.roll(base, k, axis=1) for k in range(3)])
    edge = np.isclose(np.linalg.norm(v[:, None] - v[None], axis=2), 2.0)
    faces = np.array([(i, j, k) for i in range(12) for j in range(i + 1, 12) for k in range(j + 1, 12)
                      if edge[i, j] and edge[j, k] and edge[i, k]])
    outward = np.einsum("ij,ij->i", np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]),
                        v[faces].sum(1)) > 0
    faces[~outward] = faces[~outward][:, [0, 2, 1]]
    return v, faces


def _subdivide_midpoint(v: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into 4 at its edge midpoints (one new vertex per edge, shared by both triangles)."""
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    unique, index = np.unique(edges, axis=0, return_inverse=True)
    mid = len(v) + index.reshape(3, -1)  # midpoint of edges ab, bc, ca of every triangle
    ab, bc, ca = mid
    a, b, c = t.T
    v = np.concatenate([v, v[unique].mean(axis=1)])
    t = np.concatenate([np.stack(f, 1) for f in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return v, t


@lru_cache(maxsize=None)
def _unit_sphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Sphere of radius 1: an icosahedron (20 triangles), each subdivision x4 triangles, vertices pushed out
    onto the sphere."""
    v, t = _icosahedron()
    for _ in range(subdivisions):
        v, t = _subdivide_midpoint(v, t)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32), t.astype(np.int32)


_AXES = {  # maps a template's z axis onto the wanted axis
    "z": np.eye(3, dtype=np.float32),
    "y": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float32).T,
    "x": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float32).T,
}


class MeshBuilder:
    """Accumulates parts in one local frame; :meth:`build` returns the combined :class:`Mesh`."""

    def __init__(self):
        self._verts: list[np.ndarray] = []
        self._tris: list[np.ndarray] = []
        self._refl: list[np.ndarray] = []
        self._returns: list[np.ndarray] = []
        self._gloss: list[np.ndarray] = []
        self._count = 0

    def add(self, vertices: np.ndarray, triangles: np.ndarray, reflectivity: float | np.ndarray,
            returns: float | np.ndarray = 1.0, gloss: float | np.ndarray = 0.0) -> "MeshBuilder":
        vertices = np.asarray(vertices, np.float32)
        triangles = np.asarray(triangles, np.int32)
        self._verts.append(vertices)
        self._tris.append(triangles + self._count)
        self._refl.append(np.broadcast_to(np.asarray(reflectivity, np.float32), (len(triangles),)))
        self._returns.append(np.broadcast_to(np.asarray(returns, np.float32), (len(triangles),)))
        self._gloss.append(np.broadcast_to(np.asarray(gloss, np.float32), (len(triangles),)))
        self._count += len(vertices)
        return self

    def add_mesh(self, mesh: Mesh) -> "MeshBuilder":
        """Append a whole mesh (same frame)."""
        return self.add(mesh.vertices, mesh.triangles, mesh.reflectivity, mesh.returns, mesh.gloss)

    def _place(self, v: np.ndarray, t: np.ndarray, scale, centre, yaw: float, reflectivity, axis: str = "z",
               returns: float = 1.0, gloss: float = 0.0):
        v = (v * np.asarray(scale, np.float32)) @ _AXES[axis]
        if yaw:
            c, s = np.cos(yaw), np.sin(yaw)
            v = v @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float32)
        return self.add(v + np.asarray(centre, np.float32), t, reflectivity, returns, gloss)

    def box(self, centre, size, reflectivity, yaw: float = 0.0, returns: float = 1.0,
            gloss: float = 0.0) -> "MeshBuilder":
        """Box with full extents ``size`` (3,), turned by ``yaw`` about z around its centre; ``returns``: the
        share of rays it sends back (GLASS_RETURNS for a window); ``gloss``: its mirror-like share (Mesh)."""
        v, t = _unit_box()
        return self._place(v, t, size, centre, yaw, reflectivity, returns=returns, gloss=gloss)

    def tapered_box(self, centre, size, top_scale=(1.0, 1.0), top_shift_x: float = 0.0,
                    reflectivity: float = 0.3, yaw: float = 0.0) -> "MeshBuilder":
        """Box whose top face is scaled by ``top_scale`` (x, y) and shifted by ``top_shift_x`` (a car cabin)."""
        v, t = _unit_box()
        v = v.copy()
        top = v[:, 2] > 0
        v[top, 0] *= top_scale[0]
        v[top, 1] *= top_scale[1]
        v[top, 0] += top_shift_x / max(float(size[0]), 1e-6)
        return self._place(v, t, size, centre, yaw, reflectivity)

    def cylinder(self, centre, radius: float, length: float, reflectivity, axis: str = "z",
                 segments: int = 12, yaw: float = 0.0) -> "MeshBuilder":
        """Closed cylinder along ``axis`` ('x', 'y' or 'z'), turned by ``yaw`` about z."""
        v, t = _unit_cylinder(segments)
        return self._place(v, t, (radius, radius, length), centre, yaw, reflectivity, axis)

    def ring(self, centre, radius: float, tube: float, reflectivity, axis: str = "z", segments: int = 16,
             sides: int = 4) -> "MeshBuilder":
        """A closed ring about ``axis`` through ``centre``: a tube of ``sides``-gon section, ``tube`` in radius,
        whose centre line is a circle of ``radius`` (a bicycle's tyre or rim), lofted through ``segments``
        stations; the last station repeats the first, so the caps the loft puts at its ends lie inside the tube."""
        theta = np.linspace(0.0, 2 * np.pi, segments + 1)
        phi = np.arange(sides) * 2 * np.pi / sides
        radial = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], axis=1)[:, None, :]
        across = (radius + tube * np.cos(phi))[None, :, None] * radial
        rings = across + (tube * np.sin(phi))[None, :, None] * np.array([0.0, 0.0, 1.0])
        rings = rings.astype(np.float32) @ _AXES[axis] + np.asarray(centre, np.float32)
        return self.loft(rings, reflectivity)

    def ellipsoid(self, centre, radii, reflectivity, yaw: float = 0.0,
                  rng: np.random.Generator | None = None, roughness: float = 0.0,
                  subdivisions: int = 1) -> "MeshBuilder":
        """Ellipsoid with semi-axes ``radii`` (3,); ``roughness`` > 0 jitters vertices radially (foliage);
        ``subdivisions`` 0 gives 20 triangles (enough for a head), 1 gives 80."""
        v, t = _unit_sphere(subdivisions)
        if roughness > 0 and rng is not None:
            v = v * (1.0 + roughness * rng.uniform(-1, 1, size=(len(v), 1))).astype(np.float32)
        return self._place(v, t, radii, centre, yaw, reflectivity)

    def loft(self, rings: np.ndarray, reflectivity: np.ndarray, returns: np.ndarray | float = 1.0,
             cap_reflectivity: float | None = None, gloss: np.ndarray | float = 0.0,
             cap_gloss: float | None = None) -> "MeshBuilder":
        """A closed tube through S cross-section rings of K vertices each (S, K, 3), capped at both ends.

        reflectivity / returns / gloss: per band between ring k and k+1 of each pair of stations, shape (S-1, K)
        (or scalars); each band is two triangles. The end caps are fans around each end ring's centroid,
        with ``cap_reflectivity`` and ``cap_gloss`` (default: the first band's).
        """
        rings = np.asarray(rings, np.float32)
        s, k = rings.shape[:2]
        refl = np.broadcast_to(np.asarray(reflectivity, np.float32), (s - 1, k))
        ret = np.broadcast_to(np.asarray(returns, np.float32), (s - 1, k))
        gl = np.broadcast_to(np.asarray(gloss, np.float32), (s - 1, k))
        idx = np.arange(s * k).reshape(s, k)
        a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
        c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
        tris = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)], axis=1).reshape(-1, 3)
        # triangles run (station pair, [k first halves, k second halves]): materials follow that order
        self.add(rings.reshape(-1, 3), tris, np.concatenate([refl, refl], axis=1).reshape(-1),
                 np.concatenate([ret, ret], axis=1).reshape(-1), np.concatenate([gl, gl], axis=1).reshape(-1))
        cap = float(refl[0, 0] if cap_reflectivity is None else cap_reflectivity)
        cap_gl = float(gl[0, 0] if cap_gloss is None else cap_gloss)
        for end in (0, s - 1):
            ring = rings[end]
            centre = ring.mean(axis=0, keepdims=True)
            i = np.arange(k)
            fan = np.stack([np.full(k, k), i, (i + 1) % k], 1)
            if end:
                fan = fan[:, [0, 2, 1]]
            self.add(np.concatenate([ring, centre]), fan, cap, gloss=cap_gl)
        return self

    def quad(self, corners, reflectivity) -> "MeshBuilder":
        """Planar quad from 4 corners (4, 3) in order."""
        return self.add(np.asarray(corners, np.float32), np.array([[0, 1, 2], [0, 2, 3]], np.int32), reflectivity)

    def build(self) -> Mesh:
        if not self._verts:
            return Mesh.empty()
        return Mesh(np.concatenate(self._verts), np.concatenate(self._tris), np.concatenate(self._refl),
                    np.concatenate(self._returns), np.concatenate(self._gloss))
