"""Road furniture: the person-sized things that stand on the carriageway itself (``sparsekd-sim --road-furniture``).

Version-4 streets keep everything but road users off the road: posts, bins and bollards stand on the sidewalks.
Once people also walk on the road (``--road-people``), a model trained there learns that anything person-sized on
a road is a pedestrian, and real roads are full of such things (docs/results.md "People on the road"). A furnished
street adds, about every ``spacing`` metres along it, one group of these, on either side:

- a traffic island on the centre line, a kerb-high strip with a keep-right sign post at one or both ends and now
  and then a warning-light bollard;
- a row of flexible delineator posts along a lane line or the centre line;
- traffic cones with a retro-reflective upper half, in a row along a lane line or in a taper that closes the outer
  lanes;
- work-zone warning boards (a striped board on a foot) in a row, now and then with a barrier rail across the lane;
- wheelie bins put out at the kerb for collection;
- a kerb extension in the parking lane with a sign post, young tree, shrub, meter or hydrant on it (clutter.py's
  items) and up to two bollards on its traffic side;
- bicycles parked against the kerb on the road (unlabelled, as KITTI's parked bicycles are).

Sizes are the usual dimensions of these things in Germany, where KITTI drives: a traffic cone 0.5 or 0.75 m high
(TL-Leitkegel), a warning board 0.25 m wide and 1.0 m tall on a foot (TL-Leitbake), a keep-right sign 0.6 m across
(sign 222 of the StVO), wheelie bins of 120 and 240 litres (EN 840: 0.48 x 0.55 x 0.93 m, 0.58 x 0.73 x 1.07 m),
flexible delineators 0.75-1.0 m high. Nothing here is labelled: a detector has to learn to leave it alone.
Only snapshot scenes get road furniture: in a drive the cars move along their lanes and would run through it.
"""
from __future__ import annotations

import numpy as np

from sparsekd_core.data.sim.actors import bicycle_builder
from sparsekd_core.data.sim.clutter import build_item
from sparsekd_core.data.sim.materials import CONCRETE, METAL, PAINT, SIGN_FACE
from sparsekd_core.data.sim.meshes import MeshBuilder

KINDS = ("island", "delineators", "cones", "warning_boards", "bins", "kerb_extension", "bicycles")
#: How often each kind is drawn (a kerb extension needs a parking lane on its side, else it becomes bins).
KIND_SHARES = (0.12, 0.16, 0.14, 0.14, 0.18, 0.14, 0.12)
#: Clutter items that stand on a kerb extension.
EXTENSION_ITEMS = ("short_sign", "young_tree", "shrub", "meter", "hydrant")
#: Space kept between a new group and anything already standing there (metres).
MARGIN = 0.3

Footprint = tuple[float, float, float, float]  # BEV x, y, dx, dy (axis-aligned)


def _lane_line(layout, side: int, rng: np.random.Generator) -> float:
    """y of a line a row may follow on ``side``, drawn from the centre line and every line between two road lanes."""
    lanes = sorted((l for l in layout.lanes if l.side == side and l.surface == "road"), key=lambda l: abs(l.y_centre))
    lines = [0.0] + [side * (abs(l.y_centre) + l.width / 2) for l in lanes[:-1]]
    return lines[int(rng.integers(len(lines)))]


def _sign_post(b: MeshBuilder, x: float, y: float, z: float, rng: np.random.Generator) -> None:
    """A post with a round sign (drawn as a square plate) at its top, facing along the street."""
    h = rng.uniform(1.2, 2.2)
    b.cylinder((x, y, z + h / 2), rng.uniform(0.03, 0.05), h, METAL, segments=6)
    b.box((x, y, z + h - 0.3), (0.03, 0.6, 0.6), SIGN_FACE)


def _slab(b: MeshBuilder, layout, x: float, y: float, length: float, width: float, refl: float) -> None:
    """A kerb-high slab on the road (an island, a kerb extension), following the street's slope in pieces of at
    most a metre."""
    pieces, kh = int(np.ceil(length)), layout.kerb_height
    for k in range(pieces):
        xk = x - length / 2 + (k + 0.5) * length / pieces
        b.box((xk, y, layout.slope * xk + kh / 2), (length / pieces, width, kh), refl)


def _bollard(b: MeshBuilder, x: float, y: float, z: float, rng: np.random.Generator) -> Footprint:
    r, h = rng.uniform(0.05, 0.12), rng.uniform(0.75, 1.0)
    b.cylinder((x, y, z + h / 2), r, h, rng.uniform(*PAINT), segments=8)
    b.cylinder((x, y, z + h - 0.12), r + 0.005, 0.1, SIGN_FACE, segments=8)  # reflective band
    return x, y, 2 * r + 0.1, 2 * r + 0.1


def _island(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    length, width, kh = rng.uniform(3.0, 8.0), rng.uniform(0.6, 1.0), layout.kerb_height
    _slab(b, layout, x, 0.0, length, width, rng.uniform(*CONCRETE))
    for end in (-1, 1):
        xe = x + end * (length / 2 - 0.4)
        top = layout.slope * xe + kh  # the island's surface at that end
        if end < 0 or rng.random() < 0.6:
            _sign_post(b, xe, 0.0, top, rng)
        elif rng.random() < 0.5:  # a warning-light bollard: a striped column about as high as a child
            h = rng.uniform(0.9, 1.1)
            b.box((xe, 0.0, top + h / 2), (0.2, 0.3, h), rng.uniform(*PAINT))
            b.box((xe, 0.0, top + h * 0.6), (0.21, 0.31, 0.25), SIGN_FACE)
    return [(x, 0.0, length, width)]


def _delineators(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    y = _lane_line(layout, side, rng)
    step, count = rng.uniform(1.0, 3.0), int(rng.integers(3, 11))
    return [_bollard(b, x + k * step, y, z + layout.slope * k * step, rng) for k in range(count)]


def _cone(b: MeshBuilder, x: float, y: float, z: float, h: float, rng) -> Footprint:
    """A traffic cone: a square foot and a round body whose upper half is retro-reflective (a loft of three rings)."""
    r = 0.3 * h
    b.box((x, y, z + 0.015), (2 * r + 0.06, 2 * r + 0.06, 0.03), 0.08)
    a = np.linspace(0, 2 * np.pi, 9)[:-1]
    rings = np.stack([np.stack([x + rr * np.cos(a), y + rr * np.sin(a), np.full(8, z + zz)], -1)
                      for rr, zz in ((r, 0.03), (0.55 * r, 0.5 * h), (0.04, h))])
    b.loft(rings, np.array([[rng.uniform(*PAINT)] * 8, [SIGN_FACE] * 8]))
    return x, y, 2 * r + 0.1, 2 * r + 0.1


def _cones(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    y0 = _lane_line(layout, side, rng)
    # a taper ends at the kerb (closing the outer lanes), a row stays on its line
    y1 = side * (layout.kerb_y(side) - 0.5) if rng.random() < 0.5 else y0
    h, count, step = (0.5 if rng.random() < 0.5 else 0.75), int(rng.integers(3, 9)), rng.uniform(1.0, 3.0)
    return [_cone(b, x + k * step, y0 + (y1 - y0) * k / max(count - 1, 1), z + layout.slope * k * step, h, rng)
            for k in range(count)]


def _warning_board(b: MeshBuilder, x: float, y: float, z: float, rng) -> Footprint:
    """A board 0.25 m wide and 1.0 m tall, striped in retro-reflective red and white, on a flat foot; its face
    looks along the street."""
    b.box((x, y, z + 0.05), (0.4, 0.6, 0.1), 0.06)
    bottom = rng.uniform(0.2, 0.3)
    b.box((x, y, z + 0.1 + bottom / 2), (0.04, 0.04, bottom), METAL)
    for k in range(4):
        b.box((x, y, z + 0.1 + bottom + 0.125 + 0.25 * k), (0.04, 0.25, 0.25), SIGN_FACE if k % 2 else 0.5)
    return x, y, 0.5, 0.7


def _warning_boards(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    y = _lane_line(layout, side, rng)
    step, count = rng.uniform(3.0, 9.0), int(rng.integers(2, 7))
    footprints = [_warning_board(b, x + k * step, y, z + layout.slope * k * step, rng) for k in range(count)]
    # now and then a barrier rail on two feet across the lane beyond the last board, where it fits before the kerb
    room = layout.kerb_y(side) - abs(y) - 0.6
    if rng.random() < 0.4 and room >= 1.0:
        xr, width = x + count * step, min(float(rng.uniform(1.0, 2.0)), room)
        yr = y + side * (width / 2 + 0.4)
        zr = z + layout.slope * count * step
        for dy in (-width / 2, width / 2):
            b.box((xr, yr + dy, zr + 0.05), (0.5, 0.3, 0.1), 0.06)
            b.box((xr, yr + dy, zr + 0.55), (0.04, 0.04, 0.9), METAL)
        b.box((xr, yr, zr + 0.9), (0.04, width, 0.25), SIGN_FACE)
        footprints.append((xr, yr, 0.6, width + 0.4))
    return footprints


def _bins(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    y = side * (layout.kerb_y(side) - rng.uniform(0.45, 0.6))
    footprints = []
    for k in range(int(rng.integers(1, 4))):
        # EN 840 120 l / 240 l bins: width along the kerb, depth across it
        size = (0.48, 0.555, 0.93) if rng.random() < 0.5 else (0.58, 0.73, 1.07)
        xb = x + 0.9 * k
        b.box((xb, y, z + layout.slope * (xb - x) + size[2] / 2), size, rng.uniform(*PAINT),
              yaw=float(np.clip(rng.normal(0, 0.1), -0.15, 0.15)))
        footprints.append((xb, y, 0.85, 0.85))
    return footprints


def _kerb_extension(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    lane, kh = layout.lanes_of("parking", side)[0], layout.kerb_height
    length, width = rng.uniform(2.5, 6.0), lane.width - 0.2
    y = side * (layout.kerb_y(side) - width / 2)
    _slab(b, layout, x, y, length, width, rng.uniform(*CONCRETE))
    build_item(EXTENSION_ITEMS[int(rng.integers(len(EXTENSION_ITEMS)))], b, x, y, z + kh, rng)
    for k in range(int(rng.integers(0, 3))):  # bollards on the side that faces the traffic
        xk = x + (k - 0.5) * length / 2
        _bollard(b, xk, y - side * (width / 2 - 0.2), layout.slope * xk + kh, rng)
    return [(x, y, length, width)]


def _bicycles(b: MeshBuilder, layout, side: int, x: float, z: float, rng) -> list[Footprint]:
    y = side * (layout.kerb_y(side) - 0.35)
    footprints = []
    for k in range(int(rng.integers(1, 3))):
        xb = x + 2.0 * k
        bike = bicycle_builder(float(rng.uniform(1.7, 1.85)), 0.0, rng).build()
        b.add(bike.vertices + np.array([xb, y, z + layout.slope * (xb - x)], np.float32), bike.triangles,
              bike.reflectivity, bike.returns, bike.gloss)
        footprints.append((xb, y, 1.9, 0.6))
    return footprints


_BUILDERS = {"island": _island, "delineators": _delineators, "cones": _cones, "warning_boards": _warning_boards,
             "bins": _bins, "kerb_extension": _kerb_extension, "bicycles": _bicycles}


def _clear(footprints: list[Footprint], obstacles) -> bool:
    return not any(abs(x - ox) < (dx + odx) / 2 + MARGIN and abs(y - oy) < (dy + ody) / 2 + MARGIN
                   for x, y, dx, dy in footprints for ox, oy, odx, ody, _ in obstacles)


def add_road_furniture(b: MeshBuilder, layout, rng: np.random.Generator,
                       obstacles: list[tuple[float, float, float, float, float]],
                       spacing: float = 25.0) -> list[tuple[str, list[Footprint]]]:
    """Put about one group of road furniture every ``spacing`` metres along ``layout``'s street, each on a random
    side (KINDS, drawn at KIND_SHARES), keeping MARGIN from ``obstacles`` (the world's BEV rectangles x, y, dx,
    dy, yaw) and from each other; a group that does not fit is dropped whole. Each placed footprint is appended to
    ``obstacles``. Returns (kind, footprints) of every group placed."""
    x0, x1 = layout.x_range
    placed: list[tuple[str, list[Footprint]]] = []
    # a group runs on from xp for up to 60 m (a row of warning boards and a rail)
    for xp in np.sort(rng.uniform(x0 + 5.0, x1 - 60.0, size=int(rng.poisson((x1 - x0) / spacing)))):
        side = -1 if rng.random() < 0.5 else 1
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_SHARES))]
        if kind == "kerb_extension" and not layout.lanes_of("parking", side):
            kind = "bins"
        group = MeshBuilder()
        footprints = _BUILDERS[kind](group, layout, side, float(xp), layout.slope * float(xp), rng)
        if not _clear(footprints, obstacles):
            continue
        b.add_mesh(group.build())
        obstacles.extend((*f, 0.0) for f in footprints)
        placed.append((kind, footprints))
    return placed
