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

from sparsekd_core.data.sim.actors import BESIDE_BIKE_WIDTH, Actor, MeshLibrary
from sparsekd_core.data.sim.sizes import SizeSampler
from sparsekd_core.data.sim.world import Lane, StaticWorld

#: Clearance kept between any two placed footprints (metres).
CLEARANCE = 0.25
#: ... and what people keep in a street where they keep close company (populate's ``close``): they lean on
#: planters and bins, stand at bicycle racks and in tight groups (2 cm: boxes never overlap).
CLOSE_CLEARANCE = 0.02
#: In such a street, the share of standing people who stand right against the nearest piece of street furniture
#: within AGAINST_REACH m, and how far from its face (metres).
AGAINST_SHARE = 0.5
AGAINST_REACH = 4.0
AGAINST_GAP = (0.02, 0.12)
#: ... and how far apart the members of a group stand (metres, along the strip; 0.8 otherwise).
CLOSE_GROUP_SPACING = (0.45, 0.7)
#: People on the road itself (populate's ``road``): how many walk there around the ego in such a street (a Poisson
#: mean), how far from the ego (metres along the street, either way), and the share who walk along the road rather
#: than at any heading. Pedestrian zones, shared streets, and people walking to and from parked cars put real
#: pedestrians on the carriageway walking along it, where the other streets put only cyclists; the real sweeps'
#: pedestrians that the bundled models call cyclists walk there. One run with them and no road furniture lost real
#: pedestrians to false ones on real roads (docs/results.md "People on the road"); with road furniture beside them
#: (road_furniture.py) the next one found more (docs/results.md "Road furniture beside the people on the road").
ROAD_PEOPLE_MEAN = 3.0
ROAD_PEOPLE_REACH = (3.0, 40.0)
ROAD_PEOPLE_ALONG = 0.6
#: How many people walk together where people walk abreast (on the road, on squares): the odds of one, two, three.
ABREAST_ODDS = (0.6, 0.3, 0.1)
#: Walkers in pairs (populate's ``pairs``): in such a street this share of sidewalk walkers has a companion walking
#: abreast, this far from them (metres, between the two boxes' sides, across the walking direction: centres 0.7-1.05 m
#: apart) and a little ahead or behind (sd, metres). Of the 14 labelled pedestrians in 24 held-out real KITTI sweeps,
#: 6 walk within 1.1 m of another, against 5-8% in simulated streets without pairs, and those are the real pedestrians
#: the bundled students box worst (docs/results.md, session 43: "... where real pedestrians are lost"); two students
#: trained with pairs scored real pedestrians 3-5 BEV points above the same runs without (docs/results.md "Walking in
#: pairs").
WALKING_PAIR_SHARE = 0.5
WALKING_PAIR_GAP = (0.03, 0.35)
WALKING_PAIR_STAGGER = 0.2
#: Walkers at any heading (populate's ``turning``): in such a street this share of sidewalk walkers walks at a heading
#: drawn uniformly, not along their sidewalk: crossing it, turning into a door, stepping round each other. Sidewalk
#: walkers are most of a simulated street's pedestrians, so without it a model learns that a person far down the road
#: walks along the sensor's ray; on the 25 held-out real sweeps the labelled pedestrians face along the ray (within 30
#: degrees) for 25%, against 60% on sim44's val frames and 53% with this option in every scene (docs/results.md,
#: session 46: a student trained on such streets did not face real people better).
TURNING_WALKER_SHARE = 0.5
#: Cyclists in the traffic lane (populate's ``lane_cyclists``): on a side of the street without a bike lane,
#: cyclists ride with the traffic in its outermost travel lane, their centre this far in from the lane's kerb-side
#: edge (metres), as many as a bike lane would carry. Without them such a side has only the few cyclists riding at
#: any heading, so the narrow town streets (world.StreetLayout.narrowed: a bike lane on 20% of sides) hold 40% fewer
#: cyclists than the wide ones (sim46 against sim44), where real narrow streets have their cyclists in the traffic
#: lane. With it in every scene, sim46's command draws twice the cyclists (sim48); a student trained there kept its
#: simulated cyclists but not more real ones (docs/results.md, session 47).
LANE_CYCLIST_OFFSET = (0.5, 1.0)
#: People crossing the street's squares (populate's ``squares``; world.StreetLayout.with_squares): groups of
#: pedestrians and of cyclists per square metre of square (times 0.5 + the street's density of their kind: a square is
#: busy even off a quiet street), this far in from the square's edges (metres), the share of walking pedestrian groups
#: (the others stand), and how many ride together, in file (with their odds). Walkers go alone or two or three abreast;
#: each group heads anywhere.
SQUARE_WALKERS = 0.004
SQUARE_RIDERS = 0.0025
SQUARE_EDGE = 1.0
SQUARE_WALKING = 0.7
SQUARE_RIDERS_IN_FILE = (1, 2, 3, 4)
SQUARE_RIDERS_IN_FILE_P = (0.5, 0.25, 0.15, 0.1)
#: Parked vehicles: no trucks or buses at the kerb.
PARKED_TYPES = ("hatchback", "sedan", "suv", "pickup", "van")


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
        self._first_on_road = len(self._obstacles) - len(world.road_obstacles)  # road furniture comes last
        self._road: list[tuple[float, ...]] = [tuple(r) for r in world.road_obstacles.tolist()]
        self._road_grid: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(self._road):
            self._add_to(self._road_grid, i, r)

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

    def _hits(self, rect, rects, grid, clearance: float = CLEARANCE) -> bool:
        seen = set()
        for cell in self._cells(rect):
            for i in grid.get(cell, ()):
                if i not in seen:
                    seen.add(i)
                    if rects_overlap(rect, rects[i], clearance / 2):
                        return True
        return False

    def fits(self, rect, check_obstacles: bool, clearance: float = CLEARANCE) -> bool:
        """The rectangle keeps ``clearance`` from everything placed (and from static obstacles if asked)."""
        rect = tuple(float(v) for v in rect)
        if self._hits(rect, self._rects, self._grid, clearance):
            return False
        return not (check_obstacles and self._hits(rect, self._obstacles, self._obstacle_grid, clearance))

    def against_obstacle(self, x: float, y: float, size: np.ndarray, gap: float) -> tuple[float, float] | None:
        """Where a user of BEV extents ``size`` (any heading) stands ``gap`` m from the face of the static obstacle
        nearest to (x, y) within AGAINST_REACH m, on the side facing (x, y); None when there is none. Road furniture
        does not count: a person on the sidewalk does not step onto the road to lean on a bin put out there."""
        best, best_d = None, AGAINST_REACH
        for i in {i for cell in self._cells((x, y, 2 * AGAINST_REACH, 2 * AGAINST_REACH, 0.0))
                  for i in self._obstacle_grid.get(cell, ()) if i < self._first_on_road}:
            d = math.hypot(self._obstacles[i][0] - x, self._obstacles[i][1] - y)
            if d < best_d:
                best, best_d = self._obstacles[i], d
        if best is None:
            return None
        ox, oy, dx, dy, yaw = best
        c, s = math.cos(yaw), math.sin(yaw)
        u, v = c * (x - ox) + s * (y - oy), -s * (x - ox) + c * (y - oy)  # (x, y) in the obstacle's frame
        reach = 0.5 * math.hypot(float(size[0]), float(size[1])) + gap  # the user's box at any heading
        if abs(u) / (dx / 2) >= abs(v) / (dy / 2):
            u, v = math.copysign(dx / 2 + reach, u), min(max(v, -dy / 2), dy / 2)
        else:
            u, v = min(max(u, -dx / 2), dx / 2), math.copysign(dy / 2 + reach, v)
        return ox + c * u - s * v, oy + s * u + c * v

    def place(self, kind: str, x: float, y: float, yaw: float, size: np.ndarray, speed: float,
              heading: float, check: str = "all", clearance: float = CLEARANCE,
              rng: np.random.Generator | None = None) -> bool:
        """Place a user of ``kind`` with box extents ``size`` on the ground at (x, y), moving at ``speed``
        along ``heading`` (radians, world). Returns False (and places nothing) if it would overlap.

        check: "all" (everything placed and the static obstacles, ``clearance`` m apart), "ego" (only the ego's
        footprint: for users kept apart by their strip), "none" (strip users that cannot meet the ego). Strip users
        keep clear of road furniture (StaticWorld.road_obstacles) too, whatever ``check`` says.
        rng: what draws the user's mesh (default: the street's generator).
        """
        rect = (float(x), float(y), float(size[0]), float(size[1]), float(yaw))
        if check == "all" and not self.fits(rect, check_obstacles=True, clearance=clearance):
            return False
        if check != "all" and self._hits(rect, self._road, self._road_grid):
            return False
        if check == "ego" and rects_overlap(rect, self._rects[0], CLEARANCE / 2):
            return False
        layout = self.world.layout
        z = layout.ground_height(x, y) + size[2] / 2
        vx, vy = speed * math.cos(heading), speed * math.sin(heading)
        velocity = np.array([vx, vy, layout.slope * vx])
        box = np.array([x, y, z, size[0], size[1], size[2], yaw], dtype=np.float64)
        mesh = self.library.mesh(kind, size, speed > 0, self.rng if rng is None else rng)
        self.actors.append(Actor(kind, box, velocity, len(self.actors), mesh))
        self.reserve(rect)
        return True


def on_road_furniture(world: StaticWorld, rect) -> bool:
    """Does the BEV rectangle (x, y, dx, dy, yaw) come within CLEARANCE / 2 of the street's road furniture?"""
    return any(rects_overlap(rect, r, CLEARANCE / 2) for r in world.road_obstacles.tolist())


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


@dataclass(frozen=True)
class Densities:
    """How busy a street is, per kind of road user (1 = a busy city street, 0 = none of that kind).

    Real streets range from empty country roads to crowded centres: KITTI's front camera sees on average
    about 4 cars, 0.6 pedestrians and 0.2 cyclists per frame, and many frames show none of the latter two.
    """

    moving: float = 1.0
    parked: float = 1.0
    pedestrians: float = 1.0
    cyclists: float = 1.0

    @staticmethod
    def sample(rng: np.random.Generator) -> "Densities":
        """A street's mix: each kind drawn on its own, heavy towards quiet streets."""
        return Densities(moving=float(rng.uniform(0.15, 1.2)), parked=float(rng.uniform(0.0, 1.2)),
                         pedestrians=float(rng.choice([rng.uniform(0.02, 0.2), rng.uniform(0.2, 1.2)], p=[0.5, 0.5])),
                         cyclists=float(rng.choice([rng.uniform(0.02, 0.2), rng.uniform(0.2, 1.0)], p=[0.5, 0.5])))


def populate(world: StaticWorld, rng: np.random.Generator, x_range: tuple[float, float], ego: EgoState,
             sequence: bool, library: MeshLibrary, sizes: SizeSampler, density: Densities = Densities(),
             close: np.random.Generator | None = None, road: np.random.Generator | None = None,
             pairs: np.random.Generator | None = None, turning: np.random.Generator | None = None,
             lane_cyclists: np.random.Generator | None = None,
             squares: np.random.Generator | None = None) -> list[Actor]:
    """Road users over ``x_range`` of the street around the ego vehicle, and the unlabelled things people
    leave on sidewalks (parked bicycles, prams).

    Users of a lane strip are spaced along it and kept inside it laterally, so they cannot overlap
    each other or other strips; only the ego's footprint (and road furniture, where there is some) is checked
    for them. Users that stand where obstacles are (lots, furniture and frontage strips) or cross the road go
    through the full overlap test. ``sequence`` leaves out road crossers, so a drive stays collision-free.
    ``density`` scales how many users of each kind appear; ``sizes`` draws their boxes and body types.
    ``close``: people keep close company (a generator for the draws that makes; None: as in version 4, which
    it leaves untouched): standing people and parked bicycles keep CLOSE_CLEARANCE instead of CLEARANCE from
    each other and from street furniture, groups stand CLOSE_GROUP_SPACING apart, and AGAINST_SHARE of standing
    people stand right against the nearest piece of furniture, as real people do (a simulated person pasted where a
    real one stood, beside real things, loses score: docs/results.md "Twenty-four more real sweeps").
    ``road``: people also walk on the road itself, alone or two or three abreast, along it or at any heading
    (a generator for those draws; None, and in a ``sequence``, none do, as in version 4): ROAD_PEOPLE_MEAN of them
    within ROAD_PEOPLE_REACH of the ego, on travel, bike and parking lanes, each through the full overlap test.
    ``pairs``: sidewalk walkers walk two abreast (a generator for those draws; None, and in a ``sequence``, they walk
    single file, as in version 4): WALKING_PAIR_SHARE of them get a companion WALKING_PAIR_GAP to one side, placed
    last, through the full overlap test, so that everyone else stands where they would without pairs.
    ``turning``: TURNING_WALKER_SHARE of the sidewalk walkers walk at any heading where their strip has room for their
    box's diagonal, and push no pram (a generator for those draws; None, and in a ``sequence``, where they would
    walk off the sidewalk, all walk along it, as in version 4).
    ``lane_cyclists``: on each side without a bike lane, cyclists ride with the traffic in the outermost travel lane,
    LANE_CYCLIST_OFFSET in from its kerb-side edge, at a bike lane's density (a generator for those draws; None, and in
    a ``sequence``, none do, as in version 4), placed last, through the full overlap test.
    ``squares``: pedestrians and cyclists cross the street's squares (world.StreetLayout.with_squares) at any heading,
    SQUARE_WALKERS and SQUARE_RIDERS groups of them per square metre (a generator for those draws; None, and in a
    ``sequence``, the squares stay empty), placed last, through the full overlap test.
    """
    layout = world.layout
    placer = Placer(world, rng, library)
    placer.reserve([ego.x, ego.y, EgoState.FOOTPRINT[0] + 2 * EgoState.GAP, EgoState.FOOTPRINT[1], ego.yaw])

    def vehicle():
        kind = sizes.vehicle_type()
        return kind, sizes(kind)

    def parked():
        kind = sizes.vehicle_type()
        while kind not in PARKED_TYPES:
            kind = sizes.vehicle_type()
        return kind, sizes(kind)

    def person():
        return "pedestrian", sizes("pedestrian", child=rng.random() < sizes.style.child_fraction)

    def gap(base, d):
        return base if d <= 0 else (base[0] / max(d, 1e-3), base[1] / max(d, 1e-3))

    # Travel lanes: one speed per lane (the ego's own lane goes at the ego's speed).
    for lane in layout.lanes_of("travel"):
        if density.moving <= 0:
            break
        heading = 0.0 if lane.direction > 0 else np.pi
        speed = ego.speed if lane == ego.lane else float(rng.uniform(5.0, 15.0))
        for kind, x, size in _fill(rng, x_range, (6.0, 45.0), density.moving, vehicle):
            y = lane.y_centre + _lateral(rng, lane, size[1] / 2 + 0.1, 0.2)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.015))
            placer.place(kind, x, y, yaw, size, speed, heading, check="ego")

    for lane in layout.lanes_of("bike"):
        if density.cyclists <= 0:
            break
        heading = 0.0 if lane.direction > 0 else np.pi
        speed = float(rng.uniform(3.0, 7.0))
        for kind, x, size in _fill(rng, x_range, (4.0, 30.0), density.cyclists, lambda: ("cyclist", sizes("cyclist"))):
            y = lane.y_centre + _lateral(rng, lane, size[1] / 2 + 0.1, 0.15)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.03))
            placer.place(kind, x, y, yaw, size, speed, heading, check="ego")

    for lane in layout.lanes_of("parking"):
        if density.parked <= 0:
            break
        along = 0.0 if lane.side < 0 else np.pi
        for kind, x, size in _fill(rng, x_range, (0.6, 4.0), density.parked, parked):
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
                if rng.random() > 0.7 * min(1.0, density.parked):
                    continue
                kind, size = parked()
                yaw = (rng.uniform(-np.pi, np.pi) if rng.random() < 0.15
                       else (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2) + rng.normal(0, 0.08))
                placer.place(kind, x, row_y, yaw, size, 0.0, 0.0, check="all")

    # Walkers: each sub-lane of a sidewalk has one walking direction and speed; a few push a pram.
    walkers = []
    for lane in layout.lanes_of("walk"):
        if density.pedestrians <= 0:
            break
        heading = 0.0 if rng.random() < 0.5 else np.pi
        speed = float(rng.uniform(0.9, 1.7))
        for kind, x, size in _fill(rng, x_range, (3.0, 50.0), density.pedestrians, person):
            # room for the box's longer side, or for its diagonal when it may face any way: it stays on its strip
            # (a strip too narrow for the diagonal keeps its walkers on its line)
            diagonal = float(np.hypot(size[0], size[1]))
            turned = (turning is not None and not sequence and turning.random() < TURNING_WALKER_SHARE
                      and lane.width >= diagonal + 0.1)
            reach = diagonal if turned else float(max(size[:2]))
            y = lane.y_centre + _lateral(rng, lane, reach / 2 + 0.05, 0.1)
            yaw = heading + (0.0 if sequence else rng.normal(0, 0.08))
            walk = float(turning.uniform(-np.pi, np.pi)) if turned else heading
            if not placer.place(kind, x, y, walk if turned else yaw, size, speed, walk, check="none"):
                continue
            walkers.append(placer.actors[-1])
            if rng.random() < 0.06 and not turned:  # the pram goes ahead along the sidewalk
                ahead = x + np.cos(heading) * (size[0] / 2 + 0.4 + CLEARANCE + 0.05)
                placer.place("pram", ahead, y, yaw, MeshLibrary.UNLABELLED_BASE["pram"].copy(), speed, heading,
                             check="all")

    # People standing in the frontage and furniture strips (near shops, at bus stops), alone or in groups;
    # cyclists waiting beside their bicycles; bicycles parked alone or in racks (nobody on them: not labelled).
    clearance = CLEARANCE if close is None else CLOSE_CLEARANCE
    for lane in layout.lanes_of("frontage") + layout.lanes_of("furniture"):
        for _, x, _ in _fill(rng, x_range, gap((12.0, 80.0), density.pedestrians), 1.0, lambda: ("", np.zeros(3))):
            if density.pedestrians <= 0:
                break
            group = 1 + (int(rng.integers(1, 5)) if rng.random() < 0.3 else 0)
            spacing = 0.8 if close is None else float(close.uniform(*CLOSE_GROUP_SPACING))
            for k in range(group):
                kind, size = person()
                y = lane.y_centre + rng.uniform(-0.3, 0.3) * lane.width + (k % 2) * rng.uniform(-0.6, 0.6)
                px, yaw = x + spacing * k + rng.normal(0, 0.15), rng.uniform(-np.pi, np.pi)
                if close is not None and close.random() < AGAINST_SHARE:
                    px, y = placer.against_obstacle(px, y, size, float(close.uniform(*AGAINST_GAP))) or (px, y)
                placer.place(kind, px, y, yaw, size, 0.0, 0.0, check="all", clearance=clearance)
        if lane.kind != "furniture":
            continue
        for _, x, _ in _fill(rng, x_range, (15.0, 90.0), 1.0, lambda: ("", np.zeros(3))):
            along = 0.0 if rng.random() < 0.5 else np.pi
            if rng.random() < 0.2 * min(1.0, 3 * density.cyclists):
                size = sizes("cyclist") + np.array([0.0, BESIDE_BIKE_WIDTH, 0.0])
                placer.place("cyclist", x, lane.y_centre, along + rng.normal(0, 0.1), size, 0.0, 0.0, check="all",
                             clearance=clearance)
                continue
            rack = int(rng.integers(1, 7)) if rng.random() < 0.5 else 1
            across = rng.random() < 0.6  # bicycles stand across the strip in a rack
            for k in range(rack):
                size = np.array([rng.uniform(1.6, 1.85), 0.5, rng.uniform(0.95, 1.1)])
                yaw = (lane.side * np.pi / 2 if across else along) + rng.normal(0, 0.08)
                placer.place("bicycle", x + k * 0.75, lane.y_centre + rng.normal(0, 0.1), yaw, size, 0.0, 0.0,
                             check="all", clearance=clearance)

    if not sequence:
        kerb = (layout.kerb_y(-1), layout.kerb_y(1))
        # Crosswalk users: pedestrians (and now and then a cyclist) crossing the road near the ego.
        for _ in range(rng.poisson(0.8 * max(density.pedestrians, density.cyclists))):
            xc = ego.x + rng.uniform(-45, 45)
            for _ in range(int(rng.integers(1, 5))):
                kind = "cyclist" if rng.random() < 0.35 else "pedestrian"
                size = sizes(kind) if kind == "cyclist" else person()[1]
                heading = np.pi / 2 if rng.random() < 0.5 else -np.pi / 2
                y = rng.uniform(-kerb[0] + 1, kerb[1] - 1)
                placer.place(kind, xc + rng.normal(0, 1.2), y, heading + rng.normal(0, 0.1), size, 1.3, heading,
                             check="all")
        # Cyclists in the traffic lanes, at any heading (turning, changing lanes, riding against the flow).
        for _ in range(rng.poisson(2.0 * density.cyclists)):
            lanes = layout.lanes_of("travel")
            lane = lanes[int(rng.integers(len(lanes)))]
            size = sizes("cyclist")
            heading = rng.uniform(-np.pi, np.pi) if rng.random() < 0.4 else (0.0 if lane.direction > 0 else np.pi)
            placer.place("cyclist", ego.x + rng.uniform(-50, 50), lane.y_centre + rng.normal(0, 0.6),
                         heading, size, 4.0, heading, check="all")
        if road is not None:
            _walk_on_the_road(placer, road, ego, SizeSampler(road, sizes.style))
        if pairs is not None:
            _walk_in_pairs(placer, pairs, walkers, SizeSampler(pairs, sizes.style))
        if lane_cyclists is not None:
            _ride_in_the_traffic_lane(placer, lane_cyclists, x_range, density, SizeSampler(lane_cyclists, sizes.style))
        if squares is not None:
            _cross_the_squares(placer, squares, x_range, density, SizeSampler(squares, sizes.style))
    return placer.actors


def _walk_in_pairs(placer: Placer, rng: np.random.Generator, walkers: list[Actor], sizes: SizeSampler) -> None:
    """Companions abreast of a share of the sidewalk ``walkers`` (populate's ``pairs``), every draw from ``rng``;
    a companion goes to whichever side has room (the walker's other side if the first is taken)."""
    for walker in walkers:
        if rng.random() >= WALKING_PAIR_SHARE:
            continue
        x, y, yaw = float(walker.box[0]), float(walker.box[1]), float(walker.box[6])
        heading = math.atan2(walker.velocity[1], walker.velocity[0])
        speed = float(np.hypot(walker.velocity[0], walker.velocity[1]))
        size = sizes("pedestrian", child=rng.random() < sizes.style.child_fraction)
        across = (walker.box[4] + size[1]) / 2 + rng.uniform(*WALKING_PAIR_GAP)
        along = rng.normal(0, WALKING_PAIR_STAGGER)
        first = float(rng.choice([-1.0, 1.0]))
        for side in (first, -first):
            dx = along * math.cos(heading) - side * across * math.sin(heading)
            dy = along * math.sin(heading) + side * across * math.cos(heading)
            if placer.place("pedestrian", x + dx, y + dy, yaw + rng.normal(0, 0.05), size, speed, heading,
                            check="all", clearance=CLOSE_CLEARANCE, rng=rng):
                break


def _ride_in_the_traffic_lane(placer: Placer, rng: np.random.Generator, x_range: tuple[float, float],
                              density: Densities, sizes: SizeSampler) -> None:
    """Cyclists in the outermost travel lane of each side without a bike lane (populate's ``lane_cyclists``), every draw
    from ``rng``; spaced as a bike lane's are, each through the full overlap test (cars share the lane)."""
    layout = placer.world.layout
    if density.cyclists <= 0:
        return
    for side in (-1, 1):
        travel = layout.lanes_of("travel", side)
        if layout.lanes_of("bike", side) or not travel:
            continue
        lane = max(travel, key=lambda l: abs(l.y_centre))
        heading = 0.0 if lane.direction > 0 else np.pi
        edge = abs(lane.y_centre) + lane.width / 2
        for kind, x, size in _fill(rng, x_range, (4.0, 30.0), density.cyclists, lambda: ("cyclist", sizes("cyclist"))):
            y = side * (edge - rng.uniform(*LANE_CYCLIST_OFFSET))
            placer.place(kind, x, y, heading + rng.normal(0, 0.03), size, float(rng.uniform(3.0, 7.0)), heading,
                         check="all", rng=rng)


def _walk_on_the_road(placer: Placer, rng: np.random.Generator, ego: EgoState, sizes: SizeSampler) -> None:
    """Pedestrians on the carriageway around the ego (populate's ``road``), every draw from ``rng``."""
    lanes = [lane for lane in placer.world.layout.lanes if lane.kind in ("travel", "bike", "parking")]
    for _ in range(int(rng.poisson(ROAD_PEOPLE_MEAN))):
        lane = lanes[int(rng.integers(len(lanes)))]
        x = ego.x + float(rng.choice([-1.0, 1.0])) * rng.uniform(*ROAD_PEOPLE_REACH)
        along = rng.random() < ROAD_PEOPLE_ALONG
        heading = (float(rng.choice([0.0, np.pi])) + rng.normal(0, 0.15)) if along else rng.uniform(-np.pi, np.pi)
        side = np.array([-np.sin(heading), np.cos(heading)])  # companions walk abreast
        y = lane.y_centre + rng.uniform(-0.35, 0.35) * lane.width
        for k in range(1 + int(rng.choice(len(ABREAST_ODDS), p=ABREAST_ODDS))):
            size = sizes("pedestrian", child=rng.random() < sizes.style.child_fraction)
            offset = k * rng.uniform(0.7, 1.0) * side
            placer.place("pedestrian", x + offset[0], y + offset[1], heading + rng.normal(0, 0.05), size,
                         float(rng.uniform(0.9, 1.7)), heading, check="all", rng=rng)


def _cross_the_squares(placer: Placer, rng: np.random.Generator, x_range: tuple[float, float], density: Densities,
                       sizes: SizeSampler) -> None:
    """Pedestrians and cyclists on the street's squares within ``x_range`` (populate's ``squares``), every draw from
    ``rng``: each group at a uniform spot of the square, heading anywhere; riders in file behind the first, walkers
    abreast of the first. Each through the full overlap test."""
    layout = placer.world.layout
    for x0, x1, side, depth in layout.squares:
        lo, hi = max(x0, x_range[0]) + SQUARE_EDGE, min(x1, x_range[1]) - SQUARE_EDGE
        near = layout.building_line(side) + SQUARE_EDGE
        far = layout.building_line(side) + depth - SQUARE_EDGE
        if hi <= lo or far <= near:
            continue
        area = (hi - lo) * (far - near)
        for kind, per_m2, busy in (("pedestrian", SQUARE_WALKERS, density.pedestrians),
                                   ("cyclist", SQUARE_RIDERS, density.cyclists)):
            for _ in range(int(rng.poisson(area * per_m2 * (0.5 + busy)))):
                x, y = float(rng.uniform(lo, hi)), side * float(rng.uniform(near, far))
                heading = float(rng.uniform(-np.pi, np.pi))
                ahead = np.array([np.cos(heading), np.sin(heading)])
                if kind == "cyclist":
                    count, speed = int(rng.choice(SQUARE_RIDERS_IN_FILE, p=SQUARE_RIDERS_IN_FILE_P)), rng.uniform(3, 7)
                else:
                    count = 1 + int(rng.choice(len(ABREAST_ODDS), p=ABREAST_ODDS))
                    speed = rng.uniform(0.9, 1.7) if rng.random() < SQUARE_WALKING else 0.0
                step = 0.0
                for _ in range(count):
                    size = (sizes("cyclist") if kind == "cyclist"
                            else sizes("pedestrian", child=rng.random() < sizes.style.child_fraction))
                    if kind == "cyclist":  # the next rider follows a bicycle length and a gap behind
                        offset = -step * ahead
                        step += float(size[0] + rng.uniform(0.8, 3.0))
                    else:  # the next walker comes abreast, on the left
                        offset = step * np.array([-ahead[1], ahead[0]])
                        step += float(rng.uniform(0.7, 1.0))
                    placer.place(kind, x + offset[0], y + offset[1], heading + rng.normal(0, 0.05), size,
                                 float(speed), heading, check="all", rng=rng)
