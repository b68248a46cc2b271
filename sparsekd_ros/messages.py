"""Detections (numpy) -> ROS messages: RViz markers, vision_msgs detections, diagnostics.

Only message building lives here (no node, no threads), so the node, the offline bag tool and the
tests share one definition of what a published detection looks like.
"""
from __future__ import annotations

import copy
import importlib
import math
from types import ModuleType
from typing import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sparsekd_core.detections import Detections
from sparsekd_core.geometry.boxes import BOX_EDGES, corners_3d
from sparsekd_core.viz.colors import class_color as rgb_of_class
from sparsekd_ros.pointcloud2 import create_cloud, make_fields

__all__ = [
    "class_color",
    "yaw_to_quaternion",
    "detections_to_markers",
    "VELOCITY_FIELDS",
    "detections_to_velocity_cloud",
    "load_vision_msgs",
    "detections_to_vision",
    "label_info",
    "UNKNOWN_COVARIANCE",
    "diagnostic_array",
]

# Line pairs of corner indices, flattened: LINE_LIST takes consecutive point pairs.
_EDGE_INDEX = np.array(BOX_EDGES, dtype=np.int64).reshape(-1)


def class_color(label: int, name: str, alpha: float = 1.0) -> ColorRGBA:
    """A stable colour per class: fixed for Vehicle/Car, Pedestrian, Cyclist; a palette by label otherwise."""
    r, g, b = rgb_of_class(name, label)
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


def yaw_to_quaternion(yaw: float) -> Quaternion:
    """Rotation about +z by ``yaw`` radians."""
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def _duration(seconds: float) -> Duration:
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def detections_to_markers(
    dets: Detections,
    header: Header,
    namespace: str = "sparsekd",
    line_width: float = 0.06,
    text_size: float = 0.7,
    lifetime_s: float = 0.0,
    labels: bool = True,
    min_speed: float = 0.2,
) -> MarkerArray:
    """One MarkerArray per frame for RViz.

    First a DELETEALL marker (so boxes of the previous frame vanish even when fewer are found),
    then per class present one LINE_LIST holding the 12 edges of each of its boxes (ns
    ``<namespace>/boxes``, id = class index, box after box in detection order, 24 points each) in
    the class colour and, with ``labels``, per box a TEXT_VIEW_FACING "Car 0.87" above it (ns
    ``<namespace>/labels``, id = box index). A model that regresses velocity adds per moving box (at least
    ``min_speed`` m/s) an ARROW from the top of the box centre to where it will be in one second (ns
    ``<namespace>/velocity``, id = box index, class colour). All markers carry ``header`` (the cloud's frame and
    stamp). ``lifetime_s`` 0 keeps markers until the next frame deletes them.
    """
    markers = [Marker(header=header, ns=namespace, id=0, action=Marker.DELETEALL)]
    if len(dets) == 0:
        return MarkerArray(markers=markers)
    lifetime = _duration(lifetime_s)
    identity = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
    edges = corners_3d(dets.boxes)[:, _EDGE_INDEX]  # (M, 24, 3): LINE_LIST point pairs
    for label in np.unique(dets.labels).tolist():
        segment_points = edges[dets.labels == label].reshape(-1, 3).tolist()
        markers.append(
            Marker(
                header=header,
                ns=f"{namespace}/boxes",
                id=int(label),
                type=Marker.LINE_LIST,
                action=Marker.ADD,
                pose=Pose(orientation=identity),
                scale=Vector3(x=line_width, y=0.0, z=0.0),
                color=class_color(label, dets.class_names[label]),
                lifetime=lifetime,
                points=[Point(x=p[0], y=p[1], z=p[2]) for p in segment_points],
            )
        )
    if labels:
        # Labels are many: copy one template (a shallow copy shares the unchanged sub-messages)
        # instead of building every default field of a Marker per box.
        template = Marker(
            header=header, ns=f"{namespace}/labels", type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
            scale=Vector3(x=0.0, y=0.0, z=text_size), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), lifetime=lifetime,
        )
        names = dets.names
        for i, (box, score) in enumerate(zip(dets.boxes.tolist(), dets.scores.tolist())):
            text = copy.copy(template)
            text.id = i
            text.pose = Pose(position=Point(x=box[0], y=box[1], z=box[2] + box[5] / 2 + text_size),
                             orientation=identity)
            text.text = f"{names[i]} {score:.2f}"
            markers.append(text)
    if dets.velocities is not None:
        markers += _velocity_arrows(dets, header, f"{namespace}/velocity", line_width, lifetime, min_speed)
    return MarkerArray(markers=markers)


def _velocity_arrows(dets: Detections, header: Header, namespace: str, width: float, lifetime: Duration,
                     min_speed: float) -> list[Marker]:
    """One ARROW per box moving at least ``min_speed`` m/s: from its top centre to there + v x 1 s."""
    arrows = []
    identity = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
    for i, (box, v) in enumerate(zip(dets.boxes.tolist(), dets.velocities.tolist())):
        if math.hypot(v[0], v[1]) < min_speed:
            continue
        z = box[2] + box[5] / 2
        arrows.append(Marker(
            header=header, ns=namespace, id=i, type=Marker.ARROW, action=Marker.ADD,
            pose=Pose(orientation=identity),
            scale=Vector3(x=2 * width, y=4 * width, z=4 * width),  # shaft and head diameters, head length
            color=class_color(int(dets.labels[i]), dets.names[i]), lifetime=lifetime,
            points=[Point(x=box[0], y=box[1], z=z), Point(x=box[0] + v[0], y=box[1] + v[1], z=z)],
        ))
    return arrows


#: Fields of the velocity cloud: box centre, velocity, and the box's class index and score.
VELOCITY_FIELDS = ("x", "y", "z", "vx", "vy", "class_id", "score")


def detections_to_velocity_cloud(dets: Detections, header: Header) -> PointCloud2 | None:
    """The boxes' velocities as a sensor_msgs/PointCloud2, point i = box i of ``~/detections``; None for a
    model without velocity.

    vision_msgs/Detection3D (results, bbox, id) has no field for a velocity, so it travels beside it: same header,
    same order, float32 fields :data:`VELOCITY_FIELDS` (box centre x y z, vx vy in m/s in the header's frame,
    class index as in ``class_id`` of the detections, score); any PointCloud2 reader gets them by name and RViz
    shows them as points.
    """
    if dets.velocities is None:
        return None
    columns = np.column_stack([dets.boxes[:, :3], dets.velocities, dets.labels.astype(np.float32), dets.scores])
    return create_cloud(header, make_fields(VELOCITY_FIELDS), columns.astype(np.float32))


def load_vision_msgs() -> ModuleType | None:
    """The ``vision_msgs.msg`` module, or None when vision_msgs is not installed (it is optional)."""
    try:
        return importlib.import_module("vision_msgs.msg")
    except ImportError:
        return None


#: ROS's mark for an unknown covariance (sensor_msgs/Imu's convention): -1 in the first element.
UNKNOWN_COVARIANCE = (-1.0,) + (0.0,) * 35


def detections_to_vision(dets: Detections, header: Header, vision_msgs: ModuleType | None = None):
    """vision_msgs/Detection3DArray for ``dets``; None when vision_msgs is not installed.

    One Detection3D per box: bbox centre = box centre with yaw as a z rotation, size = (dx, dy, dz),
    one hypothesis whose ``class_id`` is the class index as a string, the id that :func:`label_info`
    maps to the class name, with the score and the box pose; the pose covariance is marked unknown
    (:data:`UNKNOWN_COVARIANCE`). ``Detection3D.id`` stays empty: vision_msgs reserves it for an
    object's identity across messages, which needs tracking. Works with the Humble+ layout
    (``results[].hypothesis.class_id/score``) and the older one (``results[].id/score``).
    """
    vm = vision_msgs if vision_msgs is not None else load_vision_msgs()
    if vm is None:
        return None
    out = vm.Detection3DArray()
    out.header = header
    detections = []
    for box, score, label in zip(dets.boxes.tolist(), dets.scores.tolist(), dets.labels.tolist()):
        pose = Pose(position=Point(x=box[0], y=box[1], z=box[2]), orientation=yaw_to_quaternion(box[6]))
        det = vm.Detection3D()
        det.header = header
        det.bbox.center = pose
        det.bbox.size = Vector3(x=box[3], y=box[4], z=box[5])
        hyp = vm.ObjectHypothesisWithPose()
        if hasattr(hyp, "hypothesis"):  # Humble and later
            hyp.hypothesis.class_id = str(label)
            hyp.hypothesis.score = float(score)
        else:  # Foxy / Galactic
            hyp.id = str(label)
            hyp.score = float(score)
        hyp.pose.pose = pose
        hyp.pose.covariance = UNKNOWN_COVARIANCE
        det.results = [hyp]
        detections.append(det)
    out.detections = detections
    return out


def label_info(class_names: Sequence[str], header: Header, threshold: float, vision_msgs: ModuleType | None = None):
    """vision_msgs/LabelInfo mapping each class index (the detections' ``class_id``) to its name;
    ``threshold`` is the detector's default score threshold. None when vision_msgs (4.x, Humble and
    later) is not installed."""
    vm = vision_msgs if vision_msgs is not None else load_vision_msgs()
    if vm is None or not hasattr(vm, "LabelInfo"):
        return None
    out = vm.LabelInfo()
    out.header = header
    classes = []
    for i, name in enumerate(class_names):
        c = vm.VisionClass()
        c.class_id, c.class_name = i, str(name)
        classes.append(c)
    out.class_map = classes
    out.threshold = float(threshold)
    return out


def diagnostic_array(
    header: Header,
    name: str,
    hardware_id: str,
    level: int | bytes,
    message: str,
    values: Mapping[str, object],
) -> DiagnosticArray:
    """A DiagnosticArray with one status; ``values`` become key/value pairs (floats with 3 decimals).

    ``level``: DiagnosticStatus.OK / WARN / ERROR / STALE (the constants are bytes; ints 0..3 work too).
    """
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    status = DiagnosticStatus(
        level=level if isinstance(level, bytes) else bytes([int(level)]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=header, status=[status])
