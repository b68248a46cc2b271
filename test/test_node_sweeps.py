"""The node with multi-sweep models and velocities: earlier clouds moved with the sensor's motion from tf2, from an
odometry topic, or (with neither) assumed static and said so once; velocities as arrows and on ~/velocities; an
imported nuScenes CenterPoint runs in the node on the real nuScenes sweep.

tf2_ros is not on PyPI: the transform source is the node's seam (frames.TransformSource), here a sensor that moves
with time (MovingSensor). Odometry goes through a real publisher and the node's subscription."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.executors import SingleThreadedExecutor
from scipy.spatial.transform import Rotation

from ros_helpers import CLASSES, Capture, StandInDetector, header, nuscenes_points
from test_frames import _node, context  # noqa: F401  (context: the same rclpy context fixture)
from sparsekd_core.detections import Detections
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_ros.frames import NoTransforms, TransformUnavailable
from sparsekd_ros.messages import VELOCITY_FIELDS
from sparsekd_ros.pointcloud2 import points_to_cloud, read_points_numpy
from sparsekd_ros.sweep_motion import OdometryMotion, StaticMotion, Tf2Motion

WORLD = np.array([[20.0, 3.0, 0.5], [20.0, 3.0, 1.5], [12.0, -6.0, 0.2], [13.0, -6.0, 0.2]])
T0 = 1_700_000_000


def _pose(t: float) -> RigidTransform:
    """The sensor in odom t seconds after T0: 12 m/s forward on a 0.4 rad/s left turn."""
    yaw = 0.4 * t
    return RigidTransform.from_xyz_rpy(12.0 * t * math.cos(yaw / 2), 12.0 * t * math.sin(yaw / 2), 1.8, yaw=yaw)


def _stamp(t: float) -> TimeMsg:
    ns = round(t * 1e9)
    return TimeMsg(sec=T0 + ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _cloud(t: float):
    """WORLD seen by the sensor at time t (x y z intensity), stamped t."""
    xyz = _pose(t).inverse().apply_points(WORLD)
    return points_to_cloud(np.column_stack([xyz, np.full(len(xyz), 0.5)]).astype(np.float32),
                           header=header(_stamp(t), "velodyne"))


class MovingSensor:
    """A TransformSource: velodyne in odom at each stamp, as tf2 would give it."""

    def __init__(self):
        self.asked = []

    def lookup(self, target: str, source: str, stamp: TimeMsg, timeout_s: float) -> RigidTransform:
        self.asked.append((target, source))
        if (target, source) != ("odom", "velodyne"):
            raise TransformUnavailable(f"no transform from '{source}' to '{target}'")
        return _pose(stamp.sec - T0 + stamp.nanosec * 1e-9)


class SweepDetector(StandInDetector):
    """The stand-in, as a model that merges 3 sweeps with a time_lag feature (and regresses velocity)."""

    def __init__(self, velocity=False):
        super().__init__(features=("x", "y", "z", "intensity", "time_lag"))
        self.cfg = types.SimpleNamespace(sweeps=3, head=types.SimpleNamespace(velocity=velocity))
        self.velocity = velocity

    def __call__(self, points):
        dets = super().__call__(points)
        if self.velocity:
            dets = Detections(dets.boxes, dets.scores, dets.labels, CLASSES, np.array([[3.0, -1.0]]))
        return dets


def _assert_merged_in_place(points, t):
    """Three sweeps of WORLD, all where the sensor at time t sees it, aged 0, 0.1 and 0.2 s."""
    current = _pose(t).inverse().apply_points(WORLD)
    assert points.shape == (12, 5)
    for k in range(3):
        np.testing.assert_allclose(points[4 * k:4 * k + 4, :3], current, atol=1e-3)
    np.testing.assert_allclose(points[:, 4], np.repeat([0.0, 0.1, 0.2], 4), atol=1e-6)


def test_tf2_moves_earlier_clouds_into_the_current_sensor_frame(context):
    det, tf = SweepDetector(), MovingSensor()
    node = _node(context, det, transforms=tf)
    try:
        assert isinstance(node._motion, Tf2Motion)
        for t in (0.0, 0.1, 0.2):
            assert node.process_cloud(_cloud(t)) is not None
        assert [len(p) for p in det.seen] == [4, 8, 12]
        _assert_merged_in_place(det.seen[-1], 0.2)
        assert tf.asked[-1] == ("odom", "velodyne")
        node.diagnostics_pub = Capture()
        node._publish_diagnostics()
        values = {kv.key: kv.value for kv in node.diagnostics_pub.msgs[-1].status[0].values}
        assert values["sweeps_merged"] == "3"
    finally:
        node.destroy_node()


def test_without_a_pose_the_cloud_is_detected_alone(context):
    det = SweepDetector()
    node = _node(context, det, transforms=MovingSensor(), sweep_fixed_frame="map")  # no map in the tree
    try:
        for t in (0.0, 0.1):
            assert node.process_cloud(_cloud(t)) is not None
        assert [len(p) for p in det.seen] == [4, 4]
    finally:
        node.destroy_node()


def test_odometry_moves_earlier_clouds_when_there_is_no_tf2(context):
    from nav_msgs.msg import Odometry

    det = SweepDetector()
    node = _node(context, det, transforms=NoTransforms(), odometry_topic="/odom")
    source = rclpy.create_node("odometry_source", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        assert isinstance(node._motion, OdometryMotion)
        pub = source.create_publisher(Odometry, "/odom", 10)
        for i in range(6):  # 20 Hz odometry over 0..0.25 s
            t = 0.05 * i
            pose = _pose(t)
            q = Rotation.from_matrix(pose.rotation).as_quat()
            msg = Odometry()
            msg.header = header(_stamp(t), "odom")
            msg.child_frame_id = "base_link"
            msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = pose.translation.tolist()
            (msg.pose.pose.orientation.x, msg.pose.pose.orientation.y, msg.pose.pose.orientation.z,
             msg.pose.pose.orientation.w) = q.tolist()
            pub.publish(msg)
        for _ in range(50):
            executor.spin_once(timeout_sec=0.05)
            if len(node._motion._history) == 6:
                break
        assert len(node._motion._history) == 6
        for t in (0.0, 0.1, 0.2):
            node.process_cloud(_cloud(t))
        _assert_merged_in_place(det.seen[-1], 0.2)
    finally:
        executor.remove_node(node)
        source.destroy_node()
        node.destroy_node()


def test_with_neither_the_sensor_is_assumed_static_and_the_node_says_so_once(context, capfd):
    det = SweepDetector()
    node = _node(context, det, transforms=NoTransforms())
    try:
        assert isinstance(node._motion, StaticMotion)
        for t in (0.0, 0.1):
            node.process_cloud(_cloud(t))
        earlier = det.seen[-1][4:, :3]
        np.testing.assert_allclose(earlier, _pose(0.0).inverse().apply_points(WORLD), atol=1e-4)  # not moved
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    assert err.count("merging sweeps as if the sensor stood still") == 1 and "odometry_topic" in err


def test_velocities_are_published_beside_the_detections_and_as_arrows(context):
    det = SweepDetector(velocity=True)
    node = _node(context, det, transforms=MovingSensor())
    node.velocities_pub = Capture()
    try:
        node.process_cloud(_cloud(0.0))
        (cloud,) = node.velocities_pub.msgs
        assert [f.name for f in cloud.fields] == list(VELOCITY_FIELDS) and cloud.header.frame_id == "velodyne"
        row = read_points_numpy(cloud, VELOCITY_FIELDS)[0]
        assert row[3:5].tolist() == [3.0, -1.0] and row[5] == 0 and row[6] == pytest.approx(0.9)
        (markers,) = node.markers_pub.msgs
        (arrow,) = [m for m in markers.markers if m.ns.endswith("/velocity")]
        start, end = arrow.points
        assert (end.x - start.x, end.y - start.y) == pytest.approx((3.0, -1.0))  # where it is in one second
    finally:
        node.destroy_node()


def test_an_imported_nuscenes_centerpoint_runs_in_the_node(context, tmp_path, shared_data):
    """The full-range, six-head nuScenes CenterPoint, imported from a reference-format checkpoint, loaded by the
    node and run on the real nuScenes sweep (x y z intensity 0..255 ring): boxes and velocities come out."""
    import torch

    from openpcdet_reference import (nuscenes_voxel, save_reference_checkpoint, to_reference_state,
                                     write_openpcdet_tree)
    from conftest import trained_looking
    from sparsekd_core.inference import load_detector
    from sparsekd_core.models.detector import build_detector
    from sparsekd_core.openpcdet.importer import import_checkpoint
    from sparsekd_core.openpcdet.model_config import model_config_from_openpcdet
    from sparsekd_core.openpcdet.yaml_config import load_openpcdet_config

    rel = "nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml"
    cfg_path = write_openpcdet_tree(tmp_path, {rel: nuscenes_voxel()})[rel]
    torch.manual_seed(0)
    model = trained_looking(build_detector(model_config_from_openpcdet(load_openpcdet_config(cfg_path), "nus",
                                                                       str(cfg_path)).model))
    ckpt = save_reference_checkpoint(tmp_path / "ref.pth", to_reference_state(model, intensity_max=255.0))
    import_checkpoint(ckpt, cfg_path, tmp_path / "nus.pth")
    det = load_detector(tmp_path / "nus.pth", device="cpu")
    node = _node(context, det, score_threshold=0.0, intensity_scale=1 / 255)
    node.velocities_pub = Capture()
    try:
        assert isinstance(node._sweeps.count, int) and node._sweeps.count == 10
        pts = nuscenes_points()
        msg = points_to_cloud(pts, fields=("x", "y", "z", "intensity", "ring"), header=header(_stamp(0.0), "lidar_top"))
        assert node.process_cloud(msg) is not None
        (markers,) = node.markers_pub.msgs
        assert any(m.ns.endswith("/boxes") for m in markers.markers)
        (vel,) = node.velocities_pub.msgs
        assert vel.width > 0 and np.isfinite(read_points_numpy(vel, VELOCITY_FIELDS)).all()
    finally:
        node.destroy_node()
