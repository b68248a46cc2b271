"""The gt-sampling database: every labelled object's points, cut out of its frame, for pasting into others.

Layout (all paths relative to the dataset root, so a dataset directory can be moved as a whole):

- ``<db_points>``: one packed float32 file, row after row of object points, ``F`` columns each (the
  dataset's point features, e.g. x y z intensity). Each object's xyz is stored *relative to its box
  centre* (not rotated), so pasting it at its original box only adds the centre back.
- ``<dbinfos>.pkl``: ``dict[class name -> list[record]]``, OpenPCDet's dbinfos layout. A record is a dict:
  ``name`` str, ``path`` str (the packed file, or one ``.bin`` per object as OpenPCDet writes them),
  ``offset`` int (first row in the packed file; absent for per-object files), ``num_points_in_gt`` int
  (rows stored), ``num_point_features`` int, ``box3d_lidar`` (7,) float32 (LiDAR frame, docs/architecture.md), or
  (9,) with the velocity vx vy (m/s) after it where the dataset labels motion (OpenPCDet's nuScenes "withvelo"
  database), ``difficulty`` int, ``image_idx`` str (the frame id), ``gt_idx`` int (index of the object in its frame).

A database written by OpenPCDet (one ``.bin`` per object, no ``offset``) loads too: the feature count is
taken from the file size.

One packed file instead of thousands of small ones: a training step samples tens of objects, and one
memory-mapped file shared by all DataLoader workers makes that a slice per object, not a file open.
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from sparsekd_core.geometry.boxes import points_in_boxes

log = logging.getLogger(__name__)

#: Names that never enter the database (KITTI's "don't care" regions have no 3D box).
IGNORED_NAMES = ("DontCare",)


@dataclass
class DbFrame:
    """One frame's input to the database builder.

    points:     (N, F) float32, LiDAR frame, the dataset's point features (as the training loader reads them).
    boxes:      (M, 7) boxes (x, y, z, dx, dy, dz, yaw), LiDAR frame.
    names:      (M,) class names.
    difficulty: (M,) int (KITTI 0/1/2 or -1; Waymo level 1/2).
    velocity:   (M, 2) vx vy in m/s, LiDAR frame, where the dataset labels motion (nuScenes), else None.
    """

    frame_id: str
    points: np.ndarray
    boxes: np.ndarray
    names: Sequence[str]
    difficulty: np.ndarray
    velocity: np.ndarray | None = None


@dataclass(frozen=True)
class DbObject:
    """One database object: where its points are and what it is."""

    name: str
    frame_id: str
    gt_idx: int
    box: np.ndarray  # (7,) float32
    num_points: int
    difficulty: int
    path: str
    offset: int  # first row in the packed file; -1 for a per-object file
    num_features: int  # -1 when unknown (per-object file: read from the file size)
    velocity: np.ndarray | None = None  # (2,) float32 vx vy, when the record's box carries it

    @classmethod
    def from_record(cls, record: dict) -> "DbObject":
        box = np.asarray(record["box3d_lidar"], dtype=np.float32).reshape(-1)
        return cls(
            name=str(record["name"]),
            frame_id=str(record.get("image_idx", record.get("frame_id", ""))),
            gt_idx=int(record.get("gt_idx", -1)),
            box=box[:7],
            num_points=int(record["num_points_in_gt"]),
            difficulty=int(record.get("difficulty", 0)),
            path=str(record["path"]),
            offset=int(record.get("offset", -1)),
            num_features=int(record.get("num_point_features", -1)),
            # OpenPCDet's nuScenes database stores NaN for a velocity the devkit cannot estimate; as its CenterPoint
            # configs (SET_NAN_VELOCITY_TO_ZEROS) and our infos, that is 0.
            velocity=np.nan_to_num(box[7:9], nan=0.0) if len(box) >= 9 else None,
        )


class GtDatabaseWriter:
    """Writes the packed object points and collects the dbinfos records; use as a context manager."""

    def __init__(self, root: str | Path, points_relpath: str | Path, classes: Sequence[str] | None = None):
        """root: dataset root; points_relpath: the packed file, relative to root; classes: keep only these
        (None = every class except IGNORED_NAMES)."""
        self.root = Path(root)
        self.points_relpath = Path(points_relpath).as_posix()
        self.classes = None if classes is None else tuple(classes)
        self.dbinfos: dict[str, list[dict]] = {}
        self.num_features: int | None = None
        self._rows = 0
        path = self.root / self.points_relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")

    def __enter__(self) -> "GtDatabaseWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def _wanted(self, name: str) -> bool:
        if name in IGNORED_NAMES:
            return False
        return self.classes is None or name in self.classes

    def add(self, frame: DbFrame) -> int:
        """Crop every wanted object of ``frame`` and append it; returns the number of objects written."""
        points = np.asarray(frame.points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"gt database: frame {frame.frame_id} points must be (N, >=3), got {points.shape}")
        if self.num_features is None:
            self.num_features = points.shape[1]
        elif points.shape[1] != self.num_features:
            raise ValueError(
                f"gt database: frame {frame.frame_id} has {points.shape[1]} point features, earlier frames "
                f"{self.num_features}; every frame of one database must have the same columns"
            )
        boxes = np.asarray(frame.boxes, dtype=np.float32).reshape(-1, 7)
        names = [str(n) for n in frame.names]
        difficulty = np.asarray(frame.difficulty).reshape(-1)
        velocity = None if frame.velocity is None else np.asarray(frame.velocity, dtype=np.float32).reshape(-1, 2)
        if not (len(boxes) == len(names) == len(difficulty) == (len(boxes) if velocity is None else len(velocity))):
            raise ValueError(
                f"gt database: frame {frame.frame_id} has {len(boxes)} boxes, {len(names)} names, "
                f"{len(difficulty)} difficulties" + ("" if velocity is None else f" and {len(velocity)} velocities")
                + "; they must match"
            )
        keep = [i for i, n in enumerate(names) if self._wanted(n)]
        if not keep:
            return 0
        inside = points_in_boxes(points[:, :3], boxes[keep])  # (N, K)
        for column, i in enumerate(keep):
            obj = points[inside[:, column]].copy()
            obj[:, :3] -= boxes[i, :3]
            self._file.write(np.ascontiguousarray(obj, dtype=np.float32).tobytes())
            self.dbinfos.setdefault(names[i], []).append({
                "name": names[i],
                "path": self.points_relpath,
                "offset": self._rows,
                "num_points_in_gt": int(len(obj)),
                "num_point_features": int(self.num_features),
                "box3d_lidar": boxes[i].copy() if velocity is None else np.concatenate([boxes[i], velocity[i]]),
                "difficulty": int(difficulty[i]),
                "image_idx": str(frame.frame_id),
                "gt_idx": int(i),
            })
            self._rows += len(obj)
        return len(keep)


def build_gt_database(
    frames: Iterable[DbFrame],
    root: str | Path,
    points_relpath: str | Path,
    dbinfos_path: str | Path,
    classes: Sequence[str] | None = None,
    total: int | None = None,
    progress: bool = True,
) -> dict[str, list[dict]]:
    """Build the database from ``frames`` and write the packed points and the dbinfos pickle.

    root: dataset root; points_relpath: packed points file relative to root; dbinfos_path: where the
    pickle goes (absolute, or relative to root). Returns the dbinfos dict (class -> records).
    """
    root = Path(root)
    with GtDatabaseWriter(root, points_relpath, classes) as writer:
        for frame in tqdm(frames, total=total, desc="gt database", unit="frame", disable=not progress):
            writer.add(frame)
    dbinfos_path = root / dbinfos_path
    dbinfos_path.parent.mkdir(parents=True, exist_ok=True)
    with open(dbinfos_path, "wb") as f:
        pickle.dump(writer.dbinfos, f)
    log.info("gt database: %s objects -> %s", {k: len(v) for k, v in writer.dbinfos.items()}, dbinfos_path)
    return writer.dbinfos


class GtDatabase:
    """Read side: the objects of a dbinfos pickle and their points.

    Files are memory-mapped lazily and the maps are not pickled, so a dataset holding a GtDatabase can be
    sent to DataLoader workers (each opens its own map).
    """

    def __init__(self, dbinfos: dict[str, list[dict]], root: str | Path):
        self.root = Path(root)
        self.objects: dict[str, list[DbObject]] = {
            name: [DbObject.from_record(r) for r in records] for name, records in dbinfos.items()
        }
        self._maps: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, dbinfos_path: str | Path, root: str | Path) -> "GtDatabase":
        """dbinfos_path: the pickle (absolute, or relative to root); root: the dataset root the records' paths
        are relative to."""
        path = Path(root) / dbinfos_path
        if not path.is_file():
            raise FileNotFoundError(
                f"gt database: no dbinfos at {path}; build it with `sparsekd-data kitti|waymo|nuscenes --root {root}`"
            )
        with open(path, "rb") as f:
            dbinfos = pickle.load(f)
        if not isinstance(dbinfos, dict):
            raise ValueError(f"gt database: {path} holds a {type(dbinfos).__name__}, expected dict[class -> records]")
        return cls(dbinfos, root)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def counts(self) -> dict[str, int]:
        """Objects per class."""
        return {name: len(objs) for name, objs in self.objects.items()}

    def points(self, obj: DbObject) -> np.ndarray:
        """(n, F) float32 points of ``obj``, xyz relative to its box centre (a fresh array, safe to modify)."""
        path = self.root / obj.path
        if obj.offset >= 0:
            data = self._maps.get(obj.path)
            if data is None:
                if obj.num_features <= 0:
                    raise ValueError(f"gt database: packed record of {obj.path} lacks num_point_features")
                data = np.memmap(path, dtype=np.float32, mode="r").reshape(-1, obj.num_features)
                self._maps[obj.path] = data
            return np.array(data[obj.offset: obj.offset + obj.num_points])
        raw = np.fromfile(path, dtype=np.float32)
        if obj.num_points == 0:
            return raw.reshape(0, max(obj.num_features, 3))
        if raw.size % obj.num_points:
            raise ValueError(
                f"gt database: {path} holds {raw.size} floats, not a multiple of its {obj.num_points} points"
            )
        return raw.reshape(obj.num_points, -1)

