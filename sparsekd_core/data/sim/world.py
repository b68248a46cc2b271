"""The static street world: its layout (lanes, kerbs, sidewalks) and its meshes (ground, buildings, poles,
trees, bushes, street furniture), built once per scene and cast against for every frame.

World frame: x along the street, y to the left, z up; the road surface is ``z = slope * x``.
Cross-section of the right side (y < 0; the left side mirrors it and carries the -x traffic), from the
centre line outwards::

    travel lanes | bike lane? | parking lane? | kerb | furniture zone | walk zone (2 sub-lanes) | frontage | setback | buildings / lots / hedges

Lanes are disjoint strips; moving road users stay in their strip at the strip's speed, which is what
keeps a drive free of collisions (see placement.py). Static obstacles stand only in the furniture
zone, the frontage and beyond.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sparsekd_core.data.sim.meshes import Mesh, MeshBuilder

# Reflectivity (0..1) of the world's materials at the LiDAR's near-infrared wavelength.
ASPHALT = (0.08, 0.16)
CONCRETE = (0.22, 0.35)
MARKING = 0.6
GRASS = (0.35, 0.5)
FOLIAGE = (0.35, 0.55)
BARK = 0.18
FACADE = (0.15, 0.5)
METAL = 0.35
SIGN_FACE = 0.95  # retro-reflective sheeting


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
    slope: float = 0.0
    kerb_height: float = 0.13
    lane_width: float = 3.4
    lanes_per_direction: int = 1
    parking: tuple[bool, bool] = (True, True)  # right, left
    bike_lane: tuple[bool, bool] = (False, False)
    sidewalk_width: float = 4.0
    setback: tuple[float, float] = (1.0, 1.0)
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
    def sample(cls, rng: np.random.Generator, x_range: tuple[float, float], needs_bike_lane: bool = False
               ) -> "StreetLayout":
        bike = tuple(bool(rng.random() < 0.75) or needs_bike_lane for _ in range(2))
        return cls(
            x_range=x_range,
            slope=float(rng.uniform(-0.02, 0.02)),
            kerb_height=float(rng.uniform(0.1, 0.16)),
            lane_width=float(rng.uniform(3.2, 3.7)),
            lanes_per_direction=int(rng.choice([1, 2, 2, 3])),
            parking=tuple(bool(rng.random() < 0.7) for _ in range(2)),
            bike_lane=bike,
            sidewalk_width=float(rng.uniform(3.7, 5.5)),
            setback=tuple(float(rng.uniform(0.0, 5.0)) for _ in range(2)),
        )

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
    frontage or lots (poles, trunks, bushes, bins), for the collision checks of standing actors.
    lots: (L, 4) parking-lot rectangles x0, x1, y0, y1 (at kerb level) where cars park at any angle.
    """

    layout: StreetLayout
    mesh: Mesh
    obstacles: np.ndarray
    lots: np.ndarray
    _scene: object = None

    @property
    def raycasting_scene(self):
        """open3d RaycastingScene of the static mesh, built on first use and reused for every frame."""
        if self._scene is None:
            import open3d as o3d

            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(self.mesh.vertices), o3d.core.Tensor(self.mesh.triangles.astype(np.uint32)))
            self._scene = scene
        return self._scene


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
    b.ellipsoid((x, y, z + trunk_h + rz * 0.8), (r, r * rng.uniform(0.85, 1.15), rz), rng.uniform(*FOLIAGE),
                yaw=rng.uniform(0, np.pi), rng=rng, roughness=0.18)
    return trunk_r


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


def build_world(layout: StreetLayout, rng: np.random.Generator) -> StaticWorld:
    """Meshes for the street: ground, kerbs, markings, buildings, lots, hedges, poles, signs, trees, bushes."""
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
        # Sidewalk then grass/paving to the building line, then ground beyond.
        sw_out = k + layout.sidewalk_width
        _strip(b, x0, x1, min(side * k, side * sw_out), max(side * k, side * sw_out), s, kh, rng.uniform(*CONCRETE))
        line = layout.building_line(side)
        if line > sw_out:
            _strip(b, x0, x1, min(side * sw_out, side * line), max(side * sw_out, side * line), s, kh,
                   rng.uniform(*GRASS))
        _strip(b, x0, x1, min(side * line, side * far), max(side * line, side * far), s, kh, rng.uniform(*CONCRETE))
    _markings(b, layout, rng)

    for side in (-1, 1):
        kh = layout.kerb_height
        k = layout.kerb_y(side)
        line = layout.building_line(side)
        # Buildings, lots and hedges along the building line.
        x = x0 - rng.uniform(0, 10)
        while x < x1:
            width = rng.uniform(8, 35)
            kind = rng.choice(["building", "lot", "hedge"], p=[0.72, 0.14, 0.14])
            xc = x + width / 2
            zg = s * xc + kh
            if kind == "building":
                depth, height = rng.uniform(8, 20), rng.uniform(4, 24)
                yc = side * (line + depth / 2)
                b.box((xc, yc, zg + height / 2 - 0.3), (width, depth, height + 0.6), rng.uniform(*FACADE))
                if rng.random() < 0.35:  # a shop awning or balcony row sticking out over the frontage
                    b.box((xc, side * (line - 0.6), zg + rng.uniform(2.6, 3.5)), (width * 0.8, 1.2, 0.15),
                          rng.uniform(*FACADE))
            elif kind == "lot" and width > 14:
                depth = rng.uniform(14, 22)
                lots.append((x + 1.0, x + width - 1.0, side * line if side > 0 else -(line + depth),
                             side * (line + depth) if side > 0 else -line))
                b.box((xc, side * (line + depth + 0.5), zg + 1.0), (width, 0.3, 2.0), rng.uniform(*CONCRETE))
            else:
                hh = rng.uniform(0.8, 2.0)
                b.box((xc, side * (line + 0.6), zg + hh / 2), (width, 1.0, hh), rng.uniform(*FOLIAGE))
                for tx in np.arange(x + rng.uniform(2, 6), x + width, rng.uniform(6, 12)):
                    _tree(b, tx, side * (line + 3.0), zg, rng, 2.5)
            x += width + (rng.uniform(1, 8) if rng.random() < 0.4 else 0.0)

        # Furniture zone: lamps, signs, trees, bins; positions must not collide.
        fy = side * (k + layout.FURNITURE_WIDTH / 2)
        taken: list[float] = []

        def free(xp: float, r: float) -> bool:
            return all(abs(xp - t) > r + 1.5 for t in taken)

        for xp in np.arange(x0 + rng.uniform(0, 25), x1, rng.uniform(22, 36)):
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
    return StaticWorld(layout, b.build(), np.array(obstacles, dtype=np.float64).reshape(-1, 5),
                       np.array(lots, dtype=np.float64).reshape(-1, 4))
