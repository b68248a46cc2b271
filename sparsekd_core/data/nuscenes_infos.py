"""nuScenes infos through the official devkit: key frames, boxes with velocity in the LiDAR frame, sweeps, splits.

``sparsekd-data nuscenes --root R --version v1.0-mini|v1.0-trainval`` calls :func:`create_nuscenes_infos`.
Everything about the dataset's tables is the devkit's (``nuscenes-devkit``): it loads them
(``NuScenes``), names the official splits (``create_splits_scenes``), maps categories to the 10 detection
classes (``category_to_detection_name``), gives each annotation as a ``Box`` and its velocity
(``box_velocity``), and builds the transforms (``transform_matrix``). What is kept per key frame follows
OpenPCDet's nuScenes infos:

- the LIDAR_TOP key frame's file and up to ``max_sweeps - 1`` earlier sweeps (file, age in seconds, the
  transform into the key frame's sensor frame through both ego poses);
- every annotation with at least one LiDAR or radar point (the others are never scored), as a box
  (x y z dx dy dz yaw) in the key frame's LiDAR frame, its class (``ignore`` outside the 10), its LiDAR point
  count and its velocity (vx, vy) in the same frame; a velocity the devkit cannot estimate (an object seen
  once) is 0, as OpenPCDet's CenterPoint configs set it (SET_NAN_VELOCITY_TO_ZEROS);
- the pose of the LiDAR in the global frame, the scene name and the key frame's index in it.
"""
from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.data import nuscenes_format as nf
from sparsekd_core.data.infos import POINT_FEATURES, FrameInfo, ObjectAnnos, SplitSummary, create_infos

log = logging.getLogger(__name__)

DEFAULT_MAX_SWEEPS = 10  # key frame + 9 earlier sweeps, as OpenPCDet's infos


def devkit_missing_message() -> str:
    return ("the nuScenes devkit is not installed: `make setup` installs it (nuscenes-devkit 1.2.0, without its "
            "numpy<2 cap), or `pip install --no-deps nuscenes-devkit==1.2.0 pyquaternion cachetools "
            "opencv-python-headless scikit-learn` in this environment")


def load_nuscenes(root: str | Path, version: str, verbose: bool = False):
    """The devkit's ``NuScenes`` for ``root``/``version``, with errors that say what is missing."""
    try:
        from nuscenes import NuScenes
    except ImportError as err:
        raise ImportError(devkit_missing_message()) from err
    if version not in nf.VERSIONS:
        raise ValueError(f"unknown nuScenes version {version!r}: one of {', '.join(nf.VERSIONS)}")
    table_dir = Path(root) / version
    if not table_dir.is_dir():
        found = sorted(p.name for p in Path(root).glob("v1.0-*")) if Path(root).is_dir() else []
        raise FileNotFoundError(f"no nuScenes tables at {table_dir} (found {found or 'none'}): point --root at the "
                                f"folder holding {version}/, samples/ and sweeps/, or pass the --version it has")
    return NuScenes(version=version, dataroot=str(root), verbose=verbose)


def labelled_versions(root: str | Path) -> list[str]:
    """The labelled table versions (v1.0-mini, v1.0-trainval) whose folders are under ``root``."""
    return [v for v in nf.VERSIONS if v != "v1.0-test" and (Path(root) / v).is_dir()]


def dataset_version(root: str | Path, infos: Sequence[FrameInfo]) -> str:
    """The table version of ``infos``: as written by sparsekd-data, else (OpenPCDet's infos carry none) the one
    labelled version folder under ``root``."""
    if infos and infos[0].version:
        return infos[0].version
    found = labelled_versions(root)
    if len(found) == 1:
        return found[0]
    raise ValueError(f"these nuScenes infos do not say their table version and {root} holds "
                     f"{found or 'no labelled version'}: rebuild them with `sparsekd-data nuscenes --root {root} "
                     "--version V`")


def _transform(record: dict, inverse: bool) -> np.ndarray:
    from nuscenes.utils.geometry_utils import transform_matrix
    from pyquaternion import Quaternion

    return transform_matrix(record["translation"], Quaternion(record["rotation"]), inverse=inverse)


def _relative(sample_data: dict) -> str:
    """A sample_data's file, relative to the dataset root (as the tables store it)."""
    return Path(sample_data["filename"]).as_posix()


def sweeps_of(nusc, key_sd: dict, max_sweeps: int) -> tuple[nf.Sweep, ...]:
    """Up to ``max_sweeps - 1`` sweeps before the key frame ``key_sd`` (a sample_data record), nearest first."""
    ref_from_car = _transform(nusc.get("calibrated_sensor", key_sd["calibrated_sensor_token"]), inverse=True)
    car_from_global = _transform(nusc.get("ego_pose", key_sd["ego_pose_token"]), inverse=True)
    out = []
    sd = key_sd
    while len(out) < max_sweeps - 1 and sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
        global_from_car = _transform(nusc.get("ego_pose", sd["ego_pose_token"]), inverse=False)
        car_from_sensor = _transform(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]), inverse=False)
        matrix = reduce(np.dot, [ref_from_car, car_from_global, global_from_car, car_from_sensor])
        out.append(nf.Sweep(_relative(sd), 1e-6 * (key_sd["timestamp"] - sd["timestamp"]), matrix))
    return tuple(out)


def lidar_frame_annos(nusc, sample: dict, key_sd: dict) -> ObjectAnnos:
    """The sample's scored annotations as boxes (and velocities) in the key frame's LiDAR frame."""
    from nuscenes.eval.common.utils import quaternion_yaw
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    pose = nusc.get("ego_pose", key_sd["ego_pose_token"])
    sensor = nusc.get("calibrated_sensor", key_sd["calibrated_sensor_token"])
    names, boxes, velocities, points = [], [], [], []
    for token in sample["anns"]:
        ann = nusc.get("sample_annotation", token)
        if ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
            continue
        box = nusc.get_box(token)
        box.velocity = nusc.box_velocity(token)
        # Global -> ego -> sensor, the devkit's way (Box.rotate turns the velocity too).
        box.translate(-np.array(pose["translation"]))
        box.rotate(Quaternion(pose["rotation"]).inverse)
        box.translate(-np.array(sensor["translation"]))
        box.rotate(Quaternion(sensor["rotation"]).inverse)
        width, length, height = box.wlh
        boxes.append([*box.center, length, width, height, quaternion_yaw(box.orientation)])
        velocities.append(np.nan_to_num(box.velocity[:2], nan=0.0))
        names.append(category_to_detection_name(ann["category_name"]) or nf.IGNORE)
        points.append(ann["num_lidar_pts"])
    m = len(names)
    return ObjectAnnos(np.array(names, dtype=str), np.array(boxes, np.float64).reshape(m, 7), np.array(points),
                       np.zeros(m, np.int64), velocity=np.array(velocities, np.float64).reshape(m, 2))


def build_nuscenes_infos(nusc, split: str, max_sweeps: int = DEFAULT_MAX_SWEEPS, progress: bool = True,
                         labelled: bool = True) -> list[FrameInfo]:
    """FrameInfos of the key frames of ``split`` (ours: train / val / test), scene by scene in time order."""
    from nuscenes.utils.splits import create_splits_scenes
    from tqdm import tqdm

    scenes = set(create_splits_scenes()[nf.split_name(nusc.version, split)])
    chosen = [s for s in nusc.scene if s["name"] in scenes]
    if not chosen:
        raise ValueError(f"nuScenes {nusc.version} under {nusc.dataroot} holds none of the {len(scenes)} scenes of "
                         f"split {split} ({nf.split_name(nusc.version, split)})")
    infos = []
    bar = tqdm(total=sum(s["nbr_samples"] for s in chosen), desc=f"nuscenes {split} infos", unit="frame",
               disable=not progress)
    for scene in chosen:
        token, index = scene["first_sample_token"], 0
        while token:
            sample = nusc.get("sample", token)
            key_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
            sensor = nusc.get("calibrated_sensor", key_sd["calibrated_sensor_token"])
            global_from_car = _transform(nusc.get("ego_pose", key_sd["ego_pose_token"]), inverse=False)
            annos = lidar_frame_annos(nusc, sample, key_sd) if labelled else ObjectAnnos.empty()
            infos.append(FrameInfo("nuscenes", sample["token"], _relative(key_sd), POINT_FEATURES["nuscenes"],
                                   annos, sequence=scene["name"], sample_idx=index,
                                   pose=global_from_car @ _transform(sensor, inverse=False),
                                   sweeps=sweeps_of(nusc, key_sd, max_sweeps), version=nusc.version,
                                   timestamp=1e-6 * key_sd["timestamp"]))
            token, index = sample["next"], index + 1
            bar.update()
    bar.close()
    return infos


def create_nuscenes_infos(root: str | Path, version: str, splits: Sequence[str] | None = None,
                          max_sweeps: int = DEFAULT_MAX_SWEEPS, workers: int = 2, db_split: str | None = "train",
                          progress: bool = True) -> list[SplitSummary]:
    """Write the infos of ``splits`` (default: every split of ``version``) and the gt database of ``db_split``."""
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1 (the key frame), got {max_sweeps}")
    nusc = load_nuscenes(root, version)
    splits = list(splits) if splits else list(nf.SPLITS[version])
    for split in splits:
        nf.split_name(version, split)  # unknown split names fail before any work
    if db_split is not None and db_split not in nf.SPLITS[version]:
        db_split = None  # v1.0-test has no labels to build a database from
    return create_infos("nuscenes", root, splits,
                        lambda split: build_nuscenes_infos(nusc, split, max_sweeps, progress, labelled=split != "test"),
                        db_split, nf.NUSCENES_CLASSES, workers, progress)
