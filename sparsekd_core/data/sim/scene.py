"""A simulated scene: one static street, road users, a LiDAR on the ego vehicle -> labelled frames.

Two modes share everything but time:
- snapshots (:class:`SnapshotScene`): every frame puts the ego somewhere new along the street and
  draws a fresh set of road users; the static world is built once per scene and reused.
- a drive (:class:`sequence.DriveScene`): the ego and the road users move at 10 Hz.

Labels: a road user is labelled when at least one LiDAR return comes from its mesh; users with no
return are left out (not written as DontCare). ``num_points`` is the true number of returns off the
user's mesh (the ray's primitive id tells which mesh it hit); all of them lie inside its box, and
the box may also hold a few ground returns near wheels and feet, as real boxes do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sparsekd_core.data.sim.actors import Actor, MeshLibrary
from sparsekd_core.data.sim.meshes import pose_meshes
from sparsekd_core.data.sim.placement import EgoState, populate
from sparsekd_core.data.sim.sensor import Lidar, SensorPreset
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
    boxes: (M, 7) float64 labelled boxes; kinds: (M,) str ('car', 'van', 'truck', 'pedestrian', 'cyclist');
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


def frame_rng(seed: int, scene_index: int, frame_index: int, stream: int) -> np.random.Generator:
    """The Generator of one frame: depends only on (seed, scene, frame, stream), not on what ran before."""
    return np.random.default_rng([int(seed), int(scene_index), int(frame_index), int(stream)])


class SceneBase:
    """Shared machinery: the static world, the LiDAR and turning actors into a labelled frame."""

    def __init__(self, preset: SensorPreset, seed: int, scene_index: int, x_range: tuple[float, float],
                 needs_bike_lane: bool = False):
        self.preset = preset
        self.seed = seed
        self.scene_index = scene_index
        rng = frame_rng(seed, scene_index, 0, 0)  # stream 0: the static world
        self.layout = StreetLayout.sample(rng, x_range, needs_bike_lane=needs_bike_lane)
        self.world: StaticWorld = build_world(self.layout, rng)
        self.library = MeshLibrary(frame_rng(seed, scene_index, 0, 3))
        self.lidar = Lidar(preset)

    def _sample_ego(self, rng: np.random.Generator, x: float) -> EgoState:
        lanes = self.layout.lanes_of("travel")
        lane = lanes[int(rng.integers(len(lanes)))]
        yaw = (0.0 if lane.direction > 0 else np.pi)
        return EgoState(x, lane.y_centre + rng.normal(0, 0.2), yaw, float(rng.uniform(6, 14)), lane)

    def render(self, frame_index: int, timestamp: float, ego: EgoState, actors: list[Actor],
               boxes_world: np.ndarray, rng: np.random.Generator, ego_yaw_noise: float = 0.0) -> SimFrame:
        """Scan the world plus ``actors`` (at ``boxes_world``) from the ego and label the result."""
        p = self.preset
        ground = float(self.layout.ground_z(ego.x, ego.y))
        yaw = ego.yaw + ego_yaw_noise
        sensor = np.array([ego.x, ego.y, ground + p.mount_height])
        near = np.hypot(boxes_world[:, 0] - ego.x, boxes_world[:, 1] - ego.y) <= p.max_range + RANGE_MARGIN \
            if len(boxes_world) else np.zeros(0, bool)
        chosen = np.flatnonzero(near)
        # The output frame: at the sensor, turned by the ego's yaw, lifted by the preset's frame offset.
        origin = sensor - np.array([0.0, 0.0, p.frame_z_offset])
        frame_boxes = snap_to_label_grid(world_to_frame(boxes_world[chosen], origin, yaw))
        placed = frame_to_world(frame_boxes, origin, yaw)
        mesh, owner = pose_meshes([actors[i].mesh for i in chosen], placed)
        scan = self.lidar.scan(self.world.raycasting_scene, self.world.mesh.reflectivity, mesh, owner,
                               placed, sensor, yaw, rng)
        counts = np.bincount(scan.actor[scan.actor >= 0], minlength=len(chosen))[: len(chosen)]
        labelled = np.flatnonzero(counts > 0)
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
            meta={"ego_speed": ego.speed, "ego_velocity_world": ego_v.tolist()},
        )


class SnapshotScene(SceneBase):
    """Independent frames along one street: new ego position and new road users every frame."""

    STREET_HALF_LENGTH = 60.0  # the ego is placed within this much of the street's middle

    def __init__(self, preset: SensorPreset, seed: int, scene_index: int):
        reach = self.STREET_HALF_LENGTH + preset.max_range + 40.0
        super().__init__(preset, seed, scene_index, (-reach, reach))

    def frame(self, frame_index: int) -> SimFrame:
        rng = frame_rng(self.seed, self.scene_index, frame_index, 1)
        ego = self._sample_ego(rng, float(rng.uniform(-self.STREET_HALF_LENGTH, self.STREET_HALF_LENGTH)))
        reach = self.preset.max_range + RANGE_MARGIN
        actors = populate(self.world, rng, (ego.x - reach, ego.x + reach), ego, sequence=False,
                          library=self.library, density=float(rng.uniform(0.7, 1.3)))
        boxes = np.array([a.box for a in actors]).reshape(-1, 7)
        return self.render(frame_index, 0.0, ego, actors, boxes, rng, ego_yaw_noise=float(rng.normal(0, 0.03)))
