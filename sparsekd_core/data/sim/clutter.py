"""Dense street clutter: the person-sized things that stand along real town streets and that a detector
trained on sparse streets calls pedestrians or cyclists (``sparsekd-sim --street-clutter``).

A real sweep's false pedestrians stand 10-30 m away on 10-120 returns spanning 0.8-1.4 m of height, which session
31 took for posts, trunks, cabinets and the like. Version-4 streets hold a sign every 40 m, a bin every 30 m and a row
of bollards every 60 m a side; a cluttered scene adds, on each side, one of the things below about every
``spacing`` metres, in the furniture zone by the kerb and in the frontage strip by the buildings:

- short sign posts (1.2-2.2 m) with a small plate, parking meters and ticket machines;
- utility cabinets, post boxes, tall recycling containers, advertising pillars;
- fire hydrants and low posts;
- young trees (a thin trunk on stakes, a small crown from 1.6 m up) and person-high shrubs;
- bicycle stands with a parked bicycle now and then (actors.bicycle_builder: unlabelled, as KITTI's are).

Sizes are ordinary street-furniture dimensions (a parking meter's head about 0.3 x 0.2 x 0.45 m on a 1.1-1.3 m
post, a Litfass pillar 1.2-1.4 m across and 2.6-3.6 m high, a cabinet 0.6-1.4 m wide and 1.1-1.6 m high).
The clutter draws from its own random stream, so a seed's streets without it stay what they were.
It does fire as pedestrians (the bundled pillar student's false boxes on 60 hdl64 frames: 1.67 -> 4.42 a frame), but
two epochs of training on it left the real sweeps' false boxes where they were (docs/results.md "Sidewalk clutter").
"""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.actors import bicycle_builder
from sparsekd_core.data.sim.materials import BARK, FOLIAGE, METAL, PAINT, SIGN_FACE
from sparsekd_core.data.sim.meshes import MeshBuilder

KINDS = ("short_sign", "meter", "cabinet", "post_box", "container", "pillar", "hydrant", "young_tree", "shrub",
         "bike_stand")
#: A bicycle stand is a row of up to four hoops 0.9 m apart; everything else fits in a disc of this radius.
_STAND_STEP, _STAND_MAX_HOOPS, _ITEM_MAX_RADIUS = 0.9, 4, 0.8

# Each builder puts one item on the ground at (x, y, z) and returns its BEV footprint (x, y, dx, dy).


def _short_sign(b: MeshBuilder, x, y, z, rng):
    h = rng.uniform(1.2, 2.2)
    b.cylinder((x, y, z + h / 2), rng.uniform(0.03, 0.05), h, METAL, segments=6)
    w, hp = rng.uniform(0.25, 0.6), rng.uniform(0.2, 0.45)
    b.box((x, y, z + h - hp / 2), (0.03, w, hp), SIGN_FACE if rng.random() < 0.6 else rng.uniform(*PAINT),
          yaw=rng.uniform(0, np.pi))
    return x, y, w, w


def _meter(b: MeshBuilder, x, y, z, rng):
    if rng.random() < 0.5:  # a parking meter: a head on a post
        h = rng.uniform(1.0, 1.3)
        b.cylinder((x, y, z + h / 2), 0.05, h, METAL, segments=6)
        b.box((x, y, z + h + 0.2), (0.2, 0.3, 0.45), rng.uniform(*PAINT), yaw=rng.uniform(0, np.pi))
        return x, y, 0.4, 0.4
    # a ticket machine: a column as high as a person
    size = (rng.uniform(0.3, 0.45), rng.uniform(0.4, 0.6), rng.uniform(1.5, 1.9))
    b.box((x, y, z + size[2] / 2), size, rng.uniform(*PAINT), yaw=rng.uniform(0, np.pi))
    return x, y, 0.75, 0.75


def _block(b: MeshBuilder, x, y, z, size, yaw_sd: float, margin: float, rng):
    """A painted block of ``size`` standing on the ground, turned a little off the street (``yaw_sd`` rad)."""
    b.box((x, y, z + size[2] / 2), size, rng.uniform(*PAINT), yaw=rng.normal(0, yaw_sd))
    return x, y, size[0] + margin, size[1] + margin


def _cabinet(b: MeshBuilder, x, y, z, rng):
    size = (rng.uniform(0.3, 0.6), rng.uniform(0.6, 1.4), rng.uniform(1.1, 1.6))
    return _block(b, x, y, z, size, 0.05, 0.1, rng)


def _post_box(b: MeshBuilder, x, y, z, rng):
    h = rng.uniform(1.0, 1.3)
    if rng.random() < 0.5:
        b.cylinder((x, y, z + h / 2), rng.uniform(0.22, 0.3), h, rng.uniform(*PAINT), segments=10)
    else:
        b.box((x, y, z + h / 2), (0.4, 0.5, h), rng.uniform(*PAINT), yaw=rng.uniform(0, np.pi))
    return x, y, 0.65, 0.65


def _container(b: MeshBuilder, x, y, z, rng):
    size = (rng.uniform(1.0, 1.4), rng.uniform(1.2, 1.9), rng.uniform(1.2, 1.6))
    return _block(b, x, y, z, size, 0.1, 0.2, rng)


def _pillar(b: MeshBuilder, x, y, z, rng):
    r, h = rng.uniform(0.6, 0.7), rng.uniform(2.6, 3.6)
    b.cylinder((x, y, z + h / 2), r, h, rng.uniform(*PAINT), segments=16)
    b.cylinder((x, y, z + h + 0.1), r + 0.08, 0.2, METAL, segments=16)  # the cap
    return x, y, 2 * r + 0.2, 2 * r + 0.2


def _hydrant(b: MeshBuilder, x, y, z, rng):
    h, r = rng.uniform(0.5, 0.95), rng.uniform(0.08, 0.15)
    b.cylinder((x, y, z + h / 2), r, h, rng.uniform(*PAINT), segments=8)
    return x, y, 2 * r + 0.1, 2 * r + 0.1


def _young_tree(b: MeshBuilder, x, y, z, rng):
    h = rng.uniform(1.6, 2.6)
    b.cylinder((x, y, z + h / 2), rng.uniform(0.04, 0.09), h, BARK, segments=6)
    for _ in range(int(rng.integers(0, 3))):  # stakes
        a = rng.uniform(0, 2 * np.pi)
        b.cylinder((x + 0.25 * np.cos(a), y + 0.25 * np.sin(a), z + 0.8), 0.03, 1.6, BARK, segments=4)
    r = rng.uniform(0.4, 0.9)
    b.ellipsoid((x, y, z + h + r * 0.6), (r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.9, 1.4)),
                rng.uniform(*FOLIAGE), rng=rng, roughness=0.3, subdivisions=0)
    return x, y, 0.7, 0.7  # the trunk and stakes; the crown overhangs above a person's head


def _shrub(b: MeshBuilder, x, y, z, rng):
    r, hz = rng.uniform(0.3, 0.6), rng.uniform(0.5, 0.9)
    ry = r * rng.uniform(0.7, 1.3)
    b.ellipsoid((x, y, z + hz), (r, ry, hz), rng.uniform(*FOLIAGE), rng=rng, roughness=0.3, subdivisions=0)
    return x, y, 2 * r + 0.2, 2 * ry + 0.2


def _bike_stand(b: MeshBuilder, x, y, z, rng):
    """A row of two to four hoops along the street, each across it, a parked bicycle at about half of them."""
    hoops = int(rng.integers(2, _STAND_MAX_HOOPS + 1))
    turn = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], np.float32)  # a bicycle's length along y, across the street
    for k in range(hoops):
        xk = x + _STAND_STEP * k
        for dy in (-0.35, 0.35):
            b.cylinder((xk, y + dy, z + 0.4), 0.03, 0.8, METAL, segments=4)
        b.box((xk, y, z + 0.8), (0.06, 0.76, 0.06), METAL)
        if rng.random() < 0.5:
            bike = bicycle_builder(1.7, 0.0, rng).build()
            b.add(bike.vertices @ turn + np.array([xk + 0.15, y, z], np.float32), bike.triangles, bike.reflectivity,
                  bike.returns, bike.gloss)
    length = _STAND_STEP * (hoops - 1)
    return x + length / 2, y, length + 0.6, 1.8


_BUILDERS = {"short_sign": _short_sign, "meter": _meter, "cabinet": _cabinet, "post_box": _post_box,
             "container": _container, "pillar": _pillar, "hydrant": _hydrant, "young_tree": _young_tree,
             "shrub": _shrub, "bike_stand": _bike_stand}


def build_item(kind: str, b: MeshBuilder, x: float, y: float, z: float, rng: np.random.Generator):
    """One clutter item of ``kind`` (one of KINDS) on the ground at (x, y, z); returns its BEV footprint
    (x, y, dx, dy). Road furniture (road_furniture.py) puts these on kerb extensions too."""
    return _BUILDERS[kind](b, x, y, z, rng)


def add_street_clutter(b: MeshBuilder, x_range: tuple[float, float], strips: list[tuple[float, float]],
                       ground_z, rng: np.random.Generator, obstacles: list[tuple[float, float, float, float, float]],
                       spacing: float = 8.0) -> list[tuple[str, float, float]]:
    """Put about one clutter item every ``spacing`` metres along each of ``strips`` ((y centre, half width) of a
    strip where things may stand: furniture zones and frontages) between ``x_range``.

    ground_z(x, y): the ground height there. obstacles: the world's BEV rectangles (x, y, dx, dy, yaw) of what
    already stands there; an item keeps clear of them (by its largest possible size, before it is drawn), and its
    footprint is appended for placement's checks. Returns (kind, x, y) of each item placed.
    """
    x0, x1 = x_range
    placed: list[tuple[str, float, float]] = []
    for yc, half in strips:
        for xp in np.sort(rng.uniform(x0, x1, size=int(rng.poisson((x1 - x0) / spacing)))):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            yp = yc + rng.uniform(-half, half) * 0.6
            # the span the item may take along x: a stand runs on from xp, everything else is about xp
            lo, hi = ((xp - 0.3, xp + _STAND_STEP * (_STAND_MAX_HOOPS - 1) + 0.3) if kind == "bike_stand"
                      else (xp - _ITEM_MAX_RADIUS, xp + _ITEM_MAX_RADIUS))
            if any(lo - 0.5 < ox + odx / 2 and ox - odx / 2 < hi + 0.5 and abs(yp - oy) < ody / 2 + 0.5
                   for ox, oy, odx, ody, _ in obstacles):
                continue
            footprint = build_item(kind, b, float(xp), float(yp), float(ground_z(xp, yp)), rng)
            obstacles.append((*(float(v) for v in footprint), 0.0))
            placed.append((kind, float(xp), float(yp)))
    return placed
