"""Road users of the simulated world: their size distributions, their meshes and their class names.

An actor's box is the project's box: (x, y, z, dx, dy, dz, yaw), gravity centre, full extents. Its mesh
is built in the box's own frame (x forward) and stays inside the box: a thin margin on the sides, top,
front and back, and none at the bottom so wheels and feet stand on the ground.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsekd_core.data.sim.meshes import Mesh, MeshBuilder

#: The kinds of road user and the dataset class each one is written as.
KINDS: tuple[str, ...] = ("car", "van", "truck", "pedestrian", "cyclist")
KITTI_NAMES = {"car": "Car", "van": "Van", "truck": "Truck", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}
WAYMO_NAMES = {"car": "Vehicle", "van": "Vehicle", "truck": "Vehicle", "pedestrian": "Pedestrian",
               "cyclist": "Cyclist"}
VEHICLE_KINDS = ("car", "van", "truck")

#: Size distributions (length dx, width dy, height dz): mean, standard deviation, clip low, clip high (metres).
SIZE_STATS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "car": ((4.5, 0.35, 3.6, 5.4), (1.8, 0.08, 1.6, 2.05), (1.5, 0.08, 1.35, 1.75)),
    "van": ((5.2, 0.35, 4.5, 6.2), (2.0, 0.08, 1.85, 2.2), (2.2, 0.15, 1.9, 2.6)),
    "truck": ((8.0, 1.2, 6.0, 11.0), (2.5, 0.1, 2.3, 2.6), (3.2, 0.3, 2.7, 3.8)),
    "pedestrian": ((0.62, 0.08, 0.45, 0.9), (0.62, 0.07, 0.45, 0.85), (1.74, 0.09, 1.45, 1.98)),
    "cyclist": ((1.8, 0.1, 1.55, 2.05), (0.62, 0.06, 0.5, 0.8), (1.72, 0.08, 1.5, 1.95)),
}
_SIZE_ARRAYS = {kind: tuple(np.array(col) for col in zip(*stats)) for kind, stats in SIZE_STATS.items()}


class SizeSampler:
    """:func:`sample_size` drawn in batches (numpy's per-call cost dominates for 3 numbers)."""

    BATCH = 64

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._pool: dict[str, list[np.ndarray]] = {}

    def __call__(self, kind: str) -> np.ndarray:
        pool = self._pool.get(kind)
        if not pool:
            mean, std, lo, hi = _SIZE_ARRAYS[kind]
            batch = np.round(np.clip(self._rng.normal(mean, std, size=(self.BATCH, 3)), lo, hi), 2)
            pool = self._pool[kind] = list(batch[::-1])
        return pool.pop()
#: Gap left between the mesh and its box on every face but the bottom (keeps range noise inside the box).
MESH_MARGIN = 0.03


@dataclass
class Actor:
    """One road user in world coordinates.

    kind: one of KINDS. box: (7,) float64 world box. velocity: (3,) m/s in the world frame
    (zero for parked cars and standing people). track_id: stable across frames of a drive.
    mesh: local-frame mesh (box frame, origin at the gravity centre).
    """

    kind: str
    box: np.ndarray
    velocity: np.ndarray
    track_id: int
    mesh: Mesh

    def at_time(self, dt: float) -> np.ndarray:
        """The world box after moving ``dt`` seconds at constant velocity (3D: it follows the road's slope)."""
        box = self.box.copy()
        box[:3] += self.velocity * dt
        return box


def sample_size(kind: str, rng: np.random.Generator) -> np.ndarray:
    """(3,) dx dy dz drawn from the kind's clipped normal size distribution, in whole centimetres
    (what a KITTI label holds)."""
    mean, std, lo, hi = _SIZE_ARRAYS[kind]
    return np.round(np.clip(rng.normal(mean, std), lo, hi), 2)


def _paint(rng: np.random.Generator) -> float:
    # Car paints: many dark/grey cars with low returns, some white/silver with high ones.
    return float(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.2, 0.45), rng.uniform(0.45, 0.75)],
                            p=[0.35, 0.4, 0.25]))


def vehicle_mesh(kind: str, size: np.ndarray, rng: np.random.Generator) -> Mesh:
    """Body, cabin or cargo box, wheels, licence plates; in the box frame (x forward)."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    L, W, top = length - 2 * m, width - 2 * m, height / 2 - m
    z0 = -height / 2  # the ground
    paint, glass, rubber, plate = _paint(rng), 0.04, 0.05, 0.9
    b = MeshBuilder()
    radius = {"car": 0.32, "van": 0.36, "truck": 0.5}[kind] * rng.uniform(0.92, 1.08)
    tyre = 0.22 if kind != "truck" else 0.3
    wheel_y = W / 2 - tyre / 2
    if kind == "truck":
        cab_len = min(2.3, 0.3 * L)
        axles = [L / 2 - 1.3, -L / 2 + 1.5, -L / 2 + 2.9]
        clearance = z0 + 0.55
        cab_x = L / 2 - cab_len / 2
        b.box((cab_x, 0, (clearance + z0 + 0.92 * height) / 2), (cab_len, W, 0.92 * height - 0.55), paint)
        b.box((L / 2 - 0.02, 0, z0 + 0.85 * height - 0.4), (0.05, W - 0.3, 0.7), glass)  # windscreen
        cargo_len = L - cab_len - 0.25
        b.box((-L / 2 + cargo_len / 2, 0, (clearance + z0 + height - m) / 2), (cargo_len, W, top - clearance),
              float(rng.uniform(0.3, 0.8)))
    else:
        clearance = z0 + radius * 0.75
        if kind == "car":
            body_top = z0 + 0.56 * height
            b.box((0, 0, (clearance + body_top) / 2), (L, W, body_top - clearance), paint)
            cab_len = 0.52 * L
            b.tapered_box((-0.05 * L, 0, (body_top + top) / 2), (cab_len, W - 0.08, top - body_top),
                          top_scale=(0.62, 0.85), top_shift_x=-0.07 * L, reflectivity=glass)
            b.box((-0.05 * L - 0.06 * L, 0, top - 0.02), (0.3 * L, W * 0.78, 0.04), paint)  # roof
        else:  # van: short bonnet, tall box
            body_top = z0 + 0.45 * height
            b.box((0, 0, (clearance + body_top) / 2), (L, W, body_top - clearance), paint)
            b.tapered_box((-0.1 * L, 0, (body_top + top) / 2), (0.8 * L, W, top - body_top),
                          top_scale=(0.96, 0.97), top_shift_x=-0.01 * L, reflectivity=paint)
            b.box((0.3 * L - 0.02, 0, (body_top + top) / 2 + 0.1), (0.06, W - 0.2, 0.45 * (top - body_top)), glass)
        axles = [L / 2 - 0.2 * L, -L / 2 + 0.2 * L]
    for ax in axles:
        for side in (-1, 1):
            b.cylinder((ax, side * wheel_y, z0 + radius), radius, tyre, rubber, axis="y", segments=8)
    for end in (-1, 1):  # licence plates: one quad on each end face
        x, z = end * L / 2, clearance + 0.2
        b.quad([(x, -0.26, z - 0.06), (x, 0.26, z - 0.06), (x, 0.26, z + 0.06), (x, -0.26, z + 0.06)], plate)
    return b.build()


def pedestrian_mesh(size: np.ndarray, rng: np.random.Generator, walking: bool) -> Mesh:
    """Legs, torso, arms and head inside a (dx, dy, dz) box; a walking stride spreads legs along x."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    z0 = -height / 2
    cloth_top, cloth_low, skin = rng.uniform(0.1, 0.6), rng.uniform(0.08, 0.5), rng.uniform(0.25, 0.4)
    b = MeshBuilder()
    hip = z0 + 0.48 * height
    shoulder = z0 + 0.81 * height
    head_r = min(0.11, (height / 2 - m - shoulder) / 2.2)
    leg_w = min(0.14, (width - 2 * m) / 3.2)
    stride = min(0.22, max(0.0, (length - 2 * m - leg_w) / 2)) if walking else 0.0
    for side, fwd in ((-1, 1), (1, -1)):
        b.box((fwd * stride, side * leg_w * 0.8, (z0 + hip) / 2), (leg_w, leg_w, hip - z0), cloth_low)
    torso_w = min(0.42, width - 2 * m - 0.16)
    b.box((0, 0, (hip + shoulder) / 2), (min(0.24, length - 2 * m), torso_w, shoulder - hip), cloth_top)
    arm = 0.08
    arm_y = torso_w / 2 + arm / 2 + 0.005
    arm_len = shoulder - hip + 0.05
    swing = stride * 0.6
    for side, fwd in ((-1, -1), (1, 1)):
        b.box((fwd * swing * 0.5, side * arm_y, shoulder - arm_len / 2), (arm, arm, arm_len), cloth_top)
    b.ellipsoid((0, 0, shoulder + 0.04 + head_r), (head_r * 0.9, head_r * 0.8, head_r), skin, subdivisions=0)
    mesh = b.build()
    return _fit_inside(mesh, size)


def cyclist_mesh(size: np.ndarray, rng: np.random.Generator) -> Mesh:
    """A bicycle (two wheels, frame, handlebar) and a rider leaning forward, inside a (dx, dy, dz) box."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    z0 = -height / 2
    L = length - 2 * m
    r = min(0.34, L / 5.0)
    metal, tyre, cloth, skin = rng.uniform(0.3, 0.7), 0.06, rng.uniform(0.1, 0.6), 0.3
    b = MeshBuilder()
    wx = L / 2 - r
    for x in (-wx, wx):
        b.cylinder((x, 0, z0 + r), r, 0.04, tyre, axis="y", segments=10)
    frame_z = z0 + r + 0.25
    b.box((0, 0, frame_z), (2 * wx * 0.75, 0.04, 0.05), metal)  # top tube
    b.box((-wx * 0.35, 0, (z0 + r + frame_z) / 2 + 0.05), (0.05, 0.04, frame_z - z0 - r + 0.1), metal)  # seat tube
    bar_w = min(0.58, width - 2 * m)
    b.box((wx * 0.8, 0, frame_z + 0.22), (0.04, bar_w, 0.04), metal)  # handlebar
    hip = frame_z + 0.2
    shoulder = min(z0 + 0.82 * height, height / 2 - m - 0.25)
    torso_len = shoulder - hip
    b.tapered_box((-wx * 0.1, 0, (hip + shoulder) / 2), (0.28, min(0.4, width - 2 * m - 0.05), torso_len),
                  top_scale=(1.0, 1.0), top_shift_x=0.3 * torso_len, reflectivity=cloth)
    for side in (-1, 1):
        b.box((-wx * 0.2, side * 0.1, (z0 + r + hip) / 2), (0.12, 0.11, hip - z0 - r), cloth)
        b.box((wx * 0.45, side * bar_w * 0.4, (shoulder + frame_z + 0.22) / 2), (0.5 * wx, 0.07, 0.07), cloth)
    head_r = 0.11
    b.ellipsoid((0.3 * torso_len - wx * 0.05, 0, shoulder + 0.04 + head_r), (head_r, head_r * 0.85, head_r), skin,
                subdivisions=0)
    return _fit_inside(b.build(), size)


#: Wheels and feet stand this far above the box's bottom face, so returns off them are strictly inside.
GROUND_GAP = 0.005


def _fit_inside(mesh: Mesh, size: np.ndarray) -> Mesh:
    """Scale a mesh about the box centre so it stays inside the box less the margin; its lowest point
    sits GROUND_GAP above the box's bottom face (on the ground)."""
    half = np.asarray(size, np.float64) / 2
    v = mesh.vertices.astype(np.float64)
    bottom = -half[2] + GROUND_GAP
    v[:, 2] += bottom - v[:, 2].min()
    limit = np.array([half[0] - MESH_MARGIN, half[1] - MESH_MARGIN])
    reach = np.abs(v[:, :2]).max(axis=0)
    scale_xy = np.minimum(1.0, limit / np.maximum(reach, 1e-9))
    v[:, :2] *= scale_xy
    top_lim = half[2] - MESH_MARGIN
    top = v[:, 2].max()
    if top > top_lim:
        v[:, 2] = bottom + (v[:, 2] - bottom) * (top_lim - bottom) / (top - bottom)
    return Mesh(v.astype(np.float32), mesh.triangles, mesh.reflectivity)


def actor_mesh(kind: str, size: np.ndarray, rng: np.random.Generator, moving: bool = True) -> Mesh:
    """The local-frame mesh of a road user of ``kind`` with box extents ``size``."""
    if kind in VEHICLE_KINDS:
        return _fit_inside(vehicle_mesh(kind, size, rng), size)
    if kind == "pedestrian":
        return pedestrian_mesh(size, rng, walking=moving)
    if kind == "cyclist":
        return cyclist_mesh(size, rng)
    raise ValueError(f"unknown actor kind {kind!r}; expected one of {KINDS}")


class MeshLibrary:
    """A few mesh variants per kind (and pose: walking or standing), built once per scene.

    Building a mesh part by part costs about a millisecond in Python; a street frame holds 100-200
    road users. Each user instead takes a variant (its shape details and paint) and stretches it to
    its own box, which keeps shapes varied while a frame's meshes cost one multiply each. All
    variants are built up front, in a fixed order, so a scene's meshes depend only on its seed.
    """

    KEYS: tuple[tuple[str, bool], ...] = (("car", True), ("van", True), ("truck", True), ("pedestrian", True),
                                          ("pedestrian", False), ("cyclist", True))

    def __init__(self, rng: np.random.Generator, variants: int = 12):
        self._variants = variants
        self._cache: dict[tuple[str, bool], list[tuple[Mesh, np.ndarray]]] = {}
        for kind, moving in self.KEYS:
            built = []
            for _ in range(variants):
                base = sample_size(kind, rng)
                built.append((actor_mesh(kind, base, rng, moving=moving), base))
            self._cache[(kind, moving)] = built

    def mesh(self, kind: str, size: np.ndarray, moving: bool, rng: np.random.Generator) -> Mesh:
        """A local-frame mesh that fills a box of extents ``size`` (3,); ``rng`` picks the variant."""
        key = (kind, bool(moving) if kind == "pedestrian" else True)
        mesh, base = self._cache[key][int(rng.integers(self._variants))]
        scale = (np.asarray(size, np.float64) / base).astype(np.float32)
        return Mesh(mesh.vertices * scale, mesh.triangles, mesh.reflectivity)
