"""A simulated scene: one static street, road users, a LiDAR on the ego vehicle -> labelled frames.

Two modes share everything but time:
- snapshots (:class:`SnapshotScene`): every frame puts the ego somewhere new along the street and
  draws a fresh set of road users; the static world is built once per scene and reused.
- a drive (:class:`sequence.DriveScene`): the ego and the road users move at 10 Hz.

Labels: a road user is labelled when at least one LiDAR return off its mesh lies inside its box; users
with none are left out (not written as DontCare), and so are the things no dataset labels (parked
bicycles, prams): their returns are world points. ``num_points`` is the true number of returns off the
user's mesh inside its box (the ray's primitive id tells which mesh it hit; a vehicle's wing mirrors are
off its mesh but outside its box, as in KITTI's labels); the box may also hold a few ground returns near
wheels and feet, as real boxes do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sparsekd_core.data.sim.actors import UNLABELLED_KINDS, Actor, MeshLibrary, reach_boxes
from sparsekd_core.data.sim.ego_body import EgoBody
from sparsekd_core.data.sim.meshes import pose_meshes
from sparsekd_core.data.sim.placement import Densities, EgoState, on_road_furniture, populate
from sparsekd_core.data.sim.raycast import RayCasterChoice
from sparsekd_core.data.sim.sensor import Lidar, Mounting, SensorPreset
from sparsekd_core.data.sim.sizes import SizeSampler, get_label_style
from sparsekd_core.data.sim.world import StaticWorld, StreetLayout, build_world
from sparsekd_core.geometry.boxes import limit_period

#: How far beyond the sensor's range road users are still simulated (metres).
RANGE_MARGIN = 10.0


def snap_to_label_grid(boxes: np.ndarray) -> np.ndarray:
    """Round (M, 7) output-frame boxes to what a KITTI label line holds exactly.

    KITTI labels carry 2 decimals: with the simulator's axis-aligned calibration (1 cm offsets, see
    writer.py) the camera-frame location is exact when x, y and the box's bottom height are whole
    centimetres, and rotation_y (= -yaw - pi/2) is exact at whole hundredths of a radian. Boxes
    are snapped before the ray casting (moves of at most 5 mm and 0.005 rad), so every written
    format carries exactly the simulated truth.
    """
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 7).copy()
    out[:, 3:6] = np.round(out[:, 3:6], 2)
    out[:, 0:2] = np.round(out[:, 0:2], 2)
    bottom = np.round(out[:, 2] - out[:, 5] / 2, 2)
    out[:, 2] = bottom + out[:, 5] / 2
    rotation_y = np.round(limit_period(-out[:, 6] - np.pi / 2), 2)
    out[:, 6] = limit_period(-rotation_y - np.pi / 2)
    return out


def world_to_frame(boxes: np.ndarray, origin: np.ndarray, yaw: float) -> np.ndarray:
    """(M, 7) world boxes -> the frame at ``origin`` (3,) turned by ``yaw`` about z."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 7).copy()
    c, s = np.cos(yaw), np.sin(yaw)
    rel = out[:, :3] - origin
    out[:, 0] = c * rel[:, 0] + s * rel[:, 1]
    out[:, 1] = -s * rel[:, 0] + c * rel[:, 1]
    out[:, 2] = rel[:, 2]
    out[:, 6] = limit_period(out[:, 6] - yaw)
    return out


def frame_to_world(boxes: np.ndarray, origin: np.ndarray, yaw: float) -> np.ndarray:
    """Inverse of :func:`world_to_frame`."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 7).copy()
    c, s = np.cos(yaw), np.sin(yaw)
    x, y = out[:, 0].copy(), out[:, 1].copy()
    out[:, 0] = c * x - s * y + origin[0]
    out[:, 1] = s * x + c * y + origin[1]
    out[:, 2] = out[:, 2] + origin[2]
    out[:, 6] = limit_period(out[:, 6] + yaw)
    return out


@dataclass
class SimFrame:
    """One labelled LiDAR frame in the preset's output frame (see sensor.py).

    points: (N, 5) float32 x y z intensity elongation; ring: (N,) uint8 beam index.
    point_label: (N,) int32 index into the labels of the object a point came from, -1 for the world.
    boxes: (M, 7) float64 labelled boxes; kinds: (M,) str, a vehicle body type ('hatchback', 'sedan', 'suv', 'pickup',
    'van', 'truck', 'bus'), 'pedestrian' or 'cyclist' (sizes.KITTI_CLASSES maps them to KITTI's classes);
    track_ids: (M,) int64, stable through a drive; num_points: (M,) int64 returns off each object;
    occlusion: (M,) float64 fraction of the object's rays blocked by something in front of it;
    velocity: (M, 2) float64 m/s in the output frame.
    pose: (4, 4) float64 output frame -> world. timestamp: seconds since the start of the scene.
    """

    scene_index: int
    frame_index: int
    timestamp: float
    points: np.ndarray
    ring: np.ndarray
    point_label: np.ndarray
    boxes: np.ndarray
    kinds: np.ndarray
    track_ids: np.ndarray
    num_points: np.ndarray
    occlusion: np.ndarray
    velocity: np.ndarray
    pose: np.ndarray
    preset: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)


def _box_local_y(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) lateral coordinate of each point in its own box's frame (points (N, >=2), boxes (N, 7))."""
    dx, dy = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    return -np.sin(boxes[:, 6]) * dx + np.cos(boxes[:, 6]) * dy


#: Above this factor every person would read as bright as a retro-reflective sign.
MAX_PEOPLE_BRIGHTNESS = 3.0


@dataclass(frozen=True)
class SimOptions:
    """What a generated dataset looks like beyond its sensor.

    label_style: whose box sizes the road users have (sizes.LABEL_STYLES: kitti, waymo, nuscenes).
    random_mount: share of scenes whose sensor sits at a random height (its preset's ``mount_heights``: 0.5-2.3 m,
        1.5-2.3 m for the roof sensors whose top beam looks barely above the horizon) and tilt (pitch sd 1.2 deg,
        roll sd 0.8 deg) instead of the preset's nominal mounting; points are still written in the nominal
        frame (see sensor.py), so a model learns to expect its own frame whatever the sensor's mounting.
    frame_height: height above the road of the frame points and boxes are written in (None: the preset's
        nominal frame: 1.73 m for hdl64, the sensor frame; 0 for waymo_top, the vehicle frame).
    raycaster: which backend casts the rays, and on which device (raycast.py); the frames are the same with
        either, but for the rare ray that grazes an edge.
    ego_body: put the recording vehicle's own body under a roof-mounted sensor (ego_body.py), as real sweeps see it.
    narrow_streets: share of scenes on a narrow street (world.StreetLayout.narrowed: one lane each way, narrow
        sidewalks, buildings near them), as KITTI's town streets are; 0 draws today's mix of wide streets only.
    vehicle_glass: the share of pulses road vehicles' windows send back (actors.with_glass_returns: what lies
        behind real car glass returns too); None keeps meshes.GLASS_RETURNS, the version-4 streets.
    street_clutter: share of scenes whose sidewalks carry dense person-sized clutter (clutter.py: short sign posts,
        meters, cabinets, containers, pillars, hydrants, young trees, shrubs, bicycle stands), drawn from a random
        stream of its own; 0 draws the version-4 streets.
    people_brightness: pedestrians' and cyclists' reflectivity times this factor (actors.with_brightness: people
        read brighter to a LiDAR than the visible-light shades of the version-4 streets); None draws those streets.
    vehicle_clear_coat: road vehicles' paint is under a clear coat (materials.clear_coat: it glints where a panel
        faces the sensor and reads 0 on roofs, bonnets and oblique flanks, as real KITTI cars do); the same random
        draws, shapes and placement as without it; False draws the version-4 paints, which read alike all over a car.
    close_people: share of scenes whose people keep close company (placement.populate's ``close``: standing
        people against street furniture, at bicycle racks, in tight groups), drawn from random streams of its own;
        0 draws the version-4 streets.
    road_people: share of snapshot scenes where people also walk on the road itself, along it or at any heading,
        alone or abreast (placement.populate's ``road``: pedestrian zones, shared streets, people going to parked
        cars), drawn from random streams of their own; 0 draws the version-4 streets. Without them a person on
        the carriageway walking along it is always a cyclist in these streets.
    road_furniture: share of snapshot scenes whose carriageway carries road furniture (road_furniture.py: traffic
        islands with sign posts, delineators, cones, warning boards, bins out for collection, kerb extensions,
        bicycles at the kerb), drawn from a random stream of its own; 0 draws the version-4 streets. Without it
        nothing but road users stands on these roads.
    walking_pairs: share of snapshot scenes whose sidewalk walkers often walk two abreast (placement.populate's
        ``pairs``: placement.WALKING_PAIR_SHARE of them with a companion), drawn from random streams of their own;
        0 draws the version-4 streets, where walkers go single file and people stand close only when standing.
    turning_walkers: share of snapshot scenes where half the sidewalk walkers walk at any heading (placement.populate's
        ``turning``), drawn from random streams of their own; 0 draws the version-4 streets, whose walkers all walk
        along their sidewalk.
    lane_cyclists: share of snapshot scenes where each side of the street without a bike lane has cyclists riding
        with the traffic in its outermost travel lane (placement.populate's ``lane_cyclists``), drawn from random
        streams of their own; 0 draws the version-4 streets, where such a side has only the few cyclists riding at
        any heading.
    edge_returns: in every frame, the share of the rays on a silhouette's edge whose return lies between the
        object and what is behind it (edge_returns.py: mixed pixels, which real sensors give and ideal rays do
        not); 0 draws the version-4 streets.
    pedalling_riders: share of scenes whose riding cyclists pedal with bent legs, knees apart, shoulders and bent
        arms, most in helmets, some carrying bags (actors.pedalling_rider_mesh), drawn from a random stream of its
        own; 0 draws the version-4 streets, whose riders sit upright on straight legs close together.
    real_bicycles: share of scenes whose bicycles, ridden or parked, are built as real ones are
        (actors.bicycle_builder's ``real``: open wheels, tyre, rim and hub with nothing between; the saddle behind the
        bottom bracket on a real seat tube, at a real saddle height, with its rider sitting on it), drawn from a
        random stream of its own; 0 draws the version-4 streets, whose wheels are solid discs and whose riders sit
        over the middle of the frame. The bicycles of the street's clutter and road furniture, built with the static
        world, stay as they were.
    open_squares: share of scenes whose street opens onto squares (world.StreetLayout.with_squares: open paved ground
        15-35 m deep where the building line steps back, with trees, bollards, benches, bins and lamps on it), and,
        in snapshot scenes, pedestrians and cyclists cross them at any heading (placement.populate's ``squares``),
        drawn from random streams of their own; 0 draws the version-4 streets, which run between buildings from end
        to end with nobody off the sidewalks but at crossings.
    """

    label_style: str = "kitti"
    random_mount: float = 0.0
    frame_height: float | None = None
    raycaster: RayCasterChoice = RayCasterChoice()
    ego_body: bool = True
    narrow_streets: float = 0.0
    vehicle_glass: float | None = None
    street_clutter: float = 0.0
    people_brightness: float | None = None
    vehicle_clear_coat: bool = False
    close_people: float = 0.0
    road_people: float = 0.0
    road_furniture: float = 0.0
    walking_pairs: float = 0.0
    turning_walkers: float = 0.0
    lane_cyclists: float = 0.0
    edge_returns: float = 0.0
    pedalling_riders: float = 0.0
    real_bicycles: float = 0.0
    open_squares: float = 0.0

    def __post_init__(self):
        get_label_style(self.label_style)
        if self.people_brightness is not None and not 0.0 < self.people_brightness <= MAX_PEOPLE_BRIGHTNESS:
            raise ValueError(f"people_brightness must be a factor in (0, {MAX_PEOPLE_BRIGHTNESS}], got "
                             f"{self.people_brightness} (1.35 makes simulated people read as bright as real KITTI "
                             "pedestrians)")
        for name in ("random_mount", "narrow_streets", "vehicle_glass", "street_clutter", "road_furniture",
                     "edge_returns", "pedalling_riders", "real_bicycles", *PEOPLE_OPTIONS):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share within [0, 1], got {getattr(self, name)}")


def sample_mounting(preset: SensorPreset, options: SimOptions, rng: np.random.Generator) -> Mounting:
    """The preset's nominal mounting, or (for a share ``options.random_mount`` of draws) a random one."""
    if rng.random() >= options.random_mount:
        return Mounting(preset.mount_height)
    return Mounting(float(rng.uniform(*preset.mount_heights)),
                    roll=float(np.clip(rng.normal(0, np.radians(0.8)), -0.04, 0.04)),
                    pitch=float(np.clip(rng.normal(0, np.radians(1.2)), -0.06, 0.06)))


#: The street options whose draws are per frame, each a SimOptions share: the keyword of placement.populate that
#: takes a frame's draws of it, and its own random stream (frame_rng's ``stream``). Adding such an option takes its
#: SimOptions field, a line here, populate's keyword and sparsekd-sim's flag.
PEOPLE_OPTIONS: dict[str, tuple[str, int]] = {
    "close_people": ("close", 12),  # people in close company
    "road_people": ("road", 13),  # people on the road
    "walking_pairs": ("pairs", 15),  # walkers in pairs
    "turning_walkers": ("turning", 16),  # walkers at any heading
    "lane_cyclists": ("lane_cyclists", 17),  # cyclists in the traffic lane
    "open_squares": ("squares", 20),  # people crossing open squares (stream 21 draws the squares themselves)
}


def frame_rng(seed: int, scene_index: int, frame_index: int, stream: int) -> np.random.Generator:
    """The Generator of one frame: depends only on (seed, scene, frame, stream), not on what ran before."""
    return np.random.default_rng([int(seed), int(scene_index), int(frame_index), int(stream)])


class SceneBase:
    """Shared machinery: the static world, the LiDAR and turning actors into a labelled frame."""

    #: Whether the scene's road may carry road furniture (SimOptions.road_furniture): only where road users stand
    #: still, since a moving car would drive through it.
    STILL_ROAD_USERS = False

    def __init__(self, preset: SensorPreset, seed: int, scene_index: int, x_range: tuple[float, float],
                 needs_bike_lane: bool = False, options: SimOptions = SimOptions()):
        self.preset = preset
        self.seed = seed
        self.scene_index = scene_index
        self.options = options
        self.frame_height = (preset.nominal_frame_height if options.frame_height is None
                             else float(options.frame_height))
        rng = frame_rng(seed, scene_index, 0, 0)  # stream 0: the static world
        self.layout = StreetLayout.sample(rng, x_range, needs_bike_lane=needs_bike_lane,
                                          narrow_share=options.narrow_streets)
        self._people_on = {option: self._drawn(getattr(options, option), stream)
                           for option, (_, stream) in PEOPLE_OPTIONS.items()}
        squares_rng = frame_rng(seed, scene_index, 0, 21)  # stream 21: the squares and what stands on them
        if self._people_on["open_squares"]:
            self.layout = self.layout.with_squares(squares_rng)
        clutter_rng = frame_rng(seed, scene_index, 0, 11)  # stream 11: the street clutter, only when drawn
        cluttered = options.street_clutter > 0 and clutter_rng.random() < options.street_clutter
        furniture_rng = frame_rng(seed, scene_index, 0, 14)  # stream 14: road furniture, only when drawn
        furnished = (self.STILL_ROAD_USERS and options.road_furniture > 0
                     and furniture_rng.random() < options.road_furniture)
        self.world: StaticWorld = build_world(self.layout, rng, clutter_rng if cluttered else None,
                                              furniture_rng if furnished else None,
                                              squares_rng if self._people_on["open_squares"] else None)
        style = get_label_style(options.label_style)
        riders_rng = frame_rng(seed, scene_index, 0, 18)  # stream 18: pedalling riders, only when drawn
        pedalling = options.pedalling_riders > 0 and riders_rng.random() < options.pedalling_riders
        self.library = MeshLibrary(frame_rng(seed, scene_index, 0, 3), SizeSampler(frame_rng(seed, scene_index, 0, 6),
                                                                                   style),
                                   vehicle_glass=options.vehicle_glass, people_brightness=options.people_brightness,
                                   riders_rng=riders_rng if pedalling else None,
                                   real_bicycles=self._drawn(options.real_bicycles, 19),  # stream 19: real bicycles
                                   clear_coat_paint=options.vehicle_clear_coat)
        self.style = style
        self.lidar = Lidar(preset, options.raycaster)
        ego_sizes = SizeSampler(frame_rng(seed, scene_index, 0, 10), style)
        self.ego_body = EgoBody.sample(frame_rng(seed, scene_index, 0, 9), ego_sizes) if options.ego_body else None

    def _drawn(self, share: float, stream: int) -> bool:
        """Is this scene one of the ``share`` of scenes that an option is on in? Drawn from the option's own
        ``stream``, and not at all when the share is 0."""
        return share > 0 and frame_rng(self.seed, self.scene_index, 0, stream).random() < share

    def people_rng(self, option: str, frame_index: int) -> np.random.Generator | None:
        """Frame ``frame_index``'s draws of the per-frame street option ``option`` (a key of PEOPLE_OPTIONS), from
        that option's own stream, or None where this scene does without it."""
        _, stream = PEOPLE_OPTIONS[option]
        return frame_rng(self.seed, self.scene_index, frame_index + 1, stream) if self._people_on[option] else None

    def people_draws(self, frame_index: int) -> dict[str, np.random.Generator | None]:
        """placement.populate's keywords for frame ``frame_index``'s per-frame street options: each option's draws,
        or None where this scene does without it (people keep their distance, keep to the sidewalks and crossings,
        walk single file along their sidewalk; no cyclist rides in a traffic lane)."""
        return {keyword: self.people_rng(option, frame_index) for option, (keyword, _) in PEOPLE_OPTIONS.items()}

    def _sample_ego(self, rng: np.random.Generator, x: float) -> EgoState:
        lanes = self.layout.lanes_of("travel")
        lane = lanes[int(rng.integers(len(lanes)))]
        yaw = (0.0 if lane.direction > 0 else np.pi)
        y = lane.y_centre + rng.normal(0, 0.2)
        for _ in range(100):  # drive on past road furniture in the ego's way (none in version-4 streets)
            if not on_road_furniture(self.world, (x, y, EgoState.FOOTPRINT[0] + 1.0, EgoState.FOOTPRINT[1], yaw)):
                break
            x += 1.0
        else:  # groups stand about 25 m apart and none is longer than 60 m: a lane is never blocked for 100 m
            raise RuntimeError(f"road furniture blocks the ego's lane for 100 m from x = {x - 100.0:.1f}")
        return EgoState(x, y, yaw, float(rng.uniform(6, 14)), lane)

    def render(self, frame_index: int, timestamp: float, ego: EgoState, actors: list[Actor],
               boxes_world: np.ndarray, rng: np.random.Generator, ego_yaw_noise: float = 0.0,
               mounting: Mounting | None = None) -> SimFrame:
        """Scan the world plus ``actors`` (at ``boxes_world``) from the ego and label the result.

        mounting: the sensor's height and tilt on the ego (default: the preset's nominal mounting).
        """
        p = self.preset
        mounting = mounting or Mounting(p.mount_height)
        ground = float(self.layout.ground_z(ego.x, ego.y))
        yaw = ego.yaw + ego_yaw_noise
        sensor = np.array([ego.x, ego.y, ground + mounting.height])
        near = np.hypot(boxes_world[:, 0] - ego.x, boxes_world[:, 1] - ego.y) <= p.max_range + RANGE_MARGIN \
            if len(boxes_world) else np.zeros(0, bool)
        chosen = np.flatnonzero(near)
        # The output frame: level, at the sensor's x, y, turned by the ego's yaw, frame_height above the road.
        origin = np.array([ego.x, ego.y, ground + self.frame_height])
        frame_boxes = snap_to_label_grid(world_to_frame(boxes_world[chosen], origin, yaw))
        placed = frame_to_world(frame_boxes, origin, yaw)
        mesh, owner = pose_meshes([actors[i].mesh for i in chosen], placed)
        reach = reach_boxes(placed, [actors[i].kind for i in chosen])  # wing mirrors stick out of vehicle boxes
        body = (self.ego_body.world_mesh(sensor[:2], ground, yaw, mounting.height) if self.ego_body is not None
                else None)
        scan = self.lidar.scan(self.world.ray_caster(self.options.raycaster), self.world.mesh, mesh, owner, placed,
                               sensor, yaw, rng, mounting=mounting, frame_height=self.frame_height, reach_boxes=reach,
                               body_mesh=body, edge_returns=self.options.edge_returns)
        # Points per object: its returns inside its box (a wing mirror's lie just outside); an object is
        # labelled when at least one is, and when anybody labels its kind.
        hit = np.flatnonzero(scan.actor >= 0)
        inside = np.abs(_box_local_y(scan.points[hit], frame_boxes[scan.actor[hit]])) <= \
            frame_boxes[scan.actor[hit], 4] / 2
        counts = np.bincount(scan.actor[hit][inside], minlength=len(chosen))[: len(chosen)]
        labelled_kind = ~np.isin([actors[i].kind for i in chosen], UNLABELLED_KINDS)
        labelled = np.flatnonzero((counts > 0) & labelled_kind)
        remap = np.full(len(chosen) + 1, -1, np.int32)
        remap[labelled] = np.arange(len(labelled), dtype=np.int32)
        point_label = remap[scan.actor]  # -1 stays -1 through the extra last slot

        src = chosen[labelled]
        boxes = frame_boxes[labelled]
        c, s = np.cos(yaw), np.sin(yaw)
        vel_w = np.array([actors[i].velocity[:2] for i in src]).reshape(-1, 2)
        ego_v = ego.speed * np.array([np.cos(ego.yaw), np.sin(ego.yaw)])
        # Absolute velocity over ground, expressed along the output frame's axes (as Waymo's labels).
        velocity = np.column_stack([c * vel_w[:, 0] + s * vel_w[:, 1], -s * vel_w[:, 0] + c * vel_w[:, 1]])
        expected = np.maximum(scan.expected[labelled], scan.visible[labelled])
        occlusion = 1.0 - scan.visible[labelled] / np.maximum(expected, 1)
        pose = np.eye(4)
        pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
        pose[:3, 3] = origin
        return SimFrame(
            scene_index=self.scene_index, frame_index=frame_index, timestamp=timestamp,
            points=scan.points, ring=scan.ring, point_label=point_label,
            boxes=boxes, kinds=np.array([actors[i].kind for i in src], dtype=str).reshape(-1),
            track_ids=np.array([actors[i].track_id for i in src], dtype=np.int64),
            num_points=counts[labelled].astype(np.int64), occlusion=occlusion.astype(np.float64),
            velocity=velocity, pose=pose, preset=p.name,
            meta={"ego_speed": ego.speed, "ego_velocity_world": ego_v.tolist(),
                  "mount_height": mounting.height, "mount_roll": mounting.roll, "mount_pitch": mounting.pitch,
                  "frame_height": self.frame_height, "ego_body": body is not None},
        )


class SnapshotScene(SceneBase):
    """Independent frames along one street: new ego position and new road users every frame."""

    STREET_HALF_LENGTH = 60.0  # the ego is placed within this much of the street's middle
    STILL_ROAD_USERS = True

    def __init__(self, preset: SensorPreset, seed: int, scene_index: int, options: SimOptions = SimOptions()):
        reach = self.STREET_HALF_LENGTH + preset.max_range + 40.0
        super().__init__(preset, seed, scene_index, (-reach, reach), options=options)
        self.densities = Densities.sample(frame_rng(seed, scene_index, 0, 7))

    def frame(self, frame_index: int) -> SimFrame:
        rng = frame_rng(self.seed, self.scene_index, frame_index, 1)
        ego = self._sample_ego(rng, float(rng.uniform(-self.STREET_HALF_LENGTH, self.STREET_HALF_LENGTH)))
        reach = self.preset.max_range + RANGE_MARGIN
        d, busy = self.densities, float(rng.uniform(0.7, 1.3))  # the street's mix, busier or quieter frame by frame
        density = Densities(d.moving * busy, d.parked, d.pedestrians * busy, d.cyclists * busy)
        actors = populate(self.world, rng, (ego.x - reach, ego.x + reach), ego, sequence=False,
                          library=self.library, sizes=SizeSampler(rng, self.style), density=density,
                          **self.people_draws(frame_index))
        boxes = np.array([a.box for a in actors]).reshape(-1, 7)
        mounting = sample_mounting(self.preset, self.options, rng)
        return self.render(frame_index, 0.0, ego, actors, boxes, rng, ego_yaw_noise=float(rng.normal(0, 0.03)),
                           mounting=mounting)
