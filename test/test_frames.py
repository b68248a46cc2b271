"""Frames: boxes are published in the cloud's frame or, through the transform source, in target_frame;
a cloud whose transform is missing is skipped, never mislabelled; sensor_to_model moves points into the
model's frame and the boxes back out, so a raised and tilted sensor gets its boxes where they belong.

tf2_ros is not on PyPI: the node's transform source is a seam (frames.TransformSource). Here it is
either the real default (tf2_ros when importable, else NoTransforms) or KnownTransforms, a fixed tree
with the same interface."""
from __future__ import annotations

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.context import Context
from rclpy.parameter import Parameter

from ros_helpers import Capture, StandInDetector, domain_id, header, kitti_points, stamp
from scripted_detector import BOX_SIZE, BOX_Z, cell_centre, scripted_detector, some_points
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_ros.detector_node import DetectorNode
from sparsekd_ros.frames import NoTransforms, TransformUnavailable, make_transforms, output_transform
from sparsekd_ros.pointcloud2 import points_to_cloud


class KnownTransforms:
    """A TransformSource over fixed transforms {(target, source): T_target_source}."""

    def __init__(self, known: dict[tuple[str, str], RigidTransform]):
        self.known, self.asked = known, []

    def lookup(self, target: str, source: str, stamp: TimeMsg, timeout_s: float) -> RigidTransform:
        self.asked.append((target, source, stamp))
        if (target, source) not in self.known:
            raise TransformUnavailable(f"no transform from '{source}' to '{target}' (not in the test's tree)")
        return self.known[(target, source)]


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id() + 15)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _node(context, det, transforms=None, **params):
    overrides = [Parameter(k, value=v) for k, v in {"log_period": 0.0, "warmup_runs": 0, **params}.items()]
    node = DetectorNode(detector=det, transforms=transforms, context=context, parameter_overrides=overrides)
    node.markers_pub = Capture()
    return node


def _boxes(markers, class_names=("Car", "Pedestrian", "Cyclist")):
    from sparsekd_ros.demo.client import markers_to_boxes

    boxes, _, labels = markers_to_boxes(markers, class_names)
    return boxes, labels


def test_output_frame_rules():
    t = stamp(1)
    assert output_transform(None, "", "velodyne", t, 0.1)[0] == "velodyne"
    frame, tr = output_transform(NoTransforms(), "velodyne", "velodyne", t, 0.1)
    assert frame == "velodyne" and tr.is_identity  # already there: no transform needed
    with pytest.raises(TransformUnavailable, match="tf2_ros is not installed"):
        output_transform(NoTransforms(), "base_link", "velodyne", t, 0.1)
    known = KnownTransforms({("base_link", "velodyne"): RigidTransform.from_xyz_rpy(1.2, 0, 1.73)})
    frame, tr = output_transform(known, "base_link", "velodyne", t, 0.1)
    assert (frame == "base_link" and tr.translation.tolist() == [1.2, 0, 1.73]
            and known.asked == [("base_link", "velodyne", t)])


def test_a_missing_transform_skips_the_cloud_and_never_mislabels(context):
    det = StandInDetector()
    node = _node(context, det, target_frame="map")  # the real default source: tf2_ros or NoTransforms
    try:
        if isinstance(node._transforms, NoTransforms):  # this machine: tf2_ros is not on PyPI
            assert make_transforms(node).reason == NoTransforms.reason
        velodyne = points_to_cloud(kitti_points()[:100], header=header(stamp(1), "velodyne"))
        assert node.process_cloud(velodyne) is None
        assert node.stats.no_transform == 1 and node.stats.processed == 0 and not node.markers_pub.msgs
        assert "no transform from 'velodyne' to 'map'" in node.stats.last_problem
        node.diagnostics_pub = Capture()
        node._publish_diagnostics()  # says why nothing is published, not "waiting for clouds"
        (status,) = node.diagnostics_pub.msgs[-1].status
        assert status.level == DiagnosticStatus.WARN and "no transform from 'velodyne' to 'map'" in status.message
        # a cloud already in the target frame needs no transform: published, in that frame
        in_map = points_to_cloud(kitti_points()[:100], header=header(stamp(2), "map"))
        assert node.process_cloud(in_map) is not None
        (markers,) = node.markers_pub.msgs
        assert all(m.header.frame_id == "map" and m.header.stamp == stamp(2) for m in markers.markers)
        assert node.stats.summary(2, 0)["skipped_no_transform"] == 1
    finally:
        node.destroy_node()


def test_boxes_are_transformed_into_the_target_frame_at_the_clouds_stamp(context):
    lidar_on_base = RigidTransform.from_xyz_rpy(1.2, 0.1, 1.9, 0, 0, np.radians(2))
    known = KnownTransforms({("base_link", "velodyne"): lidar_on_base})
    det = StandInDetector()
    node = _node(context, det, transforms=known, target_frame="base_link")
    try:
        pts = kitti_points()[:500]
        node.process_cloud(points_to_cloud(pts, header=header(stamp(3), "velodyne")))
        (markers,) = node.markers_pub.msgs
        assert all(m.header.frame_id == "base_link" and m.header.stamp == stamp(3) for m in markers.markers)
        boxes, _ = _boxes(markers)
        expected = lidar_on_base.apply_points(pts[:, :3].mean(axis=0, keepdims=True))[0]  # the stand-in's box centre
        np.testing.assert_allclose(boxes[0, :3], expected, atol=1e-3)
        assert boxes[0, 6] == pytest.approx(np.radians(2), abs=1e-4)
        assert known.asked[-1] == ("base_link", "velodyne", stamp(3))
    finally:
        node.destroy_node()


MOUNTING = (0.3, -0.1, 0.77, np.radians(2), np.radians(4), np.radians(10))  # raised 0.77 m, rolled, pitched, yawed


def test_a_tilted_raised_sensor_gets_its_boxes_back_where_they_belong(context, tmp_path):
    """Scripted boxes in the model frame, a known sensor_to_model and base_link = the (level) model frame
    lifted onto the robot: every box lands exactly where the model put it, moved into base_link."""
    det = scripted_detector(tmp_path, {"Car": 0.9, "Pedestrian": 0.8})
    sensor_to_model = RigidTransform.from_xyz_rpy(*MOUNTING)
    model_on_base = RigidTransform.from_xyz_rpy(1.0, 0.0, 1.73)  # base_link: level, on the ground
    known = KnownTransforms({("base_link", "lidar"): model_on_base @ sensor_to_model})
    node = _node(context, det, transforms=known, target_frame="base_link", sensor_to_model=list(MOUNTING),
                 score_threshold=0.5)
    plain = _node(context, det, sensor_to_model=list(MOUNTING), score_threshold=0.5)  # boxes in the sensor frame
    try:
        cloud = points_to_cloud(sensor_to_model.inverse().apply_points(some_points()), header=header(stamp(4), "lidar"))
        node.process_cloud(cloud)
        plain.process_cloud(cloud)
        boxes, labels = _boxes(node.markers_pub.msgs[-1])
        in_model = np.array([[*cell_centre(det, 8 + 8 * i, 10 + 8 * i), BOX_Z, *BOX_SIZE, 0.0] for i in (0, 1)])
        expected = model_on_base.apply_boxes(in_model)
        order = np.argsort(labels)
        np.testing.assert_allclose(boxes[order], expected, atol=2e-3)  # centres, extents and yaw: exact
        # In the tilted sensor's own frame the centres are exact; the boxes stay upright there.
        sensor_boxes, sensor_labels = _boxes(plain.markers_pub.msgs[-1])
        centres = sensor_to_model.inverse().apply_points(in_model[:, :3])
        np.testing.assert_allclose(sensor_boxes[np.argsort(sensor_labels), :3], centres, atol=2e-3)
    finally:
        node.destroy_node()
        plain.destroy_node()


def test_a_real_model_sees_the_same_scene_from_a_raised_tilted_sensor(context, shared_data):
    """The bundled cp_voxel_s on a real KITTI sweep, once as recorded and once as a sensor 0.77 m higher,
    rolled, pitched and yawed would see it: with sensor_to_model set, the boxes come back in base_link
    where the recorded sweep puts them."""
    from sparsekd_core.inference import load_detector

    det = load_detector("cp_voxel_s", device="cpu")
    sweep = np.fromfile(shared_data / "kitti_real/training/velodyne/avod_000004.bin", np.float32).reshape(-1, 4)
    sensor_to_model = RigidTransform.from_xyz_rpy(*MOUNTING)
    reference = _node(context, det, score_threshold=0.3)
    known = KnownTransforms({("base_link", "lidar"): sensor_to_model})  # base_link: the KITTI LiDAR frame
    mounted = _node(context, det, transforms=known, target_frame="base_link", sensor_to_model=list(MOUNTING),
                    score_threshold=0.3)
    try:
        reference.process_cloud(points_to_cloud(sweep, header=header(stamp(5), "base_link")))
        moved = sensor_to_model.inverse().apply_points(sweep)
        mounted.process_cloud(points_to_cloud(moved, header=header(stamp(5), "lidar")))
        want, want_labels = _boxes(reference.markers_pub.msgs[-1])
        got, got_labels = _boxes(mounted.markers_pub.msgs[-1])
        assert len(want) >= 3, "the reference sweep should show some cars"
        assert len(got) == len(want) and sorted(got_labels.tolist()) == sorted(want_labels.tolist())
        for box in want:  # each reference box has its twin
            d = np.linalg.norm(got[:, :3] - box[:3], axis=1)
            assert d.min() < 0.05, (box, got)
    finally:
        reference.destroy_node()
        mounted.destroy_node()


def test_the_log_names_the_models_ground_and_the_parameter_to_set(context, tmp_path, shared_data, capfd):
    det = scripted_detector(tmp_path, {"Car": 0.9})  # a checkpoint without meta ground_z, KITTI classes
    node = _node(context, det)
    try:
        sweep = np.fromfile(shared_data / "kitti_real/training/velodyne/avod_000004.bin", np.float32).reshape(-1, 4)
        sweep[:, 2] -= 0.77  # mounted 0.77 m higher than KITTI's LiDAR
        node.process_cloud(points_to_cloud(sweep, header=header(stamp(6), "lidar")))
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    assert "ground at z -1.73 m (not recorded in the checkpoint (meta 'ground_z'); assumed from its KITTI-layout" in err
    assert "[WARN]" in err and "mounting check: ground seen at z -2.52 m" in err
    assert "Set sensor_to_model z to +0.79" in err
