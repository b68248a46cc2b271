"""The KITTI 3D object benchmark on disk: file readers/writers and the camera <-> LiDAR conversions.

Layout (the official one; ``velodyne_reduced`` is the camera-FOV crop that mmdetection3d/OpenPCDet make)::

    ROOT/ImageSets/{train,val,test}.txt       one 6-digit frame id per line
    ROOT/training/velodyne/000008.bin          float32 (N, 4): x y z reflectance (LiDAR frame, metres, 0..1)
    ROOT/training/velodyne_reduced/000008.bin  same, cropped to the front camera's field of view
    ROOT/training/label_2/000008.txt           one object per line, rectified camera frame (see KittiObject)
    ROOT/training/calib/000008.txt             P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    ROOT/testing/...                           the same without label_2

Frames (the README of the benchmark's devkit):
- LiDAR (velodyne): x forward, y left, z up (REP 103, the project's box frame).
- Rectified camera: x right, y down, z forward. A label's ``location`` is the *bottom* centre of the box
  there, ``dimensions`` are (h, w, l) and ``rotation_y`` turns about the camera's y axis.

Every conversion between the two is defined here, once: :func:`camera_boxes_to_lidar` and
:func:`lidar_boxes_to_camera` (exact inverses of each other), :func:`boxes_to_image_bbox`,
:func:`kitti_difficulty`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sparsekd_core.geometry.boxes import BOX_EDGES, corners_3d, limit_period

#: Image size (width, height) in pixels of KITTI's colour camera (image_2); most frames are 1242 x 375.
KITTI_IMAGE_SIZE: tuple[int, int] = (1242, 375)

#: Official difficulty rules, in order easy, moderate, hard:
#: (minimum 2D box height in px, maximum occlusion level, maximum truncation).
DIFFICULTY_RULES: tuple[tuple[float, int, float], ...] = ((40.0, 0, 0.15), (25.0, 1, 0.30), (25.0, 2, 0.50))
DIFFICULTY_NAMES: tuple[str, ...] = ("easy", "moderate", "hard")

#: Classes the benchmark evaluates plus those its ignore rules use.
KITTI_CLASSES: tuple[str, ...] = (
    "Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare",
)


# --------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class KittiLayout:
    """Paths of one KITTI root. ``split`` is the folder: ``training`` or ``testing``."""

    root: Path
    split: str = "training"

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def split_dir(self) -> Path:
        return self.root / self.split

    def velodyne_dir(self, reduced: bool | None = None) -> Path:
        """``velodyne`` or ``velodyne_reduced``; ``None`` picks ``velodyne`` if it exists, else the reduced one."""
        if reduced is None:
            full = self.split_dir / "velodyne"
            return full if full.is_dir() or not (self.split_dir / "velodyne_reduced").is_dir() else (
                self.split_dir / "velodyne_reduced")
        return self.split_dir / ("velodyne_reduced" if reduced else "velodyne")

    def points_path(self, frame_id: str, reduced: bool | None = None) -> Path:
        return self.velodyne_dir(reduced) / f"{frame_id}.bin"

    def label_path(self, frame_id: str) -> Path:
        return self.split_dir / "label_2" / f"{frame_id}.txt"

    def calib_path(self, frame_id: str) -> Path:
        return self.split_dir / "calib" / f"{frame_id}.txt"

    def image_set_path(self, name: str) -> Path:
        """``name``: ``train``, ``val``, ``test`` (or any other list under ImageSets)."""
        return self.root / "ImageSets" / f"{name}.txt"


def frame_id(index: int) -> str:
    """KITTI's 6-digit frame id: 8 -> '000008'."""
    return f"{int(index):06d}"


# --------------------------------------------------------------------------------------------- points
def read_points(path: str | Path, num_features: int = 4) -> np.ndarray:
    """Read a velodyne ``.bin`` -> float32 (N, num_features): x y z reflectance for KITTI."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI point file {path} does not exist (expected ROOT/training/velodyne/ID.bin)")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % num_features:
        raise ValueError(
            f"{path}: {raw.size} float32 values do not split into rows of {num_features} features; "
            f"KITTI files have 4 (x y z reflectance), nuScenes 5: pass num_features to match the file"
        )
    return raw.reshape(-1, num_features)


def write_points(path: str | Path, points: np.ndarray) -> None:
    """Write float32 (N, F) points as a flat little-endian ``.bin`` (KITTI: F = 4)."""
    points = np.ascontiguousarray(points, dtype="<f4")
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, F>=3), got shape {points.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    points.tofile(path)


# --------------------------------------------------------------------------------------------- labels
@dataclass
class KittiObject:
    """One line of a ``label_2`` file (15 values, plus a score in result files).

    type: class name ('Car', 'Pedestrian', ..., 'DontCare').
    truncated: 0..1, fraction of the object outside the image.
    occluded: 0 fully visible, 1 partly occluded, 2 largely occluded, 3 unknown (-1 for DontCare).
    alpha: observation angle in [-pi, pi] (rotation_y minus the azimuth of the object seen from the camera).
    bbox: (4,) 2D box in image_2 pixels: left, top, right, bottom.
    dimensions: (3,) metres, h w l.
    location: (3,) metres, bottom centre in the rectified camera frame.
    rotation_y: radians about the camera y axis, in [-pi, pi].
    score: detection confidence (result files only).
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: float
    score: float | None = None

    def __post_init__(self):
        self.bbox = np.asarray(self.bbox, dtype=np.float64).reshape(4)
        self.dimensions = np.asarray(self.dimensions, dtype=np.float64).reshape(3)
        self.location = np.asarray(self.location, dtype=np.float64).reshape(3)
        self.truncated = float(self.truncated)
        self.occluded = int(self.occluded)
        self.alpha = float(self.alpha)
        self.rotation_y = float(self.rotation_y)

    @property
    def is_dontcare(self) -> bool:
        return self.type == "DontCare"

    @classmethod
    def from_line(cls, line: str) -> "KittiObject":
        """Parse one label line; raises ValueError naming the problem for malformed lines."""
        parts = line.split()
        if len(parts) not in (15, 16):
            raise ValueError(
                f"a KITTI label line has 15 values (16 with a score), got {len(parts)}: {line.strip()!r}"
            )
        try:
            v = [float(x) for x in parts[1:]]
        except ValueError as err:
            raise ValueError(f"non-numeric value in KITTI label line {line.strip()!r}: {err}") from None
        return cls(
            type=parts[0], truncated=v[0], occluded=int(v[1]), alpha=v[2], bbox=v[3:7],
            dimensions=v[7:10], location=v[10:13], rotation_y=v[13], score=v[14] if len(v) == 15 else None,
        )

    def to_line(self) -> str:
        """The label line, with the benchmark's 2-decimal formatting."""
        vals = [self.truncated, *self.bbox, *self.dimensions, *self.location, self.rotation_y]
        text = (
            f"{self.type} {vals[0]:.2f} {self.occluded:d} {self.alpha:.2f} "
            + " ".join(f"{x:.2f}" for x in vals[1:])
        )
        if self.score is not None:
            text += f" {self.score:.4f}"
        return text


def read_label(path: str | Path) -> list[KittiObject]:
    """Read a ``label_2`` file (or a result file with scores) -> objects in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI label file {path} does not exist (expected ROOT/training/label_2/ID.txt)")
    objects = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            objects.append(KittiObject.from_line(line))
        except ValueError as err:
            raise ValueError(f"{path}:{n}: {err}") from None
    return objects


def write_label(path: str | Path, objects: Iterable[KittiObject]) -> None:
    """Write objects as a ``label_2`` file (an empty file for a frame without objects, as KITTI does)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [obj.to_line() for obj in objects]
    path.write_text("".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------------------------- calib
def _homogeneous(mat: np.ndarray) -> np.ndarray:
    """3x3 or 3x4 -> 4x4 with the bottom row (0, 0, 0, 1)."""
    out = np.eye(4)
    out[: mat.shape[0], : mat.shape[1]] = mat
    return out


@dataclass
class Calibration:
    """A KITTI ``calib`` file. All matrices float64.

    P0..P3: (3, 4) projection matrices of the 4 cameras (rectified camera 0 frame -> pixels); image_2 uses P2.
    R0_rect: (3, 3) rectifying rotation of camera 0.
    Tr_velo_to_cam: (3, 4) LiDAR -> (unrectified) camera 0.
    Tr_imu_to_velo: (3, 4) IMU/GPS -> LiDAR.
    """

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray = field(default_factory=lambda: np.eye(3, 4))

    _SHAPES = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R0_rect": (3, 3),
               "Tr_velo_to_cam": (3, 4), "Tr_imu_to_velo": (3, 4)}

    def __post_init__(self):
        for name, shape in self._SHAPES.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.size != shape[0] * shape[1]:
                raise ValueError(f"calibration {name} needs {shape[0] * shape[1]} values, got {value.size}")
            setattr(self, name, value.reshape(shape))

    # -- matrices
    @property
    def velo_to_rect(self) -> np.ndarray:
        """(4, 4) LiDAR -> rectified camera 0."""
        return _homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam)

    @property
    def rect_to_velo(self) -> np.ndarray:
        """(4, 4) rectified camera 0 -> LiDAR (inverse of :attr:`velo_to_rect`)."""
        return np.linalg.inv(self.velo_to_rect)

    # -- point transforms
    def lidar_to_rect(self, points_xyz: np.ndarray) -> np.ndarray:
        """(N, 3+) LiDAR points -> (N, 3) float64 in the rectified camera frame."""
        pts = np.asarray(points_xyz, dtype=np.float64)[:, :3]
        m = self.velo_to_rect
        return pts @ m[:3, :3].T + m[:3, 3]

    def rect_to_lidar(self, points_rect: np.ndarray) -> np.ndarray:
        """(N, 3) rectified camera points -> (N, 3) float64 in the LiDAR frame."""
        pts = np.asarray(points_rect, dtype=np.float64)[:, :3]
        m = self.rect_to_velo
        return pts @ m[:3, :3].T + m[:3, 3]

    def rect_to_image(self, points_rect: np.ndarray, camera: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) rectified camera points -> ((N, 2) pixel (u, v), (N,) depth in metres along the camera's z).

        Points with depth <= 0 are behind the camera; their (u, v) are meaningless.
        """
        proj = getattr(self, f"P{camera}")
        pts = np.asarray(points_rect, dtype=np.float64)[:, :3]
        uvw = pts @ proj[:, :3].T + proj[:, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / uvw[:, 2:3]
        return uv, pts[:, 2]

    def lidar_to_image(self, points_xyz: np.ndarray, camera: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3+) LiDAR points -> ((N, 2) pixels, (N,) depth): see :meth:`rect_to_image`."""
        return self.rect_to_image(self.lidar_to_rect(points_xyz), camera)

    def fov_mask(self, points_xyz: np.ndarray, image_size: tuple[int, int] = KITTI_IMAGE_SIZE,
                 camera: int = 2) -> np.ndarray:
        """(N,) bool: the point projects into the image (what ``velodyne_reduced`` keeps)."""
        uv, depth = self.lidar_to_image(points_xyz, camera)
        w, h = image_size
        return (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)


def read_calib(path: str | Path) -> Calibration:
    """Read a KITTI ``calib/*.txt``: ``KEY: v v v ...`` lines, or ``KEY v v v ...`` as the tracking benchmark
    writes its ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI calib file {path} does not exist (expected ROOT/training/calib/ID.txt)")
    values: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":") if ":" in line else " ".join(line.split()).partition(" ")
        if not key.strip() or not rest.strip():
            continue
        try:
            values[key.strip()] = np.array([float(x) for x in rest.split()])
        except ValueError:
            raise ValueError(f"{path}: non-numeric value in calibration line {line.strip()!r}") from None
    # Some KITTI derivatives (the raw/tracking sets) spell these without the suffix.
    aliases = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
    for old, new in aliases.items():
        if old in values and new not in values:
            values[new] = values[old]
    missing = [k for k in ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam") if k not in values]
    if missing:
        raise ValueError(f"{path}: calibration lacks {', '.join(missing)}; is this a KITTI object calib file?")
    values.setdefault("Tr_imu_to_velo", np.eye(3, 4).ravel())
    return Calibration(**{k: values[k] for k in Calibration._SHAPES})


def write_calib(path: str | Path, calib: Calibration) -> None:
    """Write a calibration in KITTI's format (12-digit scientific notation)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}: " + " ".join(f"{x:.12e}" for x in getattr(calib, name).ravel())
             for name in Calibration._SHAPES]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------- image sets
def read_image_set(path: str | Path) -> list[str]:
    """``ImageSets/<split>.txt`` -> frame ids (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image set {path} does not exist (expected ROOT/ImageSets/{{train,val,test}}.txt)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_image_set(path: str | Path, frame_ids: Sequence[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{fid}\n" for fid in frame_ids))


# --------------------------------------------------------------------------------------------- conversions
def camera_boxes_to_lidar(location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray,
                          calib: Calibration) -> np.ndarray:
    """KITTI camera-frame labels -> (M, 7) float64 LiDAR boxes (x, y, z, dx, dy, dz, yaw).

    location: (M, 3) bottom centre, rectified camera frame; dimensions: (M, 3) h w l; rotation_y: (M,).
    The gravity centre is the bottom centre raised by h/2 along the camera's up axis (-y); then
    dx = l, dy = w, dz = h, and yaw = -rotation_y - pi/2 wrapped to [-pi, pi) (camera y points down,
    and rotation_y = 0 faces the camera's x axis, which is the LiDAR's -y axis).
    """
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    centre_rect = location.copy()
    centre_rect[:, 1] -= dims[:, 0] / 2
    centre = calib.rect_to_lidar(centre_rect)
    h, w, l = dims[:, 0], dims[:, 1], dims[:, 2]
    yaw = limit_period(-ry - np.pi / 2)
    return np.column_stack([centre, l, w, h, yaw])


def lidar_boxes_to_camera(boxes: np.ndarray, calib: Calibration
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, 7) LiDAR boxes -> (location (M, 3) bottom centre in rect camera, dimensions (M, 3) h w l,
    rotation_y (M,) in [-pi, pi)): the exact inverse of :func:`camera_boxes_to_lidar`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    centre_rect = calib.lidar_to_rect(boxes[:, :3])
    location = centre_rect.copy()
    location[:, 1] += boxes[:, 5] / 2
    dims = boxes[:, [5, 4, 3]].copy()
    ry = limit_period(-boxes[:, 6] - np.pi / 2)
    return location, dims, ry


def objects_to_lidar_boxes(objects: Sequence[KittiObject], calib: Calibration) -> np.ndarray:
    """Objects (DontCare included; their boxes are meaningless) -> (M, 7) float64 LiDAR boxes."""
    if len(objects) == 0:
        return np.zeros((0, 7))
    return camera_boxes_to_lidar(
        np.stack([o.location for o in objects]), np.stack([o.dimensions for o in objects]),
        np.array([o.rotation_y for o in objects]), calib,
    )


def observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI's alpha: rotation_y minus the azimuth of the object's centre seen from the camera, in [-pi, pi)."""
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    return limit_period(np.asarray(rotation_y, dtype=np.float64) - np.arctan2(location[:, 0], location[:, 2]))


def boxes_to_image_bbox(boxes: np.ndarray, calib: Calibration, image_size: tuple[int, int] | None = KITTI_IMAGE_SIZE,
                        camera: int = 2, near: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Project (M, 7) LiDAR boxes into the image -> (bbox (M, 4) left top right bottom, valid (M,) bool).

    The box is first cut by the plane ``depth = near`` (corners behind it are replaced by the points
    where the box's edges cross it), so boxes that reach behind the camera still project correctly.
    ``image_size`` (width, height) clips the result; ``None`` leaves it unclipped. ``valid`` is False
    for boxes entirely behind the camera or (when clipping) entirely outside the image.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    m = len(boxes)
    bbox = np.zeros((m, 4))
    if m == 0:
        return bbox, np.zeros(0, dtype=bool)
    corners = calib.lidar_to_rect(corners_3d(boxes).reshape(-1, 3)).reshape(m, 8, 3)
    proj = getattr(calib, f"P{camera}")
    edges = np.asarray(BOX_EDGES)
    a, b = corners[:, edges[:, 0]], corners[:, edges[:, 1]]  # (M, 12, 3)
    za, zb = a[..., 2], b[..., 2]
    crosses = (za - near) * (zb - near) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, (near - za) / (zb - za), 0.0)
    cut = a + t[..., None] * (b - a)
    candidates = np.concatenate([corners, cut], axis=1)  # (M, 20, 3)
    usable = np.concatenate([corners[..., 2] >= near, crosses], axis=1)
    uvw = candidates @ proj[:, :3].T + proj[:, 3]
    uv = uvw[..., :2] / np.maximum(uvw[..., 2:3], 1e-9)
    valid = usable.any(axis=1)
    u_lo = np.where(usable, uv[..., 0], np.inf).min(axis=1)
    v_lo = np.where(usable, uv[..., 1], np.inf).min(axis=1)
    u_hi = np.where(usable, uv[..., 0], -np.inf).max(axis=1)
    v_hi = np.where(usable, uv[..., 1], -np.inf).max(axis=1)
    bbox = np.where(valid[:, None], np.stack([u_lo, v_lo, u_hi, v_hi], axis=1), 0.0)
    if image_size is not None:
        w, h = image_size
        valid = valid & (bbox[:, 2] >= 0) & (bbox[:, 0] <= w - 1) & (bbox[:, 3] >= 0) & (bbox[:, 1] <= h - 1)
        bbox[:, [0, 2]] = np.clip(bbox[:, [0, 2]], 0, w - 1)
        bbox[:, [1, 3]] = np.clip(bbox[:, [1, 3]], 0, h - 1)
        bbox[~valid] = 0.0
    return bbox, valid


def truncation(boxes: np.ndarray, calib: Calibration, image_size: tuple[int, int] = KITTI_IMAGE_SIZE,
               camera: int = 2) -> np.ndarray:
    """(M,) fraction of each box's projected 2D extent that lies outside the image (1 when fully outside).

    KITTI's annotators judged truncation by eye; the area ratio of the clipped to the unclipped
    projected 2D box is the usual way to compute it for generated data.
    """
    full, ok_full = boxes_to_image_bbox(boxes, calib, None, camera)
    clipped, ok = boxes_to_image_bbox(boxes, calib, image_size, camera)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    full_area = area(full)
    frac = np.where(ok & ok_full & (full_area > 0), area(clipped) / np.maximum(full_area, 1e-9), 0.0)
    return np.clip(1.0 - frac, 0.0, 1.0)


def kitti_difficulty(bbox: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """Official difficulty from 2D box height, occlusion and truncation -> (M,) int64.

    0 easy (height >= 40 px, fully visible, truncation <= 0.15), 1 moderate (>= 25 px, occlusion <= 1,
    truncation <= 0.30), 2 hard (>= 25 px, occlusion <= 2, truncation <= 0.50), -1 none of them.
    """
    bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    height = bbox[:, 3] - bbox[:, 1]
    occluded = np.asarray(occluded).reshape(-1)
    truncated = np.asarray(truncated, dtype=np.float64).reshape(-1)
    out = np.full(len(bbox), -1, dtype=np.int64)
    # Walk from the hardest level to the easiest so the easiest level an object satisfies wins.
    for level in range(len(DIFFICULTY_RULES) - 1, -1, -1):
        min_h, max_occ, max_trunc = DIFFICULTY_RULES[level]
        ok = (height >= min_h) & (occluded <= max_occ) & (truncated <= max_trunc)
        out[ok] = level
    return out


def object_difficulty(objects: Sequence[KittiObject]) -> np.ndarray:
    """:func:`kitti_difficulty` for parsed label objects (DontCare -> -1)."""
    if len(objects) == 0:
        return np.zeros(0, dtype=np.int64)
    diff = kitti_difficulty(np.stack([o.bbox for o in objects]), np.array([o.occluded for o in objects]),
                            np.array([o.truncated for o in objects]))
    diff[np.array([o.is_dontcare for o in objects])] = -1
    return diff


def make_object(name: str, box_lidar: np.ndarray, calib: Calibration, *, bbox: np.ndarray | None = None,
                truncated: float = 0.0, occluded: int = 0, score: float | None = None,
                image_size: tuple[int, int] = KITTI_IMAGE_SIZE) -> KittiObject:
    """A label object for one LiDAR box: camera-frame location/dimensions/rotation_y, alpha and,
    unless given, the 2D box projected with P2 and clipped to the image."""
    box = np.asarray(box_lidar, dtype=np.float64).reshape(1, 7)
    loc, dims, ry = lidar_boxes_to_camera(box, calib)
    if bbox is None:
        bbox = boxes_to_image_bbox(box, calib, image_size)[0][0]
    return KittiObject(
        type=name, truncated=truncated, occluded=occluded, alpha=float(observation_angle(loc, ry)[0]),
        bbox=bbox, dimensions=dims[0], location=loc[0], rotation_y=float(ry[0]), score=score,
    )
