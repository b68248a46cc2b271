"""Road users of the simulated world: their kinds, their meshes and the class names they are labelled as.

An actor's box is the project's box: (x, y, z, dx, dy, dz, yaw), gravity centre, full extents. Its mesh is
built in the box's own frame (x forward) and stays inside the box (a thin margin on the sides, top, front and
back, none at the bottom so wheels and feet stand on the ground), except for what annotators leave out of a
box: a car's wing mirrors stick out of its sides, as they do out of KITTI's tight car labels.

Kinds (sizes.py draws their boxes): vehicle body types ``hatchback``, ``sedan``, ``suv``, ``pickup``, ``van``,
``truck``, ``bus``; ``pedestrian`` (adults and children, walking or standing, some with a bag); ``cyclist``
(riding, or standing beside the bicycle). Vehicle bodies are lofted cross-sections along the car, so they are
rounded the way a LiDAR sees them: bonnet, windscreen, roof and boot at their heights, a narrower glasshouse
above the beltline, rounded corners, wheel arches. Windows are glass: they return few pulses
(``Mesh.returns``), which is why real cars show a hole between the beltline and the roof.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sparsekd_core.data.sim.materials import TINTED_GLASS, clear_coat
from sparsekd_core.data.sim.meshes import GLASS_RETURNS, Mesh, MeshBuilder
from sparsekd_core.data.sim.sizes import KINDS, KITTI_CLASSES, VEHICLE_TYPES

#: The dataset class each kind is written as. KITTI has no bus class: buses are labelled Truck.
KITTI_NAMES = KITTI_CLASSES
WAYMO_NAMES = {**{t: "Vehicle" for t in VEHICLE_TYPES}, "pedestrian": "Pedestrian", "cyclist": "Cyclist"}
VEHICLE_KINDS = VEHICLE_TYPES
#: Kinds whose KITTI class is Car (tests and the demo count these as cars).
CAR_KINDS = tuple(k for k, v in KITTI_NAMES.items() if v == "Car")
#: Things placed like road users that no dataset labels: parked bicycles (nobody riding them) and prams.
UNLABELLED_KINDS = ("bicycle", "pram")
#: Extra width of a cyclist's box when the person stands beside the bicycle instead of riding it.
BESIDE_BIKE_WIDTH = 0.45

#: Gap left between the mesh and its box on every face but the bottom (keeps range noise inside the box).
MESH_MARGIN = 0.03
#: How far a wing mirror reaches beyond the body's side (outside the label box, as in KITTI).
MIRROR_REACH = 0.16
#: Reflectivity of the version-4 vehicles' windows: what returns off them often reads 0.05, not 0.
GLASS_SHADE = 0.05


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


def reach_boxes(boxes: np.ndarray, kinds) -> np.ndarray:
    """(K, 7) boxes grown to hold everything of their actors' meshes: vehicles' wing mirrors stick out of the
    sides of their label boxes by MIRROR_REACH."""
    out = np.asarray(boxes, np.float64).reshape(-1, 7).copy()
    out[np.isin(np.asarray(kinds, dtype=str), VEHICLE_KINDS), 4] += 2 * MIRROR_REACH
    return out


def _paint(rng: np.random.Generator) -> float:
    """A car paint on KITTI's intensity scale: dark paints return weakly (their returns often read 0, as a
    third of real KITTI car points do), light ones about as bright as concrete."""
    return float(rng.choice([rng.uniform(0.02, 0.08), rng.uniform(0.1, 0.25), rng.uniform(0.25, 0.45)],
                            p=[0.38, 0.32, 0.3]))


# Side profiles of the body types: (x as a fraction of the length from the back -0.5 to the front +0.5, top z
# as a fraction of the height), the beltline (fraction of the height) and the x range of the side windows.
_PROFILES: dict[str, tuple[tuple[tuple[float, float], ...], float, tuple[float, float]]] = {
    "sedan": (((-0.5, 0.5), (-0.47, 0.62), (-0.31, 0.65), (-0.17, 0.97), (0.08, 1.0), (0.24, 0.67),
               (0.46, 0.59), (0.5, 0.46)), 0.6, (-0.22, 0.2)),
    "hatchback": (((-0.5, 0.55), (-0.47, 0.9), (-0.4, 1.0), (0.07, 1.0), (0.24, 0.67), (0.46, 0.6),
                   (0.5, 0.48)), 0.6, (-0.38, 0.2)),
    "suv": (((-0.5, 0.6), (-0.48, 0.96), (-0.44, 1.0), (0.14, 1.0), (0.28, 0.71), (0.47, 0.65), (0.5, 0.52)),
            0.63, (-0.42, 0.24)),
    "pickup": (((-0.5, 0.63), (-0.11, 0.63), (-0.09, 1.0), (0.12, 1.0), (0.26, 0.71), (0.47, 0.65),
                (0.5, 0.52)), 0.63, (-0.08, 0.22)),
    "van": (((-0.5, 0.96), (-0.48, 1.0), (0.27, 1.0), (0.37, 0.62), (0.48, 0.55), (0.5, 0.45)), 0.5,
            (-0.1, 0.33)),
    "bus": (((-0.5, 0.98), (-0.49, 1.0), (0.49, 1.0), (0.5, 0.96)), 0.42, (-0.44, 0.47)),
}
_WHEEL_RADIUS = {"hatchback": 0.3, "sedan": 0.32, "suv": 0.37, "pickup": 0.38, "van": 0.34, "bus": 0.5,
                 "truck": 0.5}
_CLEARANCE = {"hatchback": 0.14, "sedan": 0.14, "suv": 0.22, "pickup": 0.24, "van": 0.17, "bus": 0.3}


def _plan_half_width(x: np.ndarray, length: float, half_width: float, corner: float) -> np.ndarray:
    """Half width of the body in plan at x (m from the centre): full width, rounded corners at both ends."""
    into = np.clip((np.abs(x) - (length / 2 - corner)) / corner, 0.0, 1.0)
    return half_width * (0.55 + 0.45 * np.sqrt(1.0 - into ** 2))


def lofted_body(kind: str, size: np.ndarray, paint: float, rng: np.random.Generator,
                gloss: float = 0.0, glass: float = GLASS_SHADE) -> tuple[MeshBuilder, dict]:
    """The body of a car-like vehicle as a loft of 12-vertex cross-sections, wheels in their arches; ``gloss``: the
    paint's mirror-like share (Mesh; a clear coat); ``glass``: the windows' reflectivity.

    Returns the builder and the geometry that mirrors and plates need (beltline z, windscreen base x, half
    width). Frame: box frame, x forward, ground at z = -height / 2.
    """
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    profile, belt_frac, window_x = _PROFILES[kind]
    L, hw = length - 2 * m, width / 2 - m
    z0 = -height / 2
    top = height / 2 - m
    radius = _WHEEL_RADIUS[kind] * rng.uniform(0.93, 1.07)
    radius = min(radius, 0.3 * (height - m))
    clearance = z0 + _CLEARANCE[kind] * rng.uniform(0.85, 1.15)
    belt = z0 + belt_frac * (top - z0) * rng.uniform(0.97, 1.03)
    axles = ([L / 2 - 0.17 * L, -L / 2 + 0.19 * L] if kind != "bus" else [L / 2 - 0.2 * L, -L / 2 + 0.25 * L])
    px = np.array([p[0] for p in profile]) * L
    pz = z0 + np.array([p[1] for p in profile]) * (top - z0)
    # Stations: the profile's corners plus a regular spacing, more of them across the wheel arches.
    xs = np.concatenate([px, np.linspace(-L / 2, L / 2, 18),
                         *[ax + np.linspace(-radius - 0.06, radius + 0.06, 7) for ax in axles]])
    xs = np.unique(np.round(np.clip(xs, -L / 2, L / 2), 4))
    ztop = np.interp(xs, px, pz)
    w = _plan_half_width(xs, L, hw, corner=min(0.45, 0.12 * L))
    zb = np.full_like(xs, clearance)
    for ax in axles:  # the arch: the body's lower edge follows a circle a little larger than the wheel
        arch = z0 + radius + np.sqrt(np.maximum((radius + 0.05) ** 2 - (xs - ax) ** 2, 0.0))
        zb = np.maximum(zb, np.where(np.abs(xs - ax) < radius + 0.05, arch, clearance))
    zbelt = np.minimum(belt, ztop - 0.04)
    tumble = np.where(ztop > zbelt + 0.12, 0.8, 0.93)  # the glasshouse is narrower than the body
    wt = w * tumble
    # 12 vertices around each cross-section, counter-clockwise seen from the front.
    ys = np.stack([0.9 * w, w, w, 0.97 * w, wt, 0.85 * wt, -0.85 * wt, -wt, -0.97 * w, -w, -w, -0.9 * w], 1)
    zlow = zb + 0.3 * (zbelt - zb)
    zs = np.stack([zb, zlow, zbelt - 0.05, zbelt, ztop - 0.06, ztop, ztop, ztop - 0.06, zbelt, zbelt - 0.05,
                   zlow, zb], 1)
    rings = np.stack([np.broadcast_to(xs[:, None], ys.shape), ys, zs], -1)
    # Materials per band (station pair, ring edge k -> k+1): paint, glass on the sides between the window
    # posts and on the slanted windscreen / rear window, dark underbody.
    xm = (xs[:-1] + xs[1:]) / 2
    refl = np.full((len(xs) - 1, 12), paint, np.float32)
    gl = np.full((len(xs) - 1, 12), gloss, np.float32)
    ret = np.ones((len(xs) - 1, 12), np.float32)
    side_glass = (xm > window_x[0] * L) & (xm < window_x[1] * L) & (np.interp(xm, xs, ztop) > belt + 0.15)
    slope = np.abs(np.diff(ztop) / np.maximum(np.diff(xs), 1e-6))
    slanted = (slope > 0.5) & (np.minimum(ztop[:-1], ztop[1:]) > belt - 0.02)
    for k in (3, 7):  # glasshouse sides (belt -> roof edge)
        ret[side_glass, k] = GLASS_RETURNS
        refl[side_glass, k] = glass
        gl[side_glass, k] = 0.0
    for k in (4, 5, 6):  # the top: windscreen and rear window where it slants
        ret[slanted, k] = GLASS_RETURNS
        refl[slanted, k] = glass
        gl[slanted, k] = 0.0
    refl[:, 11] = 0.05  # underbody
    gl[:, 11] = 0.0
    b = MeshBuilder().loft(rings, refl, ret, cap_reflectivity=paint, gloss=gl, cap_gloss=gloss)
    tyre = 0.2 if kind != "bus" else 0.3
    for ax in axles:
        for side in (-1, 1):
            wy = side * (float(_plan_half_width(np.array([ax]), L, hw, min(0.45, 0.12 * L))[0]) - tyre / 2 - 0.01)
            b.cylinder((ax, wy, z0 + radius), radius, tyre, 0.04, axis="y", segments=10)
    windscreen_x = float(px[np.argmax(pz)] if kind == "bus" else window_x[1] * L)
    return b, {"belt": belt, "windscreen_x": windscreen_x, "half_width": hw, "clearance": clearance}


def vehicle_mesh(kind: str, size: np.ndarray, rng: np.random.Generator, clear_coat_paint: bool = False) -> Mesh:
    """The mesh of a vehicle of body type ``kind`` in a (dx, dy, dz) box: the lofted body for cars, vans and
    buses, a cab and cargo box for trucks; licence plates (retro-reflective) and wing mirrors. clear_coat_paint: the
    paint is under a clear coat (materials.clear_coat: it glints head-on and reads dark obliquely) and the windows
    are tinted (materials.TINTED_GLASS); the same random draws either way, so the shapes are the same."""
    length, width, height = (float(s) for s in size)
    paint, gloss, glass = _paint(rng), 0.0, GLASS_SHADE
    if clear_coat_paint:
        (paint, gloss), glass = clear_coat(paint), TINTED_GLASS
    z0 = -height / 2
    if kind == "truck":
        b, geo = _truck(size, paint, rng, gloss, glass)
    else:
        b, geo = lofted_body(kind, size, paint, rng, gloss, glass)
    plate_z = geo["clearance"] + 0.22
    for end in (-1, 1):  # licence plates on both ends, 5 mm proud of the body's end caps (still in the label box)
        x = end * (length / 2 - MESH_MARGIN + 0.005)
        b.quad([(x, -0.26, plate_z - 0.06), (x, 0.26, plate_z - 0.06), (x, 0.26, plate_z + 0.06),
                (x, -0.26, plate_z + 0.06)][:: end], 0.9)
    body = _fit_inside(b.build(), size)
    if kind in ("bus",):
        return body
    mirrors = MeshBuilder()
    mx = geo["windscreen_x"] - 0.05
    mz = min(geo["belt"] + 0.1, height / 2 - 0.1)
    span = MIRROR_REACH - 0.03  # from inside the body to 5 cm short of the reach (room for range noise)
    for side in (-1, 1):
        mirrors.box((mx, side * (geo["half_width"] - 0.02 + span / 2), mz), (0.08, span, 0.12), paint, gloss=gloss)
    out = MeshBuilder().add_mesh(body).add_mesh(mirrors.build()).build()
    out.vertices[:, 2] = np.maximum(out.vertices[:, 2], z0 + GROUND_GAP)
    return out


def _truck(size: np.ndarray, paint: float, rng: np.random.Generator, gloss: float = 0.0,
           glass: float = GLASS_SHADE) -> tuple[MeshBuilder, dict]:
    """A box truck: cab (its paint's mirror-like share ``gloss``; a windscreen of reflectivity ``glass``) and a cargo
    box on a high chassis, three axles."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    L, W, top = length - 2 * m, width - 2 * m, height / 2 - m
    z0 = -height / 2
    b = MeshBuilder()
    radius, tyre = 0.5 * rng.uniform(0.92, 1.08), 0.3
    cab_len = min(2.3, 0.3 * L)
    clearance = z0 + 0.55
    cab_top = z0 + 0.92 * height
    b.box((L / 2 - cab_len / 2, 0, (clearance + cab_top) / 2), (cab_len, W, cab_top - clearance), paint, gloss=gloss)
    b.box((L / 2 - 0.02, 0, cab_top - 0.55), (0.05, W - 0.3, 0.7), glass, returns=GLASS_RETURNS)
    cargo_len = L - cab_len - 0.25
    b.box((-L / 2 + cargo_len / 2, 0, (clearance + top) / 2), (cargo_len, W, top - clearance),
          float(rng.uniform(0.2, 0.45)))
    for ax in (L / 2 - 1.3, -L / 2 + 1.5, -L / 2 + 2.9):
        for side in (-1, 1):
            b.cylinder((ax, side * (W / 2 - tyre / 2), z0 + radius), radius, tyre, 0.04, axis="y", segments=10)
    return b, {"belt": cab_top - 0.9, "windscreen_x": L / 2 - 0.3, "half_width": W / 2, "clearance": clearance}


def pedestrian_mesh(size: np.ndarray, rng: np.random.Generator, walking: bool) -> Mesh:
    """Legs, torso, arms and head inside a (dx, dy, dz) box; a walking stride spreads the legs along x and
    swings the arms; some people carry a bag at the side or on the back."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    z0 = -height / 2
    cloth_top, cloth_low, skin = rng.uniform(0.1, 0.55), rng.uniform(0.05, 0.45), rng.uniform(0.25, 0.4)
    b = MeshBuilder()
    hip = z0 + 0.48 * height
    shoulder = z0 + 0.81 * height
    head_r = min(0.11 * height / 1.75, (height / 2 - m - shoulder) / 2.2)
    leg_w = min(0.17 * height / 1.75, (width - 2 * m) / 3.0)
    stride = min(0.3, max(0.0, (length - 2 * m - leg_w) / 2)) if walking else rng.uniform(0.0, 0.05)
    for side, fwd in ((-1, 1), (1, -1)):
        b.box((fwd * stride * 0.5, side * leg_w * 0.75, (z0 + hip) / 2), (leg_w, leg_w, hip - z0), cloth_low)
        b.box((fwd * stride * 0.5 + 0.05, side * leg_w * 0.75, z0 + 0.04), (0.26, leg_w, 0.08), 0.1)  # shoe
    # Clothed bodies fill most of a labelled box: real KITTI pedestrians return 1.5x the points of bare limbs.
    torso_w = min(0.5 * height / 1.75, width - 2 * m - 0.16)
    depth = min(0.34 * height / 1.75, 0.5 * length)
    b.ellipsoid((0, 0, (hip + shoulder) / 2), (depth / 2, torso_w / 2, (shoulder - hip) / 2 + 0.04), cloth_top,
                subdivisions=1)
    arm = 0.1 * height / 1.75
    arm_y = torso_w / 2 + arm / 2 + 0.005
    arm_len = shoulder - hip + 0.05
    swing = stride * 0.7
    for side, fwd in ((-1, -1), (1, 1)):
        b.box((fwd * swing * 0.5, side * arm_y, shoulder - arm_len / 2), (arm, arm, arm_len), cloth_top)
    b.ellipsoid((0, 0, shoulder + 0.04 + head_r), (head_r * 0.9, head_r * 0.8, head_r), skin, subdivisions=0)
    bag = rng.random()
    if bag < 0.15:  # backpack
        b.box((-depth / 2 - 0.08, 0, (hip + shoulder) / 2 + 0.08), (0.16, 0.3, 0.4), rng.uniform(0.05, 0.4))
    elif bag < 0.3:  # a bag hanging at one side
        side = 1 if rng.random() < 0.5 else -1
        b.box((0, side * (arm_y + 0.09), hip - 0.05), (0.3, 0.1, 0.3), rng.uniform(0.05, 0.5))
    return _fit_inside(b.build(), size)


def cyclist_mesh(size: np.ndarray, rng: np.random.Generator, riding: bool = True, real: bool = False) -> Mesh:
    """A bicycle (two wheels, frame, handlebar) with its rider leaning forward, or (``riding`` False) with a
    person standing beside it, inside a (dx, dy, dz) box. ``real``: the bicycle is built as a real one is
    (:func:`bicycle_builder`) and its rider sits on its saddle."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    z0 = -height / 2
    L = length - 2 * m
    saddle_height = RIDER_SADDLE_SHARE * height
    b = bicycle_builder(L, z0, rng, y=0.0 if riding else -(width / 2 - m - 0.3), real=real,
                        saddle_height=saddle_height)
    cloth, skin = rng.uniform(0.1, 0.55), 0.3
    r = min(0.34, L / 5.0)
    wx = L / 2 - r
    frame_z = z0 + r + 0.25
    if riding:
        bar_w = min(0.58, width - 2 * m)
        if real:
            bracket, saddle = real_seat(wx, r, z0, saddle_height)
            hip_x, hip, leg_x = float(saddle[0]), float(saddle[1]) + SIT_HEIGHT, float(bracket[0] + saddle[0]) / 2
        else:
            hip_x, hip, leg_x = -wx * 0.1, frame_z + 0.2, -wx * 0.2
        shoulder = min(z0 + 0.82 * height, height / 2 - m - 0.25)
        torso_len = shoulder - hip
        b.tapered_box((hip_x, 0, (hip + shoulder) / 2), (0.28, min(0.4, width - 2 * m - 0.05), torso_len),
                      top_scale=(1.0, 1.0), top_shift_x=0.3 * torso_len, reflectivity=cloth)
        for side in (-1, 1):
            b.box((leg_x, side * 0.1, (z0 + r + hip) / 2), (0.12, 0.11, hip - z0 - r), cloth)
            b.box((wx * 0.45, side * bar_w * 0.4, (shoulder + frame_z + 0.22) / 2), (0.5 * wx, 0.07, 0.07), cloth)
        head_r = 0.11
        head_x = hip_x + 0.3 * torso_len + wx * 0.05 if real else 0.3 * torso_len - wx * 0.05
        b.ellipsoid((head_x, 0, shoulder + 0.04 + head_r), (head_r, head_r * 0.85, head_r), skin, subdivisions=0)
        return _fit_inside(b.build(), size)
    person = pedestrian_mesh(np.array([0.5, 0.5, height]), rng, walking=False)
    shift = np.array([0.1 * L, width / 2 - m - 0.27, 0.0], np.float32)
    b.add_mesh(person.with_vertices(person.vertices + shift))
    return _fit_inside(b.build(), size)


#: A pedalling rider's measures (metres; adult anthropometry and bicycle geometry, approximate): crank length, the
#: pedals' and knees' distance either side of the frame (a crankset's Q-factor is about 0.15 m; knees track a little
#: wider), and the shoulders' breadth (biacromial breadth 0.36-0.41 m, with clothes a little more).
CRANK = 0.17
PEDAL_Y, KNEE_Y = 0.1, 0.14
SHOULDERS = (0.38, 0.47)


def _limb(b: MeshBuilder, start, end, thick: float, reflectivity: float) -> None:
    """A limb of square section ``thick`` from ``start`` to ``end`` (x, y, z), as a chain of small boxes along it
    (MeshBuilder's boxes are upright; a chain of short ones follows any slope within about half their section)."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    pieces = max(2, int(np.ceil(np.linalg.norm(end - start) / (0.5 * thick))))
    step = (end - start) / pieces
    for k in range(pieces):
        b.box(start + (k + 0.5) * step, np.abs(step) + thick, reflectivity)


def _knee(hip: np.ndarray, foot: np.ndarray, segment: float) -> np.ndarray:
    """Where a knee sits (x, z) between ``hip`` and ``foot`` (x, z) with thigh and shin ``segment`` long, bent
    forward (+x), as a rider's is."""
    d = foot - hip
    dist = min(float(np.linalg.norm(d)), 2 * segment * 0.999)
    along = d / max(float(np.linalg.norm(d)), 1e-9)
    normal = np.array([-along[1], along[0]])
    if normal[0] < 0:
        normal = -normal
    return hip + along * dist / 2 + normal * np.sqrt(segment ** 2 - (dist / 2) ** 2)


def pedalling_rider_mesh(size: np.ndarray, rng: np.random.Generator, real: bool = False) -> Mesh:
    """A bicycle and its rider as a LiDAR sees a real one, inside a (dx, dy, dz) box: legs bent at the knee on
    the pedals at a random crank angle, knees a little apart; a torso leaning forward that widens to the shoulders;
    arms bent at the elbow out to the grips; a helmet on most heads; and what riders carry (a backpack, panniers
    either side of the rear wheel or a front basket). :func:`cyclist_mesh`'s rider, by contrast, sits upright on
    straight legs close together (``sparsekd-sim --pedalling-riders``). ``real``: the bicycle is built as a real one
    is (:func:`bicycle_builder`), the rider sits on its saddle and leans as city riders do (CITY_LEAN)."""
    length, width, height = (float(s) for s in size)
    m = MESH_MARGIN
    z0 = -height / 2
    L = length - 2 * m
    saddle_height = RIDER_SADDLE_SHARE * height
    b = bicycle_builder(L, z0, rng, real=real, saddle_height=saddle_height)
    cloth_top, cloth_low, skin = rng.uniform(0.1, 0.55), rng.uniform(0.05, 0.45), rng.uniform(0.25, 0.4)
    r = min(0.34, L / 5.0)
    wx = L / 2 - r
    frame_z = z0 + r + 0.25
    if real:
        bracket, saddle = real_seat(wx, r, z0, saddle_height)
        hip = saddle + np.array([0.0, SIT_HEIGHT])
    else:
        bracket = np.array([-0.18 * wx, z0 + r - 0.05])
        hip = np.array([-0.35 * wx, frame_z + 0.2])
    segment = 0.53 * (float(np.linalg.norm(bracket - hip)) + CRANK)
    phase = rng.uniform(0.0, 2 * np.pi)
    for side, angle in ((-1, phase), (1, phase + np.pi)):
        foot = bracket + CRANK * np.array([np.cos(angle), np.sin(angle)])
        knee = _knee(hip, foot, segment)
        _limb(b, (hip[0], side * PEDAL_Y, hip[1]), (knee[0], side * KNEE_Y, knee[1]), 0.15, cloth_low)
        _limb(b, (knee[0], side * KNEE_Y, knee[1]), (foot[0], side * PEDAL_Y, foot[1]), 0.11, cloth_low)
        b.box((foot[0] + 0.04, side * PEDAL_Y, foot[1] + 0.03), (0.26, 0.09, 0.08), 0.1)  # shoe
    shoulder_z = min(z0 + 0.8 * height, height / 2 - m - 0.27)
    lean = (shoulder_z - hip[1]) * np.tan(np.radians(rng.uniform(*(CITY_LEAN if real else (15.0, 45.0)))))
    shoulders = rng.uniform(*SHOULDERS)
    hips = 0.34
    b.tapered_box((hip[0], 0, (hip[1] + shoulder_z) / 2), (0.26, hips, shoulder_z - hip[1]),
                  top_scale=(1.0, shoulders / hips), top_shift_x=lean, reflectivity=cloth_top)
    shoulder_x = hip[0] + lean
    grip = np.array([wx * 0.8, 0.26, frame_z + 0.22])  # bicycle_builder's handlebar
    for side in (-1, 1):
        top = np.array([shoulder_x, side * (shoulders / 2 - 0.05), shoulder_z - 0.05])
        end = grip * np.array([1, side, 1])
        elbow = (top + end) / 2 + np.array([0.0, side * 0.06, -0.05])
        _limb(b, top, elbow, 0.09, cloth_top)
        _limb(b, elbow, end, 0.08, cloth_top)
    head = 0.11
    helmet = rng.random() < 0.6
    radii = (head + 0.03, head, head) if helmet else (head, head * 0.85, head)
    b.ellipsoid((shoulder_x + 0.08, 0, shoulder_z + 0.04 + head), radii, rng.uniform(0.1, 0.6) if helmet else skin,
                subdivisions=0)
    carried = rng.random()
    if carried < 0.25:  # backpack
        b.box((hip[0] + 0.5 * lean - 0.2, 0, (hip[1] + shoulder_z) / 2 + 0.05), (0.16, 0.3, 0.38),
              rng.uniform(0.05, 0.4))
    elif carried < 0.4:  # panniers either side of the rear wheel
        for side in (-1, 1):
            b.box((-wx + 0.05, side * 0.19, z0 + r + 0.08), (0.34, 0.12, 0.32), rng.uniform(0.05, 0.4))
    elif carried < 0.5:  # a basket over the front wheel
        b.box((wx * 0.95, 0, frame_z + 0.12), (0.3, 0.35, 0.25), rng.uniform(0.1, 0.4))
    return _fit_inside(b.build(), size)


#: An open wheel's parts (metres; common bicycle wheels, approximate): the tyre's section (road tyres 25-32 mm, city
#: and mountain tyres 40-60 mm), the rim's inside the tyre, and the hub's radius and width.
TYRE_SECTION, RIM_SECTION = 0.045, 0.025
HUB_RADIUS, HUB_WIDTH = 0.035, 0.1

#: A real bicycle's geometry (metres and degrees; city and trekking frames, approximate): the bottom bracket sits
#: BRACKET_SHARE of the wheelbase ahead of the rear axle (chainstays of 0.43-0.46 m on a 1.05-1.1 m wheelbase) and
#: BRACKET_DROP below the axles; the seat tube rises at SEAT_TUBE_ANGLE to the ground (72-74 degrees), so the saddle
#: sits behind the bracket; the saddle's top is SADDLE_HEIGHT above the bracket on a bicycle nobody rides (about 0.883
#: of an adult's 0.75-0.85 m inseam) and RIDER_SADDLE_SHARE of a cyclist's box height under its rider (the inseam is
#: about 0.45 of a person's height); a rider's hips sit SIT_HEIGHT above it, and city riders hold their torso
#: CITY_LEAN degrees from upright.
BRACKET_SHARE, BRACKET_DROP = 0.42, 0.07
SEAT_TUBE_ANGLE = 73.0
SADDLE_HEIGHT, RIDER_SADDLE_SHARE = 0.70, 0.40
SIT_HEIGHT = 0.06
CITY_LEAN = (5.0, 30.0)


def real_seat(wx: float, r: float, z0: float, saddle_height: float) -> tuple[np.ndarray, np.ndarray]:
    """The bottom bracket and the saddle's top (x, z) of a real bicycle whose axles are ``wx`` either side of its
    centre, with wheels ``r`` in radius, standing on z = ``z0``, its saddle ``saddle_height`` above the bracket."""
    bracket = np.array([-wx + BRACKET_SHARE * 2 * wx, z0 + r - BRACKET_DROP])
    saddle = bracket + saddle_height * np.array([-1.0 / np.tan(np.radians(SEAT_TUBE_ANGLE)), 1.0])
    return bracket, saddle


def _wheel(b: MeshBuilder, centre, r: float, metal: float, tyre: float, open_wheel: bool) -> None:
    """One wheel of radius ``r`` turning about y at ``centre``: a solid disc (the version-4 streets), or
    (``open_wheel``) what a LiDAR sees of a real one: the tyre, the rim inside it and the hub, with nothing between
    them. A real wheel's 32-36 spokes are 2 mm wires that a pulse a few centimetres across passes, where a disc
    returns the whole wheel."""
    if not open_wheel:
        b.cylinder(centre, r, 0.04, tyre, axis="y", segments=10)
        return
    b.ring(centre, r - TYRE_SECTION / 2, TYRE_SECTION / 2, tyre, axis="y")
    b.ring(centre, r - TYRE_SECTION - RIM_SECTION / 2, RIM_SECTION / 2, metal, axis="y")
    b.cylinder(centre, HUB_RADIUS, HUB_WIDTH, metal, axis="y", segments=8)


def bicycle_builder(length: float, z0: float, rng: np.random.Generator, y: float = 0.0, real: bool = False,
                    saddle_height: float = SADDLE_HEIGHT) -> MeshBuilder:
    """A bicycle of ``length`` along x standing on z = z0 at lateral offset ``y``: two wheels, frame, bar.

    The version-4 streets' bicycle has solid disc wheels and a low saddle over the middle of its frame; ``real``
    builds it as a LiDAR sees a real one: open wheels (:func:`_wheel`), and a seat tube rising back from the bottom
    bracket to a saddle ``saddle_height`` above it (:func:`real_seat`), over the rear wheel's front half. Either way
    it draws the same numbers from ``rng``."""
    r = min(0.34, length / 5.0)
    metal, tyre = rng.uniform(0.2, 0.5), 0.05
    b = MeshBuilder()
    wx = length / 2 - r
    for x in (-wx, wx):
        _wheel(b, (x, y, z0 + r), r, metal, tyre, open_wheel=real)
    frame_z = z0 + r + 0.25
    b.box((0, y, frame_z), (2 * wx * 0.75, 0.04, 0.05), metal)  # top tube
    if real:
        bracket, saddle = real_seat(wx, r, z0, saddle_height)
        _limb(b, (bracket[0], y, bracket[1]), (saddle[0], y, saddle[1] - 0.05), 0.04, metal)  # seat tube and post
        seat = (saddle[0], y, saddle[1] - 0.025)
    else:
        b.box((-wx * 0.35, y, (z0 + r + frame_z) / 2 + 0.05), (0.05, 0.04, frame_z - z0 - r + 0.1), metal)  # seat tube
        seat = (-wx * 0.4, y, frame_z + 0.12)
    b.box((wx * 0.8, y, frame_z + 0.22), (0.04, 0.56, 0.04), metal)  # handlebar
    b.box(seat, (0.22, 0.1, 0.05), 0.08)  # saddle
    return b


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
    return mesh.with_vertices(v)


def pram_mesh(size: np.ndarray, rng: np.random.Generator) -> Mesh:
    """A pram or shopping trolley: a basket on four small wheels with a handle at the back."""
    length, width, height = (float(s) for s in size)
    z0 = -height / 2
    b = MeshBuilder()
    colour = rng.uniform(0.05, 0.5)
    b.box((0.05 * length, 0, z0 + 0.62 * height), (0.75 * length, width * 0.9, 0.45 * height), colour)
    b.box((-0.42 * length, 0, z0 + 0.9 * height), (0.04, width * 0.8, 0.04), 0.3)  # handle
    for x in (-0.3 * length, 0.35 * length):
        for y in (-0.4 * width, 0.4 * width):
            b.cylinder((x, y, z0 + 0.09), 0.09, 0.03, 0.05, axis="y", segments=8)
    return _fit_inside(b.build(), size)


def actor_mesh(kind: str, size: np.ndarray, rng: np.random.Generator, moving: bool = True,
               real_bicycles: bool = False, clear_coat_paint: bool = False) -> Mesh:
    """The local-frame mesh of a road user of ``kind`` with box extents ``size``.

    moving: pedestrians walk (else stand); cyclists ride (else stand beside the bicycle). real_bicycles: bicycles,
    ridden or not, are built as real ones are (:func:`bicycle_builder`'s ``real``). clear_coat_paint: vehicles'
    paint is under a clear coat (:func:`vehicle_mesh`).
    """
    if kind in VEHICLE_KINDS:
        return vehicle_mesh(kind, size, rng, clear_coat_paint)
    if kind == "pedestrian":
        return pedestrian_mesh(size, rng, walking=moving)
    if kind == "cyclist":
        return cyclist_mesh(size, rng, riding=moving, real=real_bicycles)
    if kind == "bicycle":
        bike = bicycle_builder(float(size[0]) - 2 * MESH_MARGIN, -float(size[2]) / 2, rng, real=real_bicycles)
        return _fit_inside(bike.build(), size)
    if kind == "pram":
        return pram_mesh(size, rng)
    raise ValueError(f"unknown actor kind {kind!r}; expected one of {KINDS + UNLABELLED_KINDS}")


def with_glass_returns(mesh: Mesh, returns: float) -> Mesh:
    """The mesh with its glass (the triangles returning GLASS_RETURNS of the pulses) returning ``returns``.

    A real car's windows hold more than glass for a LiDAR: seats, headrests and the dashboard behind them send
    pulses back through it, so the glasshouse of a real car returns more than bare glass does (the real KITTI
    sweeps' car returns lie 1.37 m in front of the box centre, version-4 simulated cars' 1.52 m:
    ``sparsekd-gap``'s return depth)."""
    glass = mesh.returns == np.float32(GLASS_RETURNS)
    new = mesh.returns.copy()
    new[glass] = returns
    return replace(mesh, returns=new)


#: Kinds whose meshes are people (with a cyclist's bicycle): what ``people_brightness`` scales.
PEOPLE_KINDS = ("pedestrian", "cyclist")


def with_brightness(mesh: Mesh, gain: float) -> Mesh:
    """The mesh with every triangle's reflectivity times ``gain`` (clipped to 1); shape and returns unchanged.

    Clothes and skin are brighter to a 905 nm LiDAR than to the eye (dyes that make a cloth dark in daylight
    mostly pass the near infrared, and skin reflects about half of it), and the version-4 people were shaded
    on the visible scale: their returns read a median 0.27 on simulated HDL-64E frames where the real KITTI
    sweeps' pedestrians read 0.35 (``sparsekd-gap``'s return intensity: the nine sweeps of ``../shared``, objects
    5-40 m away)."""
    return replace(mesh, reflectivity=np.minimum(mesh.reflectivity * np.float32(gain), 1.0).astype(np.float32))


class MeshLibrary:
    """A few mesh variants per kind and pose (moving or not), built once per scene.

    Building a mesh part by part costs a few milliseconds in Python; a street frame holds 50-150 road users.
    Each user instead takes a variant (its shape details and paint) and stretches it to its own box, which
    keeps shapes varied while a frame's meshes cost one multiply each. All variants are built up front, in a
    fixed order, so a scene's meshes depend only on its seed.
    """

    #: Unlabelled kinds' base boxes (their meshes are stretched to the placed box).
    UNLABELLED_BASE = {"bicycle": np.array([1.75, 0.5, 1.05]), "pram": np.array([0.8, 0.55, 1.0])}

    def __init__(self, rng: np.random.Generator, sizes, variants: int = 8, vehicle_glass: float | None = None,
                 people_brightness: float | None = None, riders_rng: np.random.Generator | None = None,
                 real_bicycles: bool = False, clear_coat_paint: bool = False):
        """sizes: callable kind -> (3,) box extents (a sizes.SizeSampler) for the labelled kinds.
        vehicle_glass: the share of pulses vehicles' windows send back (None: GLASS_RETURNS, as facades'
        windows); set after the meshes are built, so it draws no random number and changes nothing else.
        people_brightness: pedestrians' and cyclists' reflectivity times this (``with_brightness``; None: as
        built); applied after the meshes are built too.
        riders_rng: when given, riding cyclists are :func:`pedalling_rider_mesh` variants drawn from it, built after
        the rest in the same boxes, so every other mesh is the same as without it.
        real_bicycles: cyclists' and parked bicycles' bicycles are built as real ones are, and riders sit on their
        saddles (:func:`bicycle_builder`'s ``real``); draws no random number of its own, so every other mesh is the
        same as without it.
        clear_coat_paint: vehicles' paint is under a clear coat (:func:`vehicle_mesh`); the same draws, shapes and
        placement as without it."""
        self._variants = variants
        self._vehicle_glass, self._people_brightness = vehicle_glass, people_brightness
        self._cache: dict[tuple[str, bool], list[tuple[Mesh, np.ndarray]]] = {}
        for kind in KINDS + UNLABELLED_KINDS:
            for moving in ((True, False) if kind in ("pedestrian", "cyclist") else (True,)):
                built = []
                for _ in range(variants):
                    base = self.UNLABELLED_BASE[kind] if kind in UNLABELLED_KINDS else sizes(kind)
                    if kind == "cyclist" and not moving:
                        base = base + np.array([0.0, BESIDE_BIKE_WIDTH, 0.0])
                    mesh = actor_mesh(kind, base, rng, moving=moving, real_bicycles=real_bicycles,
                                      clear_coat_paint=clear_coat_paint)
                    built.append((self._finish(kind, mesh), base))
                self._cache[(kind, moving)] = built
        if riders_rng is not None:
            self._cache[("cyclist", True)] = [
                (self._finish("cyclist", pedalling_rider_mesh(base, riders_rng, real=real_bicycles)), base)
                for _, base in self._cache[("cyclist", True)]]

    def _finish(self, kind: str, mesh: Mesh) -> Mesh:
        """A built mesh with the library's vehicle glass and people's brightness applied."""
        if self._vehicle_glass is not None and kind in VEHICLE_KINDS:
            mesh = with_glass_returns(mesh, self._vehicle_glass)
        if self._people_brightness is not None and kind in PEOPLE_KINDS:
            mesh = with_brightness(mesh, self._people_brightness)
        return mesh

    def mesh(self, kind: str, size: np.ndarray, moving: bool, rng: np.random.Generator) -> Mesh:
        """A local-frame mesh that fills a box of extents ``size`` (3,); ``rng`` picks the variant."""
        key = (kind, bool(moving) if kind in ("pedestrian", "cyclist") else True)
        mesh, base = self._cache[key][int(rng.integers(self._variants))]
        scale = (np.asarray(size, np.float64) / base).astype(np.float32)
        return mesh.with_vertices(mesh.vertices * scale)
