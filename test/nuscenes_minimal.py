"""A tiny nuScenes v1.0-mini-format dataset, written from known boxes and poses, for the devkit to read.

Two scenes with the names of the official mini split, so the devkit's own split lists apply:
- ``scene-0061`` (mini_train): key frame 0 is the real LIDAR_TOP sweep of ../shared/data/nuscenes with its
  69 real boxes (given in the LiDAR frame, written to the tables in the global frame through a known sensor
  calibration and ego pose); two earlier sweeps are that cloud moved into their own sensor frames (the car
  drove on), so merged sweeps must land back on it; key frame 1, 0.5 s later, has every object moved by
  TRAIN_MOTION in the global frame.
- ``scene-0103`` (mini_val): two key frames with hand-placed objects (VAL_OBJECTS) for the metric.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pyquaternion import Quaternion

VERSION = "v1.0-mini"
T0 = 1_533_151_603_000_000  # µs
KEY_DT = 500_000  # µs between key frames
SWEEP_DT = 50_000  # µs between sweeps
# The LIDAR_TOP calibration of the real car (about): 0.94 m forward, 1.84 m up, turned -90 deg about z.
SENSOR_TRANSLATION = np.array([0.943713, 0.0, 1.84023])
SENSOR_ROTATION = Quaternion(axis=[0, 0, 1], radians=-np.pi / 2 + 0.01)
EGO_SPEED = 8.0  # m/s along its heading
TRAIN_POSE = (np.array([411.3, 1180.9, 0.0]), 0.6)  # key frame 0 of the train scene: translation, yaw
VAL_POSE = (np.array([1200.0, 850.0, 0.0]), -2.2)
TRAIN_MOTION = np.array([1.0, -0.5, 0.0])  # every train object moves this much (global) between its key frames
GENERAL = {"car": "vehicle.car", "truck": "vehicle.truck", "bus": "vehicle.bus.rigid", "trailer": "vehicle.trailer",
           "construction_vehicle": "vehicle.construction", "pedestrian": "human.pedestrian.adult",
           "motorcycle": "vehicle.motorcycle", "bicycle": "vehicle.bicycle",
           "traffic_cone": "movable_object.trafficcone", "barrier": "movable_object.barrier", "ignore": "animal"}
ATTRIBUTES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped", "pedestrian.moving", "pedestrian.standing",
              "cycle.with_rider", "cycle.without_rider")
# Val objects in the LiDAR frame of key frame A (x y z dx dy dz yaw), their global velocity, attribute, where.
VAL_OBJECTS = [
    {"id": "moving_car", "name": "car", "box": [12.0, 3.0, -0.9, 4.5, 1.9, 1.6, 0.3], "velocity": [5.0, 1.0],
     "attribute": "vehicle.moving", "samples": (0, 1), "points": 120},
    {"id": "parked_car", "name": "car", "box": [-8.0, 14.0, -0.9, 4.2, 1.8, 1.5, -1.2], "velocity": [0.0, 0.0],
     "attribute": "vehicle.parked", "samples": (0, 1), "points": 60},
    {"id": "walker", "name": "pedestrian", "box": [4.0, -9.0, -0.8, 0.7, 0.7, 1.8, 2.0], "velocity": [1.2, -0.6],
     "attribute": "pedestrian.moving", "samples": (0, 1), "points": 15},
    {"id": "cone", "name": "traffic_cone", "box": [-3.0, -15.0, -1.4, 0.4, 0.4, 0.8, 0.0], "velocity": [0.0, 0.0],
     "attribute": None, "samples": (1,), "points": 4},
    {"id": "dog", "name": "ignore", "box": [6.0, 6.0, -1.5, 0.8, 0.3, 0.6, 0.5], "velocity": [0.0, 0.0],
     "attribute": None, "samples": (0,), "points": 7},
    {"id": "hidden_car", "name": "car", "box": [18.0, -12.0, -0.9, 4.5, 1.9, 1.6, 0.0], "velocity": [0.0, 0.0],
     "attribute": "vehicle.parked", "samples": (0,), "points": 0},
]


def rigid(translation, rotation: Quaternion) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation.rotation_matrix
    m[:3, 3] = translation
    return m


def ego_pose(base: tuple[np.ndarray, float], dt_us: int) -> tuple[np.ndarray, Quaternion]:
    """The ego pose ``dt_us`` after the base pose, driving straight along its heading."""
    translation, yaw = base
    heading = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return translation + heading * EGO_SPEED * dt_us * 1e-6, Quaternion(axis=[0, 0, 1], radians=yaw)


def global_from_lidar(pose: tuple[np.ndarray, Quaternion]) -> np.ndarray:
    return rigid(*pose) @ rigid(SENSOR_TRANSLATION, SENSOR_ROTATION)


def box_to_global(box: list[float], pose: tuple[np.ndarray, Quaternion], shift=np.zeros(3)) -> dict:
    """A LiDAR-frame box -> the sample_annotation fields (centre, wlh, rotation) in the global frame."""
    x, y, z, dx, dy, dz, yaw = box
    centre = (global_from_lidar(pose) @ np.array([x, y, z, 1.0]))[:3] + shift
    rotation = pose[1] * SENSOR_ROTATION * Quaternion(axis=[0, 0, 1], radians=yaw)
    return {"translation": centre.tolist(), "size": [dy, dx, dz], "rotation": list(rotation.elements)}


class _Tables:
    def __init__(self):
        self.t = {name: [] for name in ("category", "attribute", "visibility", "instance", "sensor",
                                        "calibrated_sensor", "ego_pose", "log", "scene", "sample", "sample_data",
                                        "sample_annotation", "map")}
        self.t["sensor"].append({"token": "sensor_lidar_top", "channel": "LIDAR_TOP", "modality": "lidar"})
        self.t["calibrated_sensor"].append({"token": "cs_lidar_top", "sensor_token": "sensor_lidar_top",
                                            "translation": SENSOR_TRANSLATION.tolist(),
                                            "rotation": list(SENSOR_ROTATION.elements), "camera_intrinsic": []})
        self.t["visibility"].append({"token": "4", "level": "v80-100", "description": "visible"})
        for name in sorted(set(GENERAL.values())):
            self.t["category"].append({"token": f"cat_{name}", "name": name, "description": ""})
        for name in ATTRIBUTES:
            self.t["attribute"].append({"token": f"attr_{name}", "name": name, "description": ""})

    def add(self, table: str, record: dict) -> dict:
        self.t[table].append(record)
        return record

    def write(self, root: Path) -> None:
        folder = root / VERSION
        folder.mkdir(parents=True, exist_ok=True)
        for name, records in self.t.items():
            (folder / f"{name}.json").write_text(json.dumps(records))


def _write_cloud(root: Path, rel: str, points: np.ndarray) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(points, dtype=np.float32).tofile(path)
    return rel


def _scene(tables: _Tables, root: Path, name: str, log: str, key_clouds: list[np.ndarray], base_pose,
           sweep_clouds: list[np.ndarray]) -> list[str]:
    """Samples of one scene (key frames KEY_DT apart); sweeps before key frame 0. Returns sample tokens."""
    tables.add("log", {"token": log, "logfile": log, "vehicle": "n015", "date_captured": "2018-08-01",
                       "location": "singapore-onenorth"})
    samples = [f"{name}_sample{k}" for k in range(len(key_clouds))]
    chain = []  # sample_data tokens in time order
    for j, cloud in reversed(list(enumerate(sweep_clouds, start=1))):
        dt = -SWEEP_DT * j
        token = f"{name}_sweep{j}"
        rel = _write_cloud(root, f"sweeps/LIDAR_TOP/{token}.pcd.bin", cloud)
        chain.append((token, dt, rel, False, samples[0]))
    for k, cloud in enumerate(key_clouds):
        token = f"{name}_key{k}"
        rel = _write_cloud(root, f"samples/LIDAR_TOP/{token}.pcd.bin", cloud)
        chain.append((token, KEY_DT * k, rel, True, samples[k]))
    for i, (token, dt, rel, key, sample) in enumerate(chain):
        translation, rotation = ego_pose(base_pose, dt)
        tables.add("ego_pose", {"token": f"pose_{token}", "timestamp": T0 + dt, "translation": translation.tolist(),
                                "rotation": list(rotation.elements)})
        tables.add("sample_data", {"token": token, "sample_token": sample, "ego_pose_token": f"pose_{token}",
                                   "calibrated_sensor_token": "cs_lidar_top", "timestamp": T0 + dt,
                                   "fileformat": "pcd", "is_key_frame": key, "height": 0, "width": 0,
                                   "filename": rel, "prev": chain[i - 1][0] if i else "",
                                   "next": chain[i + 1][0] if i + 1 < len(chain) else ""})
    for k, token in enumerate(samples):
        tables.add("sample", {"token": token, "timestamp": T0 + KEY_DT * k, "scene_token": name,
                              "prev": samples[k - 1] if k else "",
                              "next": samples[k + 1] if k + 1 < len(samples) else ""})
    tables.add("scene", {"token": name, "log_token": log, "nbr_samples": len(samples), "first_sample_token": samples[0],
                         "last_sample_token": samples[-1], "name": name, "description": ""})
    return samples


def _object(tables: _Tables, inst: str, name: str, samples: list[str], fields: list[dict], points: list[int],
            attribute: str | None) -> None:
    tokens = [f"{inst}_ann{k}" for k in range(len(fields))]
    tables.add("instance", {"token": inst, "category_token": f"cat_{GENERAL[name]}",
                            "nbr_annotations": len(tokens), "first_annotation_token": tokens[0],
                            "last_annotation_token": tokens[-1]})
    for k, (token, sample, f, n) in enumerate(zip(tokens, samples, fields, points)):
        tables.add("sample_annotation", {
            "token": token, "sample_token": sample, "instance_token": inst, "visibility_token": "4",
            "attribute_tokens": [f"attr_{attribute}"] if attribute else [], **f, "num_lidar_pts": int(n),
            "num_radar_pts": 0, "prev": tokens[k - 1] if k else "",
            "next": tokens[k + 1] if k + 1 < len(tokens) else ""})


def sweep_transform(j: int) -> np.ndarray:
    """(4, 4) from sweep j's (j = 1, 2: 50, 100 ms before key frame 0) sensor frame to key frame 0's."""
    key = global_from_lidar(ego_pose(TRAIN_POSE, 0))
    return np.linalg.inv(key) @ global_from_lidar(ego_pose(TRAIN_POSE, -SWEEP_DT * j))


def write_minimal_nuscenes(root: Path, shared_data: Path) -> dict:
    """Write the dataset under ``root``; returns what the tests compare against."""
    real = np.fromfile(shared_data / "nuscenes" / "lidar_top.bin", dtype=np.float32).reshape(-1, 5)
    real_boxes = json.loads((shared_data / "nuscenes" / "lidar_top_boxes.json").read_text())["objects"]
    tables = _Tables()

    # The train scene: sweeps are the real cloud as seen from where the car was 50 and 100 ms earlier.
    sweeps = []
    for j in (1, 2):
        inv = np.linalg.inv(sweep_transform(j))
        moved = real.copy()
        moved[:, :3] = (real[:, :3].astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]).astype(np.float32)
        sweeps.append(moved)
    train = _scene(tables, root, "scene-0061", "log_train", [real, real], TRAIN_POSE, sweeps)
    pose0, pose1 = ego_pose(TRAIN_POSE, 0), ego_pose(TRAIN_POSE, KEY_DT)
    for i, obj in enumerate(real_boxes):
        at0 = box_to_global(obj["box"], pose0)
        at1 = {**at0, "translation": (np.array(at0["translation"]) + TRAIN_MOTION).tolist()}
        _object(tables, f"real{i}", obj["name"], train, [at0, at1], [obj["num_lidar_pts"]] * 2, None)

    # The val scene: hand-placed objects, each moving with its own global velocity.
    rng = np.random.default_rng(0)
    cloud = np.column_stack([rng.uniform(-30, 30, (200, 3)), rng.uniform(0, 255, 200), rng.integers(0, 32, 200)])
    val = _scene(tables, root, "scene-0103", "log_val", [cloud, cloud], VAL_POSE, [])
    val_pose = ego_pose(VAL_POSE, 0)
    for obj in VAL_OBJECTS:
        fields = []
        for k in obj["samples"]:
            shift = np.array([*obj["velocity"], 0.0]) * KEY_DT * 1e-6 * k
            fields.append(box_to_global(obj["box"], val_pose, shift))
        _object(tables, obj["id"], obj["name"], [val[k] for k in obj["samples"]], fields,
                [obj["points"]] * len(fields), obj["attribute"])

    tables.add("map", {"token": "map0", "log_tokens": ["log_train", "log_val"], "category": "semantic_prior",
                       "filename": "maps/map0.png"})
    (root / "maps").mkdir(parents=True, exist_ok=True)
    Image.new("L", (2, 2)).save(root / "maps" / "map0.png")
    tables.write(root)
    return {"real_points": real, "real_boxes": real_boxes, "train_samples": train, "val_samples": val}
