"""Writing simulated frames as KITTI and Waymo datasets (the layouts of kitti_format.py / waymo_format.py).

KITTI: one fixed, KITTI-like calibration: the colour camera (image_2, 1242 x 375, f = 721.5 px) looks
forward from 0.27 m ahead of and 0.08 m below the origin of the points' frame, axis-aligned (R0_rect = I),
so 2D boxes, truncation and difficulty come from real projections. Labels are written for objects with at
least one LiDAR return: by default (``labels="all"``) every one around the sensor, the ones the camera does
not see with a zero-size 2D box and truncation 1, which the KITTI metric ignores (so the metric still scores
the camera's view) while a 360-degree model trains on all of them; ``labels="camera"`` writes only what the
camera sees, as KITTI's annotators did. The velodyne file keeps the full 360 degree scan.
Class names: Car, Van, Truck, Pedestrian, Cyclist (actors.KITTI_NAMES).
Occlusion level from the fraction of the object's LiDAR rays blocked by something in front:
0 (<= 20 %), 1 (<= 60 %), 2 (more). No DontCare regions are written.

Waymo: per-segment ``NNNN.npy`` (x y z intensity elongation NLZ_flag=-1) and infos; class names
Vehicle (car, van, truck), Pedestrian, Cyclist; ``num_points_in_gt`` is the true number of returns
off the object; ``difficulty`` is 0 (unset: LEVEL_2 then follows from the point count).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsekd_core.data import kitti_format as kf
from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.sim.actors import KITTI_NAMES, WAYMO_NAMES
from sparsekd_core.data.sim.scene import SimFrame
from sparsekd_core.data.sim.sensor import SensorPreset

#: KITTI-like intrinsics of the 4 cameras (P0..P3: cameras 0-3, image_2 is P2).
_FOCAL, _CX, _CY = 721.5377, 609.5593, 172.854
_P_TX = (0.0, -387.5744, 44.85728, -339.5242)  # f * baseline offsets of cameras 0..3 (pixels)
OCCLUSION_LEVELS = (0.2, 0.6)  # blocked-ray fractions separating KITTI occlusion levels 0 / 1 / 2


LABEL_REGIONS = ("all", "camera")


def sim_calibration(preset: SensorPreset, frame_height: float | None = None) -> kf.Calibration:
    """The fixed calibration of simulated KITTI data: the camera sits 0.08 m below the LiDAR at its nominal
    height, expressed in the frame the points are written in (``frame_height`` above the road; default: the
    preset's nominal frame)."""
    if frame_height is None:
        frame_height = preset.nominal_frame_height
    cam_in_frame = np.array([0.27, 0.0, preset.mount_height - frame_height - 0.08])  # camera position, output frame
    rot = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # LiDAR axes -> camera axes
    tr = np.column_stack([rot, -rot @ cam_in_frame])
    proj = [np.array([[_FOCAL, 0.0, _CX, tx], [0.0, _FOCAL, _CY, 0.0], [0.0, 0.0, 1.0, 0.0]]) for tx in _P_TX]
    return kf.Calibration(P0=proj[0], P1=proj[1], P2=proj[2], P3=proj[3], R0_rect=np.eye(3), Tr_velo_to_cam=tr,
                          Tr_imu_to_velo=np.column_stack([np.eye(3), [-0.81, 0.32, -0.8]]))


def occlusion_level(blocked_fraction: np.ndarray) -> np.ndarray:
    """KITTI occlusion level (0 fully visible, 1 partly, 2 largely occluded) from the blocked-ray fraction."""
    return np.digitize(np.asarray(blocked_fraction, np.float64), OCCLUSION_LEVELS, right=True).astype(np.int64)


def kitti_objects(frame: SimFrame, calib: kf.Calibration, image_size: tuple[int, int] = kf.KITTI_IMAGE_SIZE,
                  labels: str = "all") -> tuple[list[kf.KittiObject], np.ndarray]:
    """Label objects of a frame -> (objects, (K,) index of each into the frame's labels).

    labels: "camera" keeps what the camera sees; "all" keeps every object with a return, out-of-view ones
    with a zero 2D box and truncation 1 (see the module docstring).
    """
    if labels not in LABEL_REGIONS:
        raise ValueError(f"labels must be one of {LABEL_REGIONS}, got {labels!r}")
    if len(frame) == 0:
        return [], np.zeros(0, np.int64)
    bbox, valid = kf.boxes_to_image_bbox(frame.boxes, calib, image_size)
    centre_depth = calib.lidar_to_rect(frame.boxes[:, :3])[:, 2]
    in_view = valid & (centre_depth > 0)
    keep = np.flatnonzero((in_view if labels == "camera" else True) & (frame.num_points > 0))
    trunc = np.where(in_view[keep], kf.truncation(frame.boxes[keep], calib, image_size), 1.0)
    bbox = np.where(in_view[:, None], bbox, 0.0)
    occ = occlusion_level(frame.occlusion[keep])
    loc, dims, ry = kf.lidar_boxes_to_camera(frame.boxes[keep], calib)
    alpha = kf.observation_angle(loc, ry)
    objects = [
        kf.KittiObject(type=KITTI_NAMES[str(frame.kinds[i])], truncated=float(t), occluded=int(o), alpha=float(a),
                       bbox=bbox[i], dimensions=d, location=c, rotation_y=float(r))
        for i, t, o, a, d, c, r in zip(keep, trunc, occ, alpha, dims, loc, ry)
    ]
    return objects, keep


class KittiWriter:
    """Writes frames into ROOT/training/{velodyne,label_2,calib} and the ImageSets lists."""

    def __init__(self, root: str | Path, preset: SensorPreset, frame_height: float | None = None,
                 labels: str = "all"):
        self.layout = kf.KittiLayout(Path(root))
        self.calib = sim_calibration(preset, frame_height)
        self.labels = labels
        self._calib_text: str | None = None

    def write(self, frame_id: str, frame: SimFrame) -> int:
        """Write one frame; returns the number of labelled objects."""
        kf.write_points(self.layout.points_path(frame_id, reduced=False), frame.points[:, :4])
        objects, _ = kitti_objects(frame, self.calib, labels=self.labels)
        kf.write_label(self.layout.label_path(frame_id), objects)
        path = self.layout.calib_path(frame_id)
        if self._calib_text is None:  # the same file for every frame: format it once
            kf.write_calib(path, self.calib)
            self._calib_text = path.read_text()
        else:
            path.write_text(self._calib_text)
        return len(objects)

    def finish(self, splits: dict[str, list[str]]) -> None:
        for name, ids in splits.items():
            kf.write_image_set(self.layout.image_set_path(name), ids)


class WaymoWriter:
    """Writes frames into OpenPCDet's processed Waymo layout.

    :meth:`write` writes a frame's points and returns its info (safe to call in worker processes);
    :meth:`add` collects infos and :meth:`finish` writes the per-segment and per-split infos.
    """

    def __init__(self, root: str | Path):
        self.layout = wf.WaymoLayout(Path(root))
        self._segments: dict[str, list[dict]] = {}
        self._split_of: dict[str, str] = {}

    def write(self, segment: str, sample_idx: int, frame: SimFrame, obj_prefix: str = "") -> dict:
        """Write one frame's ``NNNN.npy``; returns its frame info (``annos`` with Waymo class names)."""
        wf.write_frame_points(self.layout.frame_path(segment, sample_idx), frame.points)
        names = [WAYMO_NAMES[str(k)] for k in frame.kinds]
        ids = [f"{obj_prefix}{int(t)}" for t in frame.track_ids]
        annos = wf.make_annos(names, frame.boxes, frame.num_points, obj_ids=ids)
        info = wf.make_frame_info(segment, sample_idx, frame.pose, annos, num_points=len(frame.points))
        info["timestamp_micros"] = int(round(frame.timestamp * 1e6))
        return info

    def add(self, segment: str, split: str, info: dict) -> None:
        self._segments.setdefault(segment, []).append(info)
        self._split_of[segment] = split

    def finish(self) -> dict[str, list[str]]:
        """Write the per-segment and per-split infos and ImageSets; returns {split: segments}."""
        splits: dict[str, list[str]] = {"train": [], "val": []}
        for segment, infos in self._segments.items():
            infos.sort(key=lambda info: info["point_cloud"]["sample_idx"])
            wf.write_segment_infos(self.layout, segment, infos)
            splits.setdefault(self._split_of[segment], []).append(segment)
        for split, segments in splits.items():
            wf.write_infos(self.layout, split, [info for s in segments for info in self._segments[s]])
            wf.write_image_set(self.layout.image_set_path(split), segments)
        return splits
