"""The static street world: its layout (lanes, kerbs, sidewalks) and its meshes (ground, buildings, poles,
trees, bushes, fences, bollards, street furniture), built once per scene and cast against for every frame.

Three kinds of street, as KITTI drives through them: ``city`` (buildings along the sidewalks, shops with
windows), ``residential`` (houses set back behind hedges, fences and gardens, more trees) and ``rural``
(no buildings: verges, fields of uneven ground, vegetation and fences, few people).

World frame: x along the street, y to the left, z up; the road surface is ``z = slope * x``.
Cross-section of the right side (y < 0; the left side mirrors it and carries the -x traffic), from the
centre line outwards::

    travel lanes | bike lane? | parking lane? | kerb | furniture zone | walk zone (2 sub-lanes) | frontage
        | setback | buildings / lots / hedges

Lanes are disjoint strips; moving road users stay in their strip at the strip's speed, which is what
keeps a drive free of collisions (see placement.py). Static obstacles stand only in the furniture
zone, the frontage and beyond.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sparsekd_core.data.sim.clutter import add_street_clutter
from sparsekd_core.data.sim.materials import (ASPHALT, BARK, CONCRETE, FACADE, FOLIAGE, GRASS, MARKING, METAL,
                                              SIGN_FACE)
from sparsekd_core.data.sim.meshes import GLASS_RETURNS, Mesh, MeshBuilder
from sparsekd_core.data.sim.raycast import RayCaster, RayCasterChoice
from sparsekd_core.data.sim.road_furniture import add_road_furniture

STREET_KINDS = ("city", "residential", "rural")

#: Squares opening off the street (StreetLayout.with_squares, sparsekd-sim --open-squares): open paved ground where
#: the building line steps back, with road users crossing it at any heading (placement.populate's ``squares``). Of
#: the 8 labelled cyclists 5-40 m ahead in the 25 held-out real KITTI sweeps, 4 ride more than 45 degrees off the
#: street's axis, crossing such a square (pp_000134); in streets that run along x between buildings 8% of the
#: simulated ones do (docs/results.md, session 58). Each square's length along the street, how far the building line
#: steps back (metres), the gap between squares along the street, and the share that open on both sides at once.
SQUARE_LENGTH = (20.0, 50.0)
SQUARE_DEPTH = (15.0, 35.0)
SQUARE_GAP = (30.0, 80.0)
SQUARE_BOTH_SIDES = 0.2
#: Things that stand on a square (trees, bollard rows, benches, bins, lamps): how many per square metre.
SQUARE_FURNITURE_DENSITY = 1 / 250


@dataclass(frozen=True)
class Lane:
    """A strip of the street parallel to x. kind: travel, bike, parking, furniture, walk, frontage.
    direction: +1 / -1 travel direction along x (0 for strips without traffic). side: -1 right, +1 left."""

    kind: str
    y_centre: float
    width: float
    direction: int
    side: int
    surface: str  # "road" or "sidewalk" (height of the strip: road level or kerb level)


@dataclass
class StreetLayout:
    """Parameters of one street. Lengths in metres; ``x_range`` is the street's extent along x."""

    x_range: tuple[float, float]
    kind: str = "city"
    slope: float = 0.0
    kerb_height: float = 0.13
    lane_width: float = 3.4
    lanes_per_direction: int = 1
    parking: tuple[bool, bool] = (True, True)  # right, left
    bike_lane: tuple[bool, bool] = (False, False)
    sidewalk_width: float = 4.0
    setback: tuple[float, float] = (1.0, 1.0)
    #: squares opening off the street: (x0, x1, side, depth) each, the building line of ``side`` stepping back
    #: ``depth`` m over x0..x1 (:meth:`with_squares`); none in version-4 streets
    squares: tuple[tuple[float, float, int, float], ...] = ()
    lanes: list[Lane] = field(default_factory=list)

    PARKING_WIDTH = 2.3
    BIKE_WIDTH = 1.6
    FURNITURE_WIDTH = 1.0
    FRONTAGE_WIDTH = 0.7

    def __post_init__(self):
        self.lanes = self._cross_section()
        self._kerbs = {side: max(abs(l.y_centre) + l.width / 2 for l in self.lanes
                                 if l.side == side and l.surface == "road") for side in (-1, 1)}

    @classmethod
    def sample(cls, rng: np.random.Generator, x_range: tuple[float, float], needs_bike_lane: bool = False,
               narrow_share: float = 0.0) -> "StreetLayout":
        """A random street: wide (1-3 lanes each way, 3.7-5.5 m sidewalks) or, for a share ``narrow_share`` of
        draws, a narrow one (:meth:`narrowed`). With ``narrow_share`` 0 no extra number is drawn, so the
        streets of a seed are those of earlier versions."""
        bike = tuple(bool(rng.random() < 0.75) or needs_bike_lane for _ in range(2))
        kind = str(rng.choice(STREET_KINDS, p=[0.45, 0.35, 0.2]))
        layout = cls(
            x_range=x_range,
            kind=kind,
            slope=float(rng.uniform(-0.02, 0.02)),
            kerb_height=float(rng.uniform(0.1, 0.16)),
            lane_width=float(rng.uniform(3.2, 3.7)),
            lanes_per_direction=int(rng.choice([1, 2, 2, 3])),
            parking=tuple(bool(rng.random() < 0.7) for _ in range(2)),
            bike_lane=bike,
            sidewalk_width=float(rng.uniform(3.7, 5.5)),
            setback=tuple(float(rng.uniform(*{"city": (0.0, 5.0), "residential": (3.0, 10.0),
                                             "rural": (2.0, 12.0)}[kind])) for _ in range(2)),
        )
        if narrow_share > 0.0 and rng.random() < narrow_share:
            layout = layout.narrowed(rng, needs_bike_lane)
        return layout

    def narrowed(self, rng: np.random.Generator, needs_bike_lane: bool = False) -> "StreetLayout":
        """The same kind of street with the cross-section of an old European town street, the kind KITTI drives
        through in Karlsruhe: one lane each way, 2.75-3.25 m wide (the basic lane widths of German guideline RAS-Q
        for built-up streets at 30-50 km/h), 2.5-3.5 m sidewalks (RASt 06 asks for at least 2.5 m of side
        space), cars parked along most kerbs, few bike lanes, and the buildings, hedges and gardens at a third of
        the distance from the sidewalk. Walls, parked cars and trees then stand 4-10 m from the sensor, as they do
        in real sweeps (sparsekd-gap: returns standing above the road by distance)."""
        return replace(
            self,
            lane_width=float(rng.uniform(2.75, 3.25)),
            lanes_per_direction=1,
            parking=tuple(bool(rng.random() < 0.85) for _ in range(2)),
            bike_lane=tuple(bool(rng.random() < 0.2) or needs_bike_lane for _ in range(2)),
            sidewalk_width=float(rng.uniform(2.5, 3.5)),
            setback=tuple(s / 3 for s in self.setback),
        )

    def with_squares(self, rng: np.random.Generator) -> "StreetLayout":
        """The same street with squares opening off it, every draw from ``rng``: SQUARE_LENGTH long, SQUARE_GAP
        apart along the whole street, each on one side or (SQUARE_BOTH_SIDES of them) both, its building line
        SQUARE_DEPTH back from where it was."""
        squares = []
        x = self.x_range[0] + rng.uniform(0.0, SQUARE_GAP[1])
        while x < self.x_range[1]:
            length = float(rng.uniform(*SQUARE_LENGTH))
            sides = (-1, 1) if rng.random() < SQUARE_BOTH_SIDES else (int(rng.choice([-1, 1])),)
            for side in sides:
                squares.append((float(x), float(min(x + length, self.x_range[1])), side,
                                float(rng.uniform(*SQUARE_DEPTH))))
            x += length + rng.uniform(*SQUARE_GAP)
        return replace(self, squares=tuple(squares))

    def square_depth(self, x0: float, x1: float, side: int) -> float:
        """How far the building line of ``side`` steps back over x0..x1: the deepest square there, 0 if none."""
        return max((d for a, b, s, d in self.squares if s == side and a < x1 and b > x0), default=0.0)

    def _cross_section(self) -> list[Lane]:
        lanes: list[Lane] = []
        for side_index, side in enumerate((-1, 1)):
            direction = 1 if side < 0 else -1  # right-hand traffic: +x traffic on the right (y < 0)
            y = 0.0
            strips = [("travel", self.lane_width)] * self.lanes_per_direction
            if self.bike_lane[side_index]:
                strips.append(("bike", self.BIKE_WIDTH))
            if self.parking[side_index]:
                strips.append(("parking", self.PARKING_WIDTH))
            for kind, width in strips:
                lanes.append(Lane(kind, side * (y + width / 2), width, direction if kind != "parking" else 0,
                                  side, "road"))
                y += width
            walk = self.sidewalk_width - self.FURNITURE_WIDTH - self.FRONTAGE_WIDTH
            for kind, width in (("furniture", self.FURNITURE_WIDTH), ("walk", walk / 2), ("walk", walk / 2),
                                ("frontage", self.FRONTAGE_WIDTH)):
                lanes.append(Lane(kind, side * (y + width / 2), width, 0, side, "sidewalk"))
                y += width
        return lanes

    def kerb_y(self, side: int) -> float:
        """|y| of the kerb on a side (-1 right, +1 left)."""
        return self._kerbs[side]

    def building_line(self, side: int) -> float:
        """|y| where the building zone starts on a side."""
        return self.kerb_y(side) + self.sidewalk_width + self.setback[0 if side < 0 else 1]

    def lanes_of(self, kind: str, side: int | None = None) -> list[Lane]:
        return [l for l in self.lanes if l.kind == kind and (side is None or l.side == side)]

    def ground_height(self, x: float, y: float) -> float:
        """:meth:`ground_z` for one point, in plain floats."""
        kerb = self._kerbs[-1] if y < 0 else self._kerbs[1]
        return self.slope * x + (self.kerb_height if abs(y) > kerb else 0.0)

    def ground_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the ground (road or kerb level) at world (x, y)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        kerb = np.where(y < 0, self._kerbs[-1], self._kerbs[1])
        return self.slope * x + np.where(np.abs(y) > kerb, self.kerb_height, 0.0)


@dataclass
class StaticWorld:
    """The meshes of a street and what placement needs to know about them.

    mesh: all static geometry, one reflectivity per triangle.
    obstacles: (K, 5) BEV rectangles x, y, dx, dy, yaw of things that stand in the furniture zone,
    frontage or lots (poles, trunks, bushes, bins) or, last, on the road (road furniture), for the collision checks
    of standing actors.
    lots: (L, 4) parking-lot rectangles x0, x1, y0, y1 (at kerb level) where cars park at any angle.
    road_obstacles: (R, 5) the rectangles among ``obstacles`` that stand on the carriageway (road_furniture.py),
    which lane users (placed without the full overlap test) must keep clear of too; none in version-4 streets.
    """

    layout: StreetLayout
    mesh: Mesh
    obstacles: np.ndarray
    lots: np.ndarray
    road_obstacles: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    _casters: dict = field(default_factory=dict, repr=False)

    def ray_caster(self, choice: RayCasterChoice = RayCasterChoice()) -> RayCaster:
        """The static mesh's ray caster of ``choice``'s backend, built on first use and reused for every frame."""
        if choice not in self._casters:
            self._casters[choice] = choice.build(self.mesh.vertices, self.mesh.triangles)
        return self._casters[choice]


def _strip(b: MeshBuilder, x0: float, x1: float, y0: float, y1: float, slope: float, dz: float, refl: float):
    """A flat strip between x0..x1, y0..y1 on the sloped ground at height offset dz."""
    z = lambda x: slope * x + dz  # noqa: E731
    b.quad([(x0, y0, z(x0)), (x1, y0, z(x1)), (x1, y1, z(x1)), (x0, y1, z(x0))], refl)


def _markings(b: MeshBuilder, layout: StreetLayout, rng: np.random.Generator):
    x0, x1 = layout.x_range
    lift = 0.004
    lines: list[tuple[float, bool]] = [(0.0, False)]  # centre line: solid
    for side in (-1, 1):
        travel = layout.lanes_of("travel", side)
        for lane in travel[:-1]:
            lines.append((lane.y_centre + side * lane.width / 2, True))  # lane separators: dashed
        outer = travel[-1]
        lines.append((outer.y_centre + side * outer.width / 2, False))  # edge line: solid
    for y, dashed in lines:
        w = 0.12
        if dashed:
            starts = np.arange(x0 + rng.uniform(0, 9), x1 - 3, 9.0)
            for xs in starts:
                _strip(b, xs, xs + 3.0, y - w / 2, y + w / 2, layout.slope, lift, MARKING)
        else:
            _strip(b, x0, x1, y - w / 2, y + w / 2, layout.slope, lift, MARKING)


def _tree(b: MeshBuilder, x: float, y: float, z: float, rng: np.random.Generator, max_radius: float,
          min_crown_bottom: float = 0.0) -> float:
    """A trunk and a rough crown; returns the trunk radius. The crown's lowest point stays above
    ``min_crown_bottom`` (trees over the road are pruned so trucks pass under them)."""
    trunk_r = rng.uniform(0.12, 0.25)
    r = min(rng.uniform(1.3, 2.8), max_radius)
    rz = r * rng.uniform(0.8, 1.3)
    trunk_h = max(rng.uniform(2.6, 4.0), min_crown_bottom + 0.4 * rz)  # crown bottom: trunk_h - 0.38 rz at most
    b.cylinder((x, y, z + trunk_h / 2), trunk_r, trunk_h, BARK, segments=8)
    foliage = rng.uniform(*FOLIAGE)
    # An irregular crown: a main rough blob and up to two smaller ones beside it; none reaches lower.
    b.ellipsoid((x, y, z + trunk_h + rz * 0.8), (r, r * rng.uniform(0.85, 1.15), rz), foliage,
                yaw=rng.uniform(0, np.pi), rng=rng, roughness=0.25)
    for _ in range(int(rng.integers(0, 3))):
        a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.6) * r
        rb = r * rng.uniform(0.4, 0.7)
        b.ellipsoid((x + d * np.cos(a), y + d * np.sin(a), z + trunk_h + rz * rng.uniform(0.8, 1.3)),
                    (rb, rb, rb * rng.uniform(0.7, 1.0)), foliage, rng=rng, roughness=0.3, subdivisions=0)
    return trunk_r


def _uneven_strip(b: MeshBuilder, x0: float, x1: float, y0: float, y1: float, slope: float, dz: float,
                  refl: float, rng: np.random.Generator, bumps: float = 0.05, cell: float = 1.0):
    """Rough ground (grass, verges, fields) between x0..x1, y0..y1: a height field on a ``cell`` grid whose
    heights wander by about ``bumps`` metres, never below the flat ground (kerb-level strips stay flush)."""
    nx = max(2, int(np.ceil((x1 - x0) / cell)) + 1)
    ny = max(2, int(np.ceil(abs(y1 - y0) / cell)) + 1)
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    h = np.abs(rng.normal(0.0, bumps, size=gx.shape))
    h[:, 0] = 0.0  # meet the neighbouring strip without a step
    v = np.stack([gx, gy, slope * gx + dz + h], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
    a = (i * ny + j).ravel()
    tris = np.concatenate([np.stack([a, a + ny, a + 1], 1), np.stack([a + 1, a + ny, a + ny + 1], 1)])
    b.add(v, tris, rng.uniform(refl * 0.85, refl * 1.15, size=len(tris)).clip(0, 1))


def _building(b: MeshBuilder, x0: float, width: float, side: int, line: float, zg: float,
              rng: np.random.Generator, shop: bool):
    """A building along the building line: a block whose street face has piers and floor bands standing
    0.2 m proud of windows (glass: few returns), doors at street level, now and then a shop awning."""
    depth, height = rng.uniform(8, 20), rng.uniform(4, 24)
    xc = x0 + width / 2
    refl = rng.uniform(*FACADE)
    recess = 0.2
    b.box((xc, side * (line + recess + depth / 2), zg + height / 2 - 0.3), (width, depth, height + 0.6), refl)
    face = side * (line + recess)  # the recessed plane the windows sit in
    storey = rng.uniform(2.8, 3.5)
    bay = rng.uniform(2.2, 3.6)
    pier = rng.uniform(0.4, 0.9)
    y_mid = side * (line + recess / 2)
    for xp in np.arange(x0, x0 + width + 1e-6, bay):  # piers
        b.box((xp, y_mid, zg + height / 2), (pier, recess, height), refl)
    for zf in np.arange(0.0, height, storey):  # floor bands
        b.box((xc, y_mid, zg + zf + 0.3), (width, recess, 0.6), refl)
    # Window panes just in front of the recessed face, between piers and bands, above the ground floor
    # for houses, from the ground for shops.
    glass_y = face - side * 0.01
    first = 0.0 if shop else storey
    for xp in np.arange(x0, x0 + width - bay + 1e-6, bay):
        for zf in np.arange(first, height - 0.8, storey):
            xa, xb = xp + pier / 2, xp + bay - pier / 2
            za, zb = zg + zf + 0.6, zg + min(zf + storey, height) - 0.1
            if xb - xa > 0.3 and zb - za > 0.3:
                b.add(np.array([(xa, glass_y, za), (xb, glass_y, za), (xb, glass_y, zb), (xa, glass_y, zb)],
                               np.float32), np.array([[0, 1, 2], [0, 2, 3]], np.int32), 0.05, GLASS_RETURNS)
    if shop and rng.random() < 0.5:  # an awning over the frontage
        b.box((xc, side * (line - 0.6), zg + rng.uniform(2.6, 3.5)), (width * 0.8, 1.2, 0.15), rng.uniform(*FACADE))


def _fence(b: MeshBuilder, x0: float, x1: float, y: float, slope: float, zg: float, rng: np.random.Generator):
    """A fence along x at y: posts every 2-3 m and two or three rails (wood or metal), or palings."""
    h = rng.uniform(0.9, 1.8)
    refl = rng.uniform(0.15, 0.45)
    spacing = rng.uniform(2.0, 3.0)
    for xp in np.arange(x0, x1, spacing):
        b.box((xp, y, slope * xp + zg + h / 2), (0.1, 0.1, h), refl)
    if rng.random() < 0.4:  # palings: vertical slats with gaps
        for xp in np.arange(x0, x1, 0.2):
            b.box((xp, y, slope * xp + zg + h / 2 - 0.05), (0.09, 0.03, h - 0.1), refl)
    else:
        for zr in np.linspace(0.3, h - 0.1, int(rng.integers(2, 4))):
            xm = (x0 + x1) / 2
            b.box((xm, y, slope * xm + zg + zr), (x1 - x0, 0.05, 0.1), refl)


def _bollards(b: MeshBuilder, x0: float, count: int, step: float, y: float, slope: float, zg: float,
              rng: np.random.Generator):
    """A row of ``count`` bollards ``step`` metres apart from ``x0`` (about a person's width and half their
    height: what fires as a pedestrian)."""
    r, h = rng.uniform(0.06, 0.14), rng.uniform(0.7, 1.1)
    refl = rng.uniform(0.2, 0.6)
    for k in range(count):
        xp = x0 + k * step
        b.cylinder((xp, y, slope * xp + zg + h / 2), r, h, refl, segments=10)
        if rng.random() < 0.3:  # reflective band
            b.cylinder((xp, y, slope * xp + zg + h - 0.1), r + 0.005, 0.08, SIGN_FACE, segments=10)


def _lamp(b: MeshBuilder, x: float, y: float, z: float, side: int, rng: np.random.Generator):
    h = rng.uniform(6.0, 9.0)
    b.cylinder((x, y, z + h / 2), 0.1, h, METAL, segments=8)
    arm = rng.uniform(1.0, 2.0)
    b.box((x, y - side * arm / 2, z + h - 0.1), (0.1, arm, 0.1), METAL)
    b.box((x, y - side * arm, z + h - 0.2), (0.35, 0.6, 0.15), METAL)


def _sign(b: MeshBuilder, x: float, y: float, z: float, rng: np.random.Generator):
    h = rng.uniform(2.2, 2.8)
    b.cylinder((x, y, z + h / 2), 0.04, h, METAL, segments=6)
    size = rng.uniform(0.5, 0.8)
    b.box((x, y, z + h + size / 2 - 0.05), (0.03, size, size), SIGN_FACE, yaw=rng.normal(0, 0.1))


def _square_furniture(b: MeshBuilder, layout: StreetLayout, rng: np.random.Generator, obstacles: list) -> None:
    """What stands on the squares of ``layout`` (SQUARE_FURNITURE_DENSITY of it: trees, bollard rows, benches,
    bins, lamps), every draw from ``rng``; each adds its BEV rectangle to ``obstacles``."""
    kh = layout.kerb_height
    for x0, x1, side, depth in layout.squares:
        near = layout.building_line(side)
        for _ in range(int(rng.poisson((x1 - x0) * depth * SQUARE_FURNITURE_DENSITY))):
            x, y = float(rng.uniform(x0, x1)), side * float(rng.uniform(near + 1.0, near + depth - 1.0))
            z = layout.slope * x + kh
            kind = rng.choice(["tree", "bollards", "bench", "bin", "lamp"], p=[0.3, 0.25, 0.2, 0.15, 0.1])
            if kind == "tree":
                r = _tree(b, x, y, z, rng, max_radius=3.0)
                obstacles.append((x, y, 2 * r + 0.2, 2 * r + 0.2, 0.0))
            elif kind == "bollards":
                count, step = int(rng.integers(2, 8)), float(rng.uniform(1.2, 2.0))
                _bollards(b, x, count, step, y, layout.slope, kh, rng)
                obstacles.append((x + step * (count - 1) / 2, y, step * (count - 1) + 0.4, 0.5, 0.0))
            elif kind == "lamp":
                _lamp(b, x, y, z, side, rng)
                obstacles.append((x, y, 0.3, 0.3, 0.0))
            else:  # a bench (seat and back) or a bin
                yaw = float(rng.uniform(-np.pi, np.pi))
                size = ((rng.uniform(1.5, 2.2), 0.5, 0.45) if kind == "bench"
                        else (rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.7), rng.uniform(0.8, 1.1)))
                b.box((x, y, z + size[2] / 2), size, rng.uniform(0.1, 0.4), yaw=yaw)
                if kind == "bench":
                    back = (-np.sin(yaw) * 0.22, np.cos(yaw) * 0.22)
                    b.box((x + back[0], y + back[1], z + 0.65), (size[0], 0.06, 0.4), rng.uniform(0.1, 0.4), yaw=yaw)
                obstacles.append((x, y, size[0] + 0.2, size[1] + 0.2, yaw))


def build_world(layout: StreetLayout, rng: np.random.Generator,
                clutter_rng: np.random.Generator | None = None,
                furniture_rng: np.random.Generator | None = None,
                squares_rng: np.random.Generator | None = None) -> StaticWorld:
    """Meshes for the street: ground, kerbs, markings, buildings, lots, hedges, poles, signs, trees, bushes.

    clutter_rng: when given, the street also gets dense person-sized clutter (clutter.py) drawn from it, in the
    furniture zones and frontages of both sides; furniture_rng: when given, the carriageway gets road furniture
    (road_furniture.py: islands, delineators, cones, warning boards, bins, kerb extensions, bicycles) drawn from it;
    squares_rng: what stands on the layout's squares (StreetLayout.with_squares) is drawn from it.
    ``rng`` draws the same street either way, its buildings stepped back behind any square.
    """
    b = MeshBuilder()
    x0, x1 = layout.x_range
    s = layout.slope
    obstacles: list[tuple[float, float, float, float, float]] = []
    lots: list[tuple[float, float, float, float]] = []
    far = 90.0  # ground reaches this far sideways

    # Road: one strip per side up to each kerb, with a shade of asphalt per scene.
    asphalt = rng.uniform(*ASPHALT)
    for side in (-1, 1):
        k = layout.kerb_y(side)
        _strip(b, x0, x1, min(0, side * k), max(0, side * k), s, 0.0, asphalt)
        # Kerb face: vertical quad from road to kerb level.
        y = side * k
        kh = layout.kerb_height
        b.quad([(x0, y, s * x0), (x1, y, s * x1), (x1, y, s * x1 + kh), (x0, y, s * x0 + kh)],
               rng.uniform(*CONCRETE))
        # Sidewalk then grass/paving to the building line, then ground beyond (rough fields on rural roads).
        sw_out = k + layout.sidewalk_width
        _strip(b, x0, x1, min(side * k, side * sw_out), max(side * k, side * sw_out), s, kh, rng.uniform(*CONCRETE))
        line = layout.building_line(side)
        if line > sw_out:
            if layout.kind == "city":
                _strip(b, x0, x1, min(side * sw_out, side * line), max(side * sw_out, side * line), s, kh,
                       rng.uniform(*GRASS))
            else:
                _uneven_strip(b, x0, x1, side * sw_out, side * line, s, kh, rng.uniform(*GRASS), rng)
        if layout.kind == "rural":
            _uneven_strip(b, x0, x1, side * line, side * far, s, kh, rng.uniform(*GRASS), rng, bumps=0.12, cell=2.5)
        else:
            _strip(b, x0, x1, min(side * line, side * far), max(side * line, side * far), s, kh,
                   rng.uniform(*CONCRETE))
    _markings(b, layout, rng)

    for side in (-1, 1):
        kh = layout.kerb_height
        k = layout.kerb_y(side)
        street_line = layout.building_line(side)
        # Along the building line: buildings, lots and hedges (city); gardens with hedges or fences and houses
        # set back (residential); fences, hedges, trees and open fields (rural).
        x = x0 - rng.uniform(0, 10)
        mix = {"city": [0.72, 0.14, 0.14, 0.0, 0.0], "residential": [0.15, 0.1, 0.3, 0.3, 0.15],
               "rural": [0.0, 0.0, 0.3, 0.3, 0.4]}[layout.kind]
        while x < x1:
            width = rng.uniform(8, 35)
            kind = rng.choice(["building", "lot", "hedge", "garden", "open"], p=mix)
            line = street_line + layout.square_depth(x, x + width, side)  # the far side of a square, if one is here
            xc = x + width / 2
            zg = s * xc + kh
            if kind == "building":
                _building(b, x, width, side, line, zg, rng, shop=rng.random() < 0.5)
            elif kind == "lot" and width > 14:
                depth = rng.uniform(14, 22)
                lots.append((x + 1.0, x + width - 1.0, side * line if side > 0 else -(line + depth),
                             side * (line + depth) if side > 0 else -line))
                b.box((xc, side * (line + depth + 0.5), zg + 1.0), (width, 0.3, 2.0), rng.uniform(*CONCRETE))
            elif kind == "garden":  # a fence or hedge at the line, a house behind a front garden
                if rng.random() < 0.5:
                    _fence(b, x, x + width, side * (line + 0.3), s, kh, rng)
                else:
                    hh = rng.uniform(0.8, 1.8)
                    b.box((xc, side * (line + 0.5), zg + hh / 2), (width, 0.8, hh), rng.uniform(*FOLIAGE))
                garden = rng.uniform(3.0, 9.0)
                if layout.kind == "residential" and width > 10:
                    _building(b, x + 1.5, width - 3.0, side, line + garden, zg, rng, shop=False)
                for tx in np.arange(x + rng.uniform(1, 5), x + width, rng.uniform(5, 12)):
                    _tree(b, tx, side * (line + rng.uniform(1.5, garden)), zg, rng, 2.5)
            elif kind == "open":  # an open verge or field: a few bushes and trees, sometimes a fence
                if rng.random() < 0.4:
                    _fence(b, x, x + width, side * (line + rng.uniform(0.3, 3.0)), s, kh, rng)
                for tx in rng.uniform(x, x + width, size=int(rng.integers(0, 4))):
                    if rng.random() < 0.5:
                        _tree(b, tx, side * (line + rng.uniform(2, 15)), zg, rng, 3.0)
                    else:
                        r = rng.uniform(0.5, 1.5)
                        b.ellipsoid((tx, side * (line + rng.uniform(1, 10)), zg + r * 0.6),
                                    (r, r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.0)),
                                    rng.uniform(*FOLIAGE), rng=rng, roughness=0.3)
            else:
                hh = rng.uniform(0.8, 2.0)
                b.box((xc, side * (line + 0.6), zg + hh / 2), (width, 1.0, hh), rng.uniform(*FOLIAGE))
                for tx in np.arange(x + rng.uniform(2, 6), x + width, rng.uniform(6, 12)):
                    _tree(b, tx, side * (line + 3.0), zg, rng, 2.5)
            x += width + (rng.uniform(1, 8) if rng.random() < 0.4 else 0.0)

        line = street_line
        # Furniture zone: lamps, signs, trees, bins; positions must not collide.
        fy = side * (k + layout.FURNITURE_WIDTH / 2)
        taken: list[float] = []

        def free(xp: float, r: float) -> bool:
            return all(abs(xp - t) > r + 1.5 for t in taken)

        lamp_gap = (22, 36) if layout.kind != "rural" else (40, 90)
        for xp in np.arange(x0 + rng.uniform(0, 25), x1, rng.uniform(*lamp_gap)):
            _lamp(b, xp, fy, s * xp + kh, side, rng)
            taken.append(xp)
            obstacles.append((xp, fy, 0.3, 0.3, 0.0))
        if rng.random() < 0.65:
            for xp in np.arange(x0 + rng.uniform(0, 12), x1, rng.uniform(8, 16)):
                xp = xp + rng.uniform(-1, 1)
                if not free(xp, 0.3):
                    continue
                # Crowns that overhang the road start above 3.8 m, so no vehicle runs into one.
                r = _tree(b, xp, fy, s * xp + kh, rng, max_radius=2.6, min_crown_bottom=3.9)
                taken.append(xp)
                obstacles.append((xp, fy, 2 * r + 0.2, 2 * r + 0.2, 0.0))
        for xp in rng.uniform(x0, x1, size=int((x1 - x0) / 40)):
            if free(xp, 0.4):
                _sign(b, xp, fy, s * xp + kh, rng)
                taken.append(xp)
                obstacles.append((xp, fy, 0.3, 0.3, 0.0))
        for xp in rng.uniform(x0, x1, size=int((x1 - x0) / 30)):
            if free(xp, 0.4):
                size = (rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.7), rng.uniform(0.8, 1.1))
                b.box((xp, fy, s * xp + kh + size[2] / 2), size, rng.uniform(0.1, 0.4))
                taken.append(xp)
                obstacles.append((xp, fy, size[0] + 0.2, size[1] + 0.2, 0.0))
        for xp in rng.uniform(x0, x1, size=int(rng.poisson((x1 - x0) / 60))):  # rows of bollards
            count, step = int(rng.integers(1, 7)), rng.uniform(1.2, 2.0)
            if all(free(xp + step * c, 0.3) for c in range(count)):
                _bollards(b, xp, count, step, fy, s, kh, rng)
                for c in range(count):
                    taken.append(xp + step * c)
                obstacles.append((xp + step * (count - 1) / 2, fy, step * (count - 1) + 0.4, 0.5, 0.0))
        # Bushes in the frontage strip and the setback (vegetation clutter next to the people).
        front_y = side * (k + layout.sidewalk_width - layout.FRONTAGE_WIDTH / 2)
        for xp in rng.uniform(x0, x1, size=int((x1 - x0) / 12)):
            r = rng.uniform(0.3, 0.5)
            zg = s * xp + kh
            yb = front_y + side * rng.uniform(0, 0.2)
            b.ellipsoid((xp, yb, zg + r * 0.8), (r, r, r * rng.uniform(0.8, 1.6)), rng.uniform(*FOLIAGE),
                        rng=rng, roughness=0.25, subdivisions=0)
            obstacles.append((xp, yb, 2 * r + 0.2, 2 * r + 0.2, 0.0))
        if layout.setback[0 if side < 0 else 1] > 1.5:
            for xp in rng.uniform(x0, x1, size=int((x1 - x0) / 15)):
                r = rng.uniform(0.4, 1.1)
                yb = side * (k + layout.sidewalk_width + rng.uniform(r, max(r, line - k - layout.sidewalk_width - r)))
                b.ellipsoid((xp, yb, s * xp + kh + r * 0.7), (r, r * rng.uniform(0.7, 1.3), r), rng.uniform(*FOLIAGE),
                            rng=rng, roughness=0.25)
    if clutter_rng is not None:
        strips = []
        for side in (-1, 1):
            k = layout.kerb_y(side)
            strips.append((side * (k + layout.FURNITURE_WIDTH / 2), layout.FURNITURE_WIDTH / 2))
            strips.append((side * (k + layout.sidewalk_width - layout.FRONTAGE_WIDTH / 2), layout.FRONTAGE_WIDTH / 2))
        add_street_clutter(b, layout.x_range, strips, layout.ground_height, clutter_rng, obstacles)
    if squares_rng is not None:
        _square_furniture(b, layout, squares_rng, obstacles)
    first_on_road = len(obstacles)
    if furniture_rng is not None:
        add_road_furniture(b, layout, furniture_rng, obstacles)
    return StaticWorld(layout, b.build(), np.array(obstacles, dtype=np.float64).reshape(-1, 5),
                       np.array(lots, dtype=np.float64).reshape(-1, 4),
                       np.array(obstacles[first_on_road:], dtype=np.float64).reshape(-1, 5))
