"""Message builders: markers that draw the right boxes, vision_msgs in both layouts, diagnostics."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Pose, Vector3
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from sparsekd_core.detections import Detections
from sparsekd_ros.messages import (
    class_color,
    detections_to_markers,
    detections_to_vision,
    diagnostic_array,
    label_info,
    load_vision_msgs,
    yaw_to_quaternion,
)
from sparsekd_ros.qos import latched_qos

CLASSES = ("Car", "Pedestrian", "Cyclist")
HEADER = Header(frame_id="velodyne", stamp=Time(sec=1700000000, nanosec=123456789))


def _dets() -> Detections:
    boxes = np.array(
        [[10.0, 2.0, -0.8, 4.2, 1.8, 1.5, 0.3], [5.0, -3.0, -0.9, 0.6, 0.7, 1.7, -1.2],
         [20.0, 0.0, -1.0, 1.8, 0.6, 1.6, 2.0]],
        np.float32,
    )
    return Detections(boxes, np.array([0.874, 0.5, 0.31]), np.array([0, 1, 0]), CLASSES)


def _yaw(q) -> float:
    return 2.0 * math.atan2(q.z, q.w)


def test_markers_delete_stale_then_draw_each_box_edges():
    dets = _dets()
    arr = detections_to_markers(dets, HEADER)
    assert arr.markers[0].action == Marker.DELETEALL
    lines = [m for m in arr.markers if m.type == Marker.LINE_LIST]
    texts = [m for m in arr.markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(lines) == 2 and len(texts) == 3 and len(arr.markers) == 6  # one LINE_LIST per class present
    for m in arr.markers:
        assert m.header.frame_id == "velodyne" and m.header.stamp.sec == 1700000000
        assert m.header.stamp.nanosec == 123456789
    assert [m.id for m in lines] == [0, 1]
    for marker in lines:
        boxes = dets.boxes[dets.labels == marker.id].astype(np.float64)
        pts = np.array([[p.x, p.y, p.z] for p in marker.points]).reshape(len(boxes), 24, 3)
        for box_pts, box in zip(pts, boxes):
            # Every edge has one of the box's extents as its length, four edges per extent.
            lengths = np.linalg.norm(box_pts[1::2] - box_pts[0::2], axis=1)
            for extent in box[3:6]:
                assert np.sum(np.isclose(lengths, extent, atol=1e-5)) >= 4
            np.testing.assert_allclose(box_pts.mean(axis=0), box[:3], atol=1e-5)  # symmetric about the centre
            # The long edges point along the heading.
            along = np.isclose(lengths, box[3])
            long_edge = (box_pts[1::2] - box_pts[0::2])[along][0]
            heading = math.atan2(long_edge[1], long_edge[0])
            assert math.isclose(math.cos(2 * (heading - box[6])), 1.0, abs_tol=1e-6)
    assert [m.text for m in texts] == ["Car 0.87", "Pedestrian 0.50", "Car 0.31"]
    assert [m.id for m in texts] == [0, 1, 2]
    for text, box in zip(texts, dets.boxes):
        assert text.pose.position.x == pytest.approx(box[0]) and text.pose.position.z > box[2] + box[5] / 2
    # Per-class colours differ.
    assert lines[0].color != lines[1].color and lines[0].color == class_color(0, "Car")
    assert len({(m.ns, m.id) for m in arr.markers}) == len(arr.markers)


def test_markers_for_no_detections_only_clear_and_survive_serialisation():
    arr = detections_to_markers(Detections.empty(CLASSES), HEADER)
    assert [m.action for m in arr.markers] == [Marker.DELETEALL]
    full = detections_to_markers(_dets(), HEADER, labels=False, lifetime_s=0.25)
    assert len(full.markers) == 3 and full.markers[1].lifetime.nanosec == 250_000_000
    back = deserialize_message(serialize_message(full), MarkerArray)
    assert [len(m.points) for m in back.markers] == [0, 48, 24]  # two Car boxes, one Pedestrian


def test_class_colors_are_stable_and_distinct():
    assert class_color(0, "Vehicle") == class_color(7, "car")
    assert class_color(3, "Truck") != class_color(4, "Bus")
    assert class_color(3, "Truck") == class_color(3, "Truck")


def _stub_vision_msgs(humble: bool) -> SimpleNamespace:
    """Plain-Python stand-in for vision_msgs.msg in the Humble+ (4.x, with LabelInfo) or the older (Foxy)
    layout, with the fields' default values as the generated messages have them."""

    class ObjectHypothesisWithPose:
        def __init__(self):
            if humble:
                self.hypothesis = SimpleNamespace(class_id="", score=0.0)
            else:
                self.id, self.score = "", 0.0
            self.pose = SimpleNamespace(pose=Pose(), covariance=np.zeros(36))

    class Detection3D:
        def __init__(self):
            self.header, self.results, self.id = Header(), [], ""
            self.bbox = SimpleNamespace(center=Pose(), size=Vector3())

    class Detection3DArray:
        def __init__(self):
            self.header, self.detections = Header(), []

    class VisionClass:
        def __init__(self):
            self.class_id, self.class_name = 0, ""

    class LabelInfo:
        def __init__(self):
            self.header, self.class_map, self.threshold = Header(), [], 0.0

    layout = dict(Detection3DArray=Detection3DArray, Detection3D=Detection3D,
                  ObjectHypothesisWithPose=ObjectHypothesisWithPose)
    if humble:
        layout.update(VisionClass=VisionClass, LabelInfo=LabelInfo)
    return SimpleNamespace(**layout)


@pytest.mark.parametrize("humble", [True, False])
def test_vision_detections_follow_the_vision_msgs_conventions(humble):
    dets = _dets()
    vm = _stub_vision_msgs(humble)
    out = detections_to_vision(dets, HEADER, vm)
    assert out.header.frame_id == "velodyne" and len(out.detections) == 3
    for d, box, label, score in zip(out.detections, dets.boxes, dets.labels, dets.scores):
        c = d.bbox.center
        assert (c.position.x, c.position.y, c.position.z) == pytest.approx(tuple(box[:3]), abs=1e-6)
        assert _yaw(c.orientation) == pytest.approx(box[6], abs=1e-6)
        assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == pytest.approx(tuple(box[3:6]), abs=1e-6)
        assert d.id == ""  # an identity across messages needs tracking: left empty
        hyp = d.results[0]
        got = (hyp.hypothesis.class_id, hyp.hypothesis.score) if humble else (hyp.id, hyp.score)
        assert got[0] == str(label) and got[1] == pytest.approx(score)  # the LabelInfo id, not the name
        assert hyp.pose.covariance[0] == -1.0 and not any(hyp.pose.covariance[1:])  # unknown covariance
        assert hyp.pose.pose == c
        assert d.header.stamp.sec == 1700000000
    if humble:
        info = label_info(dets.class_names, HEADER, 0.3, vm)
        assert [(c.class_id, c.class_name) for c in info.class_map] == [(0, "Car"), (1, "Pedestrian"), (2, "Cyclist")]
        assert info.threshold == pytest.approx(0.3) and info.header.frame_id == "velodyne"
        names = {c.class_id: c.class_name for c in info.class_map}
        assert [names[int(d.results[0].hypothesis.class_id)] for d in out.detections] == dets.names
    else:
        assert label_info(dets.class_names, HEADER, 0.3, vm) is None  # no LabelInfo before vision_msgs 4


def test_label_info_is_latched():
    q = latched_qos()
    assert q.durability == DurabilityPolicy.TRANSIENT_LOCAL and q.reliability == ReliabilityPolicy.RELIABLE
    assert q.depth == 1


def test_vision_msgs_absent_gives_none():
    if load_vision_msgs() is not None:  # the real messages (vision_msgs is not on PyPI: a ROS install)
        real = detections_to_vision(_dets(), HEADER)
        assert len(real.detections) == 3 and real.detections[0].id == ""
        assert real.detections[0].results[0].pose.covariance[0] == -1.0
        serialize_message(real)
        serialize_message(label_info(CLASSES, HEADER, 0.3))
    else:
        assert detections_to_vision(_dets(), HEADER) is None
        assert label_info(CLASSES, HEADER, 0.3) is None


def test_yaw_quaternion_roundtrip():
    for yaw in (-3.0, -0.5, 0.0, 1.0, 3.1):
        q = yaw_to_quaternion(yaw)
        assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0)
        assert math.isclose(_yaw(q), yaw, abs_tol=1e-9)


def test_diagnostics_values_and_level():
    arr = diagnostic_array(
        HEADER, "sparsekd_detector: pipeline", "cpu", DiagnosticStatus.WARN, "drops",
        {"frames": 12, "inference_ms_median": 41.23456, "model": "cp_voxel_s"},
    )
    status = arr.status[0]
    assert status.level == DiagnosticStatus.WARN and status.hardware_id == "cpu"
    assert {kv.key: kv.value for kv in status.values} == {
        "frames": "12", "inference_ms_median": "41.235", "model": "cp_voxel_s"
    }
    serialize_message(arr)
