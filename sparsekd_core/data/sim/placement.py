"""Placing road users in a street without overlaps, so that a drive stays collision-free over time.

Every moving user keeps to one lane strip (travel, bike or walk sub-lane) and moves at that strip's
speed, so users of one strip keep their gaps and strips never overlap: checking overlaps once, at
t = 0, is enough for the whole drive. Parked cars, standing people and lot cars never move.
Overlap is a separating-axis test between BEV rectangles, hand-written: a dozen float operations per
pair, looked up in a grid of 5 m cells; the generator needs neither shapely nor torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparsekd_core.data.sim.actors import Actor, MeshLibrary, SizeSampler
from sparsekd_core.data.sim.world import Lane, StaticWorld

#: Clearance kept between any two placed footprints (metres).
CLEARANCE = 0.25
VEHICLE_MIX = (("car", 0.8), ("van", 0.13), ("truck", 0.07))
PARKED_MIX = (("car", 0.86), ("van", 0.14))


@dataclass
class EgoState:
    """The recording vehicle: position on the ground (world), heading, speed along its heading."""

    x: float
    y: float
    yaw: float
    speed: float
    lane: Lane

    FOOTPRINT = (4.7, 1.95)
    GAP = 3.0  # road users keep at least this far from the ego's bumpers


def rects_overlap(a, b, margin: float = 0.0) -> bool:
    """Do two BEV rectangles (x, y, dx, dy, yaw), each grown by ``margin`` on every side, overlap?

    Separating-axis theorem: two convex rectangles are disjoint iff their projections on one of
    the 4 edge normals do not overlap. Plain Python floats: placement tests one new rectangle
    against the two or three near it, where numpy's per-call overhead would cost more than the
    arithmetic.
    """
    ca, sa, cb, sb = math.cos(a[4]), math.sin(a[4]), math.cos(b[4]), math.sin(b[4])
    ha0, ha1, hb0, hb1 = a[2] / 2 + margin, a[3] / 2 + margin, b[2] / 2 + margin, b[3] / 2 + margin
    dx, dy = b[0] - a[0], b[1] - a[1]
    for ux, uy in ((ca, sa), (-sa, ca), (cb, sb), (-sb, cb)):
        ra = ha0 * abs(ca * ux + sa * uy) + ha1 * abs(-sa * ux + ca * uy)
        rb = hb0 * abs(cb * ux + sb * uy) + hb1 * abs(-sb * ux + cb * uy)
        if abs(dx * ux + dy * uy) > ra + rb:
            return False
    return True


class Placer:
    """Keeps the BEV rectangles placed so far (in a 5 m grid for neighbour look-ups) and places new
    road users if they fit."""

    CELL = 5.0

    def __init__(self, world: StaticWorld, rng: np.random.Generator, library: MeshLibrary):
        self.world = world
        self.rng = rng
        self.library = library
        self.actors: list[Actor] = []
        self._rects: list[tuple[float, ...]] = []
        self._grid: dict[tuple[int, int], list[int]] = {}
        self._obstacles: list[tuple[float, ...]] = [tuple(r) for r in world.obstacles.tolist()]
        self._obstacle_grid: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(self._obstacles):
            self._add_to(self._obstacle_grid, i, r)

    def _cells(self, rect) -> list[tuple[int, int]]:
        reach = 0.5 * math.hypot(rect[2], rect[3]) + CLEARANCE
        c = self.CELL
        x0, x1 = int(math.floor((rect[0] - reach) / c)), int(math.floor((rect[0] + reach) / c))
        y0, y1 = int(math.floor((rect[1] - reach) / c)), int(math.floor((rect[1] + reach) / c))
        return [(i, j) for i in range(x0, x1 + 1) for j in range(y0, y1 + 1)]

    def _add_to(self, grid, index: int, rect) -> None:
        for cell in self._cells(rect):
            grid.setdefault(cell, []).append(index)

    def reserve(self, rect) -> None:
        rect = tuple(float(v) for v in rect)
        self._rects.append(rect)
        self._add_to(self._grid, len(self._rects) - 1, rect)

    def _hits(self, rect, rects, grid) -> bool:
        seen = set()
        for cell in self._cells(rect):
            for i in grid.get(cell, ()):
                if i not in seen:
                    seen.add(i)
                    if rects_overlap(rect, rects[i], CLEARANCE / 2):
                        return True
        return False

    def fits(self, rect, check_obstacles: bool) -> bool:
        """The rectangle keeps CLEARANCE from everything placed (and from static obstacles if asked)."""
        rect = tuple(float(v) for v in rect)
        if self._hits(rect, self._rects, self._grid):
            return False
        return not (check_obstacles and self._hits(rect, self._obstacles, self._obstacle_grid))

    def place(self, kind: str, x: float, y: float, yaw: float, size: np.ndarray, speed: float,
              heading: float, check: str = "all") -> bool:
        """Place a user of ``kind`` with box extents ``size`` on the ground at (x, y), moving at ``speed``
        along ``heading`` (radians, world). Returns False (and places nothing) if it would overlap.

        check: "all" (everything placed and the static obstacles), "ego" (only the ego's footprint:
        for users kept apart by their strip), "none" (strip users that cannot meet the ego).
        """
        rect = (float(x), float(y), float(size[0]), float(size[1]), float(yaw))
        if check == "all" and not self.fits(rect, check_obstacles=True):
            return False
        if check == "ego" and rects_overlap(rect, self._rects[0], CLEARANCE / 2):
            return False
        layout = self.world.layout
        z = layout.ground_height(x, y) + size[2] / 2
        vx, vy = speed * math.cos(heading), speed * math.sin(heading)
        velocity = np.array([vx, vy, layout.slope * vx])
        box = np.array([x, y, z, size[0], size[1], size[2], yaw], dtype=np.float64)
        mesh = self.library.mesh(kind, size, speed > 0, self.rng)
        self.actors.append(Actor(kind, box, velocity, len(self.actors), mesh))
        self.reserve(rect)
        return True


def _choose(rng: np.random.Generator, mix) -> str:
    """A kind from ((kind, probability), ...)."""
    u = rng.random() * sum(p for _, p in mix)
    for kind, p in mix:
        u -= p
        if u <= 0:
            return kind
    return mix[-1][0]


def _lateral(rng: np.random.Generator, lane: Lane, half_extent: float, sigma: float) -> float:
    """Lateral offset within a lane, clipped so the user stays inside the strip."""
    room = max(0.0, lane.width / 2 - half_extent - 0.05)
    return min(room, max(-room, float(rng.normal(0, sigma))))


def _fill(rng: np.random.Generator, x_range, gap_range, density: float, sizes):
    """Walk along a strip from x_range[0]: yields (centre x, size) for users drawn by ``sizes()``,
    with gaps (back to front) drawn from ``gap_range`` / density, so users of a strip never overlap."""
    x = x_range[0] + rng.uniform(0, gap_range[1] / density)
    while x < x_range[1]:
        kind, size = sizes()
        yield kind, x + size[0] / 2, size
        x += size[0] + rng.uniform(*gap_range) / density


def populate(world: StaticWorld, rng: np.random.Generator, x_range: tuple[float, float], ego: EgoState,
             sequence: bool, library: MeshLibrary, density: float = 1.0) -> list[Actor]:
    """Road users over ``x_range`` of the street around the ego vehicle.

    Users of a lane strip are spaced along it and kept inside it laterally, so they cannot overlap
    each other or other strips; only the ego's footprint is checked for them. Users that stand
    where obstacles are (lots, furniture and frontage strips) or cross the road go through the full
    overlap test. ``sequence`` leaves out road crossers, so a drive stays collision-free.
    ``density`` scales how many users of every kind appear.
    """
    layout = world.layout
    placer = Placer(world, rng, library)
    sample_size = SizeSampler(rng)
    placer.reserve([ego.x, ego.y, EgoState.FOOTPRINT[0] + 2 * EgoState.GAP, EgoState.FOOTPRINT[1], ego.yaw])

    def vehicle():
        kind = _choose(rng, VEHICLE_MIX)
        return kind, sample_size(kind)

    def parked():
        kind = _choose(rng, PARKED_MIX)
        return kind, sample_size(kind)

    # Travel lanes: one speed per lane (the ego's own lane goes at the ego's speed).
    for lane in layout.lanes_of("travel"):
        heading = 0.0 if lane.direction > 0 else np.pi
        speed = ego.speed if lane == ego.lane else float(rng.uniform(5.0, 15.0))
        for kind, x, size in _fill(rng, x_range, (6.0, 45.0), density, vehicle):
            y = lane.y_centre + _lateral(rng, lane, size[1] / 2 + 0.1, 0.2)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.015))
            placer.place(kind, x, y, yaw, size, speed, heading, check="ego")

    for lane in layout.lanes_of("bike"):
        heading = 0.0 if lane.direction > 0 else np.pi
        speed = float(rng.uniform(3.0, 7.0))
        for kind, x, size in _fill(rng, x_range, (4.0, 30.0), density, lambda: ("cyclist", sample_size("cyclist"))):
            y = lane.y_centre + _lateral(rng, lane, size[1] / 2 + 0.1, 0.15)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.03))
            placer.place(kind, x, y, yaw, size, speed, heading, check="ego")

    for lane in layout.lanes_of("parking"):
        along = 0.0 if lane.side < 0 else np.pi
        for kind, x, size in _fill(rng, x_range, (0.6, 4.0), density, parked):
            if rng.random() < 0.2:  # an empty stretch of kerb
                continue
            yaw = along + (np.pi if rng.random() < 0.1 else 0.0) + rng.normal(0, 0.03)
            y = lane.y_centre + _lateral(rng, lane, size[1] / 2 + 0.15, 0.15)
            placer.place(kind, x, y, yaw, size, 0.0, 0.0, check="none")

    for x0, x1, y0, y1 in world.lots:
        if x1 < x_range[0] or x0 > x_range[1]:
            continue
        for row_y in (y0 + 2.8, y1 - 2.8):
            for x in np.arange(x0 + 1.4, x1 - 1.2, 2.7):
                if rng.random() > 0.6 * min(1.0, density):
                    continue
                kind, size = parked()
                yaw = (rng.uniform(-np.pi, np.pi) if rng.random() < 0.15
                       else (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2) + rng.normal(0, 0.08))
                placer.place(kind, x, row_y, yaw, size, 0.0, 0.0, check="all")

    # Walkers: each sub-lane of a sidewalk has one walking direction and speed.
    for lane in layout.lanes_of("walk"):
        heading = 0.0 if rng.random() < 0.5 else np.pi
        speed = float(rng.uniform(0.9, 1.7))
        for kind, x, size in _fill(rng, x_range, (3.0, 50.0), density,
                                   lambda: ("pedestrian", sample_size("pedestrian"))):
            y = lane.y_centre + _lateral(rng, lane, max(size[:2]) / 2 + 0.05, 0.1)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.08))
            placer.place(kind, x, y, yaw, size, speed, heading, check="none")

    # People standing in the frontage and furniture strips (near shops, at bus stops), sometimes in pairs.
    for lane in layout.lanes_of("frontage") + layout.lanes_of("furniture"):
        for _, x, _ in _fill(rng, x_range, (12.0, 80.0), density, lambda: ("pedestrian", np.zeros(3))):
            for k in range(1 + int(rng.random() < 0.3)):
                size = sample_size("pedestrian")
                y = lane.y_centre + rng.uniform(-0.15, 0.15) * lane.width
                placer.place("pedestrian", x + 0.9 * k, y, rng.uniform(-np.pi, np.pi), size, 0.0, 0.0, check="all")

    if not sequence:
        # Crosswalk users: pedestrians (and now and then a cyclist) crossing the road near the ego.
        kerb = (layout.kerb_y(-1), layout.kerb_y(1))
        for _ in range(rng.poisson(0.8 * density)):
            xc = ego.x + rng.uniform(-35, 45)
            for _ in range(int(rng.integers(1, 5))):
                kind = "cyclist" if rng.random() < 0.35 else "pedestrian"
                size = sample_size(kind)
                heading = np.pi / 2 if rng.random() < 0.5 else -np.pi / 2
                y = rng.uniform(-kerb[0] + 1, kerb[1] - 1)
                placer.place(kind, xc + rng.normal(0, 1.2), y, heading + rng.normal(0, 0.1), size, 1.3, heading,
                             check="all")
    return placer.actors
