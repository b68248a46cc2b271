"""The detector node: in-process with a stand-in detector (fast, exact) or a real Detector with scripted
scores, then the real node in a subprocess with a real (untrained) model, real frames, bad clouds and a
20 Hz stream."""
from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointField
from visualization_msgs.msg import MarkerArray

from bundled_models import PILLAR_STUDENT_OPERATING_POINT
from ros_helpers import (
    Capture,
    NodeProcess,
    RosClient,
    StandInDetector,
    domain_id,
    header,
    kitti_points,
    nuscenes_points,
    ros_env,
    stamp,
    waymo_points,
)
from scripted_detector import scripted_detector, some_points
from sparsekd_core.thresholds import ScoreThresholds
from sparsekd_ros.detector_node import DetectorNode
from sparsekd_ros.pipeline_stats import STAGES
from sparsekd_ros.pointcloud2 import points_to_cloud


# ----------------------------------------------------------------------------- in-process, stand-in detector
@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id())
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_node(context, detector, **overrides) -> tuple[DetectorNode, Capture]:
    params = [Parameter(k, value=v) for k, v in {"log_period": 0.0, **overrides}.items()]
    node = DetectorNode(detector=detector, context=context, parameter_overrides=params)
    capture = Capture()
    node.markers_pub = capture
    return node, capture


def test_fields_mapped_cropped_and_header_kept(context):
    det = StandInDetector()
    node, capture = make_node(context, det, intensity_field="reflectance", intensity_scale=0.5, max_range=10.0,
                              min_range=1.5)
    try:
        pts = np.array([[1, 2, 0, 8], [30, 0, 0, 4], [-6, 7, 1, 2], [np.nan, 0, 0, 1], [1.2, -0.8, -0.6, 0]],
                       np.float32)
        msg = points_to_cloud(pts, ("x", "y", "z", "reflectance"), header(stamp(7), "velodyne"))
        timings = node.process_cloud(msg)
        assert set(STAGES) <= set(timings) and all(v >= 0 for v in timings.values())
        got = det.seen[-1]
        # the 30 m point and the one 1.44 m away (inside min_range: the robot's own roof) cropped, NaN row dropped
        np.testing.assert_allclose(got, [[1, 2, 0, 4], [-6, 7, 1, 1]])
        markers = capture.msgs[-1].markers
        assert markers[0].action == markers[0].DELETEALL and len(markers) == 3
        assert all(m.header.frame_id == "velodyne" and m.header.stamp == stamp(7) for m in markers)  # the cloud's
        assert markers[2].text == "Car 0.90"
        assert node.stats.processed == 1 and node.stats.last_points == 2
    finally:
        node.destroy_node()


def test_bad_clouds_are_skipped_with_a_reason(context):
    det = StandInDetector()
    node, capture = make_node(context, det)
    try:
        good = points_to_cloud(kitti_points()[:100], header=header(stamp(1)))
        no_x = points_to_cloud(np.zeros((5, 3), np.float32), ("y", "z", "intensity"))
        short = points_to_cloud(np.zeros((5, 4), np.float32))
        short.data = short.data[:-3]
        empty = points_to_cloud(np.zeros((0, 4), np.float32))
        for bad, reason in ((no_x, "no 'x' field"), (short, "data holds 77 bytes"), (empty, "empty cloud")):
            assert node.process_cloud(bad) is None
            assert reason in node.stats.last_problem
        assert node.stats.malformed == 3 and not capture.msgs and not det.seen
        assert node.process_cloud(good) is not None and len(capture.msgs) == 1
    finally:
        node.destroy_node()


def test_thresholds_from_parameters_and_at_run_time(context):
    det = StandInDetector()
    node, _ = make_node(context, det, score_threshold=0.4, class_score_thresholds="Car:0.6, Truck:0.2")
    try:
        assert det.thresholds == ScoreThresholds(0.4, {"Car": 0.6})  # Truck: not a class of the model
        ok = node.set_parameters([Parameter("score_threshold", value=0.7),
                                  Parameter("class_score_thresholds", value=["Pedestrian:0.2"])])
        assert all(r.successful for r in ok)
        assert det.thresholds == ScoreThresholds(0.7, {"Pedestrian": 0.2})
        bad = node.set_parameters([Parameter("class_score_thresholds", value="Pedestrian=0.2")])
        assert not bad[0].successful and "ClassName:threshold" in bad[0].reason
        assert not node.set_parameters([Parameter("score_threshold", value=1.5)])[0].successful
        assert not node.set_parameters([Parameter("model", value="other")])[0].successful  # read-only
        assert det.thresholds == ScoreThresholds(0.7, {"Pedestrian": 0.2})
        assert node.params.class_score_thresholds == (("Pedestrian", 0.2),)
    finally:
        node.destroy_node()


def _assert_published_the_detectors_boxes(capture, reference, thresholds: ScoreThresholds):
    """The node's last markers label the boxes ``reference`` finds on kitti_points() at ``thresholds``."""
    reference.thresholds = thresholds
    want = reference(kitti_points())
    assert len(want) > 0
    texts = sorted(m.text for m in capture.msgs[-1].markers if m.type == m.TEXT_VIEW_FACING)
    assert texts == sorted(f"{name} {score:.2f}" for name, score in zip(want.names, want.scores))


def test_backend_parameter_runs_the_model_in_onnxruntime(context):
    """backend:=onnxruntime: the node loads the bundled student on onnxruntime and publishes torch's boxes."""
    from sparsekd_core.inference import load_detector

    params = [Parameter(k, value=v) for k, v in
              {"model": "cp_pillar_v0.64", "device": "cpu", "backend": "onnxruntime", "score_threshold": 0.3,
               "warmup_runs": 1, "log_period": 0.0}.items()]
    node = DetectorNode(context=context, parameter_overrides=params)
    capture = Capture()
    node.markers_pub = capture
    try:
        assert node.det.backend == "onnxruntime" and node.params.backend == "onnxruntime"
        cloud = points_to_cloud(kitti_points(), ("x", "y", "z", "intensity"), header(stamp(7)))
        node.process_cloud(cloud)
        # the bundled student's recorded operating point, which the node applies by default
        operating = ScoreThresholds(0.3, PILLAR_STUDENT_OPERATING_POINT)
        assert node.det.thresholds == operating
        _assert_published_the_detectors_boxes(capture, load_detector("cp_pillar_v0.64", "cpu"), operating)
    finally:
        node.destroy_node()


def test_an_anchor_head_checkpoint_runs_in_the_node(context, tmp_path):
    """model:=<a PointPillars student checkpoint>: the node loads it itself and publishes the Detector's boxes."""
    from sparsekd_core.checkpoint import write_untrained_checkpoint
    from sparsekd_core.inference import load_detector

    ckpt = str(write_untrained_checkpoint("pointpillar_s_sim", tmp_path / "pp.pth", seed=4))
    params = [Parameter(k, value=v) for k, v in
              {"model": ckpt, "device": "cpu", "score_threshold": 0.0, "warmup_runs": 1, "log_period": 0.0}.items()]
    node = DetectorNode(context=context, parameter_overrides=params)
    capture = Capture()
    node.markers_pub = capture
    try:
        assert node.det.cfg.is_anchor
        node.process_cloud(points_to_cloud(kitti_points(), ("x", "y", "z", "intensity"), header(stamp(9))))
        _assert_published_the_detectors_boxes(capture, load_detector(ckpt, "cpu"), ScoreThresholds(0.0))
    finally:
        node.destroy_node()


def test_a_min_range_at_or_beyond_the_max_range_is_refused(context):
    """Both crops set so that no point is left: refused at start-up, naming both."""
    with pytest.raises(ValueError, match=r"min_range \(12 m\) must be below max_range \(12 m\)"):
        make_node(context, StandInDetector(), min_range=12.0, max_range=12.0)
    node, _ = make_node(context, StandInDetector(), min_range=2.5, max_range=0.0)  # 0: no max_range, all is fine
    node.destroy_node()


def test_unknown_backend_is_refused_naming_the_choices(context):
    with pytest.raises(ValueError, match="torch, onnxruntime, tensorrt"):
        make_node(context, StandInDetector(), backend="openvino")


def _labelled(markers) -> dict[str, float]:
    texts = [m.text.split() for m in markers.markers if m.type == m.TEXT_VIEW_FACING]
    return {name: float(score) for name, score in texts}


def test_class_thresholds_lower_and_raise_through_the_node(context, tmp_path):
    """The real Detector with scripted scores (Car 0.35, Pedestrian 0.27, Cyclist 0.22) behind the node."""
    det = scripted_detector(tmp_path, {"Car": 0.35, "Pedestrian": 0.27, "Cyclist": 0.22})
    node, capture = make_node(context, det, score_threshold=0.3, class_score_thresholds="Pedestrian:0.25",
                              warmup_runs=0)
    try:
        cloud = points_to_cloud(some_points(), header=header(stamp(1)))
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Car": 0.35, "Pedestrian": 0.27}  # Pedestrian's 0.25 lowers the bar
        assert node.set_parameters([Parameter("class_score_thresholds", value="Car:0.4,Pedestrian:0.25")])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Pedestrian": 0.27}  # Car's 0.4 raises the bar above its 0.35
        assert node.set_parameters([Parameter("score_threshold", value=0.2)])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Pedestrian": 0.27, "Cyclist": 0.22}  # Car keeps its own 0.4
        assert node.set_parameters([Parameter("class_score_thresholds", value="")])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Car": 0.35, "Pedestrian": 0.27, "Cyclist": 0.22}
    finally:
        node.destroy_node()


def test_the_models_operating_point_is_the_default_and_a_setting_replaces_it(context, tmp_path):
    """Scores Car 0.35, Pedestrian 0.27, Cyclist 0.22; the checkpoint records Car 0.4 and Cyclist 0.2."""
    det = scripted_detector(tmp_path, {"Car": 0.35, "Pedestrian": 0.27, "Cyclist": 0.22},
                            operating={"Car": 0.4, "Cyclist": 0.2})
    node, capture = make_node(context, det, score_threshold=0.3, warmup_runs=0)
    try:
        cloud = points_to_cloud(some_points(), header=header(stamp(1)))
        node.process_cloud(cloud)
        assert det.thresholds == ScoreThresholds(0.3, {"Car": 0.4, "Cyclist": 0.2})
        assert _labelled(capture.msgs[-1]) == {"Cyclist": 0.22}  # Car under its 0.4, Pedestrian under 0.3
        assert node.set_parameters([Parameter("class_score_thresholds", value="none")])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Car": 0.35}  # score_threshold 0.3 for every class
        assert node.set_parameters([Parameter("class_score_thresholds", value="Pedestrian:0.25")])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Car": 0.35, "Pedestrian": 0.27}  # a setting replaces the model's
        assert node.set_parameters([Parameter("class_score_thresholds", value="")])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Cyclist": 0.22}  # back to the model's own
    finally:
        node.destroy_node()


def test_min_points_drops_unsupported_boxes_through_the_node(context, tmp_path):
    """The real Detector with scripted scores behind the node: only Car's box holds returns (8); min_points keeps
    it alone, 0 keeps all, and -1 goes back to the checkpoint's own (0: CenterPoint keeps every box)."""
    from test_min_points import points_in_scripted_box

    det = scripted_detector(tmp_path, {"Car": 0.35, "Pedestrian": 0.5, "Cyclist": 0.6})
    node, capture = make_node(context, det, score_threshold=0.3, min_points=5, warmup_runs=0)
    try:
        assert det.min_points == 5
        cloud = points_to_cloud(np.concatenate([points_in_scripted_box(det, 8, 10, 8),
                                                np.array([[29.0, 14.0, -1.5, 0.1]], np.float32)]),
                                header=header(stamp(1)))
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {"Car": 0.35}
        assert node.set_parameters([Parameter("min_points", value=9)])[0].successful
        node.process_cloud(cloud)
        assert _labelled(capture.msgs[-1]) == {}
        assert node.set_parameters([Parameter("min_points", value=-1)])[0].successful
        node.process_cloud(cloud)
        assert det.min_points == 0 and _labelled(capture.msgs[-1]) == {"Car": 0.35, "Pedestrian": 0.5, "Cyclist": 0.6}
        assert not node.set_parameters([Parameter("min_points", value=-2)])[0].successful
        assert det.min_points == 0
    finally:
        node.destroy_node()


def _footprints(markers, det) -> dict[str, tuple[float, float]]:
    """Class name -> (x extent, y extent) in metres of its one box's LINE_LIST (scripted boxes have yaw 0)."""
    out = {}
    for m in markers.markers:
        if m.type == m.LINE_LIST:
            xs, ys = [p.x for p in m.points], [p.y for p in m.points]
            out[det.class_names[m.id]] = (round(max(xs) - min(xs), 3), round(max(ys) - min(ys), 3))
    return out


def test_square_footprint_through_the_node(context, tmp_path):
    """The real Detector with scripted 4 x 2 m boxes behind the node: square_footprint publishes the named class's
    box 3 x 3 m and leaves the other's; 'none' and '' (the checkpoint's own: none) give boxes as decoded; a class the
    model lacks is ignored."""
    det = scripted_detector(tmp_path, {"Car": 0.6, "Pedestrian": 0.6})
    node, capture = make_node(context, det, square_footprint="Pedestrian", warmup_runs=0)
    try:
        assert det.square_footprint == ("Pedestrian",)
        cloud = points_to_cloud(some_points(), header=header(stamp(1)))
        node.process_cloud(cloud)
        assert _footprints(capture.msgs[-1], det) == {"Car": (4.0, 2.0), "Pedestrian": (3.0, 3.0)}
        assert node.set_parameters([Parameter("square_footprint", value="none")])[0].successful
        node.process_cloud(cloud)
        assert _footprints(capture.msgs[-1], det) == {"Car": (4.0, 2.0), "Pedestrian": (4.0, 2.0)}
        assert node.set_parameters([Parameter("square_footprint", value=["Car", "Truck"])])[0].successful
        node.process_cloud(cloud)
        assert det.square_footprint == ("Car",)
        assert _footprints(capture.msgs[-1], det) == {"Car": (3.0, 3.0), "Pedestrian": (4.0, 2.0)}
        assert node.set_parameters([Parameter("square_footprint", value="")])[0].successful
        assert det.square_footprint == ()  # the scripted checkpoint records none
        assert not node.set_parameters([Parameter("square_footprint", value=3)])[0].successful
    finally:
        node.destroy_node()


def test_clear_overhead_through_the_node(context, tmp_path):
    """The real Detector with scripted Car and Pedestrian boxes behind the node and three returns just over the
    Pedestrian's box: clear_overhead drops that box only; 'none' and '' (the checkpoint's own: none) keep both; a
    class the model lacks is ignored."""
    from scripted_detector import BOX_SIZE, BOX_Z, cell_centre

    det = scripted_detector(tmp_path, {"Car": 0.6, "Pedestrian": 0.6})
    x, y = cell_centre(det, 16, 18)  # the Pedestrian's box
    over = np.array([[x + dx, y, BOX_Z + BOX_SIZE[2] / 2 + 0.9, 0.2] for dx in (-0.5, 0.0, 0.5)], np.float32)
    node, capture = make_node(context, det, clear_overhead="Pedestrian", warmup_runs=0)
    try:
        assert det.clear_overhead == ("Pedestrian",)
        cloud = points_to_cloud(np.concatenate([some_points(), over]), header=header(stamp(1)))
        node.process_cloud(cloud)
        assert sorted(_labelled(capture.msgs[-1])) == ["Car"]
        assert node.set_parameters([Parameter("clear_overhead", value="none")])[0].successful
        node.process_cloud(cloud)
        assert sorted(_labelled(capture.msgs[-1])) == ["Car", "Pedestrian"]
        assert node.set_parameters([Parameter("clear_overhead", value=["Pedestrian", "Truck"])])[0].successful
        assert det.clear_overhead == ("Pedestrian",)
        assert node.set_parameters([Parameter("clear_overhead", value="")])[0].successful
        assert det.clear_overhead == ()  # the scripted checkpoint records none
        node.process_cloud(cloud)
        assert sorted(_labelled(capture.msgs[-1])) == ["Car", "Pedestrian"]
        assert not node.set_parameters([Parameter("clear_overhead", value=3)])[0].successful
    finally:
        node.destroy_node()


def test_tta_flip_through_the_node(context, tmp_path):
    """The real Detector with a scripted head that ignores its input (one Car peak of 0.8) behind the node: with the
    test-time flip the mirror view's peak is turned back to the mirrored row, so the averaged maps hold two Car
    peaks of 0.4, one for each view; 'off' and '' (the checkpoint's own: off) give the one peak of 0.8."""
    det = scripted_detector(tmp_path, {"Car": 0.8})
    node, capture = make_node(context, det, score_threshold=0.3, tta_flip="on", warmup_runs=0)
    try:
        assert det.tta_flip is True
        cloud = points_to_cloud(some_points(), header=header(stamp(1)))

        def car_scores():
            node.process_cloud(cloud)
            return sorted(float(m.text.split()[1]) for m in capture.msgs[-1].markers if m.type == m.TEXT_VIEW_FACING)

        assert car_scores() == [0.4, 0.4]
        assert node.set_parameters([Parameter("tta_flip", value="off")])[0].successful
        assert det.tta_flip is False and car_scores() == [0.8]
        assert node.set_parameters([Parameter("tta_flip", value=True)])[0].successful
        assert car_scores() == [0.4, 0.4]
        assert node.set_parameters([Parameter("tta_flip", value="")])[0].successful
        assert det.tta_flip is False  # the scripted checkpoint records none
        result = node.set_parameters([Parameter("tta_flip", value="maybe")])[0]
        assert not result.successful and "'on', 'off' or ''" in result.reason
    finally:
        node.destroy_node()


def test_own_vehicle_drops_the_box_on_the_robot_through_the_node(context, tmp_path):
    """The node's default footprint is the bundled models' car roof; a robot's own footprint over the scripted car's
    cell drops that box (and only it); a footprint that does not hold the sensor is refused naming the rule."""
    from sparsekd_core.own_vehicle import CAR_ROOF

    det = scripted_detector(tmp_path, {"Car": 0.5, "Pedestrian": 0.6})
    node, _ = make_node(context, det, warmup_runs=0)
    assert det.own_vehicle == CAR_ROOF
    node.destroy_node()
    found = det(some_points())
    car_x, car_y = found.boxes[list(found.names).index("Car")][:2]
    footprint = [-1.0, float(car_x) + 1.0, min(float(car_y), 0.0) - 1.0, max(float(car_y), 0.0) + 1.0]
    node, capture = make_node(context, det, score_threshold=0.3, own_vehicle=footprint, warmup_runs=0)
    try:
        node.process_cloud(points_to_cloud(some_points(), header=header(stamp(1))))
        assert _labelled(capture.msgs[-1]) == {"Pedestrian": 0.6}
    finally:
        node.destroy_node()
    node, capture = make_node(context, det, score_threshold=0.3, own_vehicle=[0.0] * 4, warmup_runs=0)
    try:
        assert det.own_vehicle is None
        node.process_cloud(points_to_cloud(some_points(), header=header(stamp(2))))
        assert _labelled(capture.msgs[-1]) == {"Car": 0.5, "Pedestrian": 0.6}
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="own_vehicle.*must hold the sensor"):
        make_node(context, det, own_vehicle=[1.0, 3.0, -1.0, 1.0], warmup_runs=0)


def test_newest_cloud_wins_and_drops_are_counted(context):
    det = StandInDetector(delay=0.3)
    node, capture = make_node(context, det)
    try:
        base = kitti_points()[:50]
        for i in range(10):  # ten clouds in 10 ms, as the subscription callback would get them
            node._on_cloud(points_to_cloud(base + i, header=header(stamp(i))))
            time.sleep(0.001)
        deadline = time.monotonic() + 5
        while node.mailbox.put_count != node.stats.processed + node.mailbox.dropped and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.mailbox.put_count == 10
        assert node.stats.processed + node.mailbox.dropped == 10
        assert node.stats.processed <= 3 and node.mailbox.dropped >= 7
        assert capture.msgs[-1].markers[0].header.stamp == stamp(9)  # the newest was processed last
    finally:
        node.destroy_node()


def test_detector_failure_is_survived(context):
    det = StandInDetector()
    det.fail_on_n_points = 7
    node, capture = make_node(context, det)
    try:
        node._on_cloud(points_to_cloud(kitti_points()[:7]))
        assert _wait(lambda: node.stats.errors == 1)
        assert "scripted failure" in node.stats.last_problem
        node._on_cloud(points_to_cloud(kitti_points()[:20]))
        assert _wait(lambda: node.stats.processed == 1) and len(capture.msgs) == 1
    finally:
        node.destroy_node()


def _wait(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.02)
    return cond()


# ----------------------------------------------------------------------------- real node in a subprocess
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    return {m: str(write_untrained_checkpoint(m, root / f"{m}.pth")) for m in ("cp_voxel_xxs_sim",)}


@pytest.fixture(scope="module")
def node_and_client(checkpoints, tmp_path_factory):
    domain = domain_id()
    log = tmp_path_factory.mktemp("node") / "node.log"
    node = NodeProcess(["-p", f"model:={checkpoints['cp_voxel_xxs_sim']}", "-p", "warmup_runs:=1",
                        "-p", "score_threshold:=0.0", "-p", "device:=cpu", "-p", "log_period:=2.0"], domain, log)
    client = RosClient(domain)
    assert node.wait_for_log("listening on /points", timeout=90), node.log()
    yield node, client
    client.close()
    assert node.stop() == 0, node.log()


@pytest.mark.parametrize(
    "name, points, fields, frame",
    [
        ("kitti", kitti_points, ("x", "y", "z", "intensity"), "velodyne"),
        ("nuscenes", nuscenes_points, ("x", "y", "z", "intensity", "ring"), "lidar_top"),
        ("waymo_like", waymo_points, ("x", "y", "z"), "top_lidar"),
    ],
)
def test_real_frames_get_markers_with_their_stamp_and_frame(node_and_client, name, points, fields, frame):
    node, client = node_and_client
    t = stamp(100 + ["kitti", "nuscenes", "waymo_like"].index(name))
    cloud = points_to_cloud(points(), fields, header(t, frame))
    assert client.publish_until(cloud, lambda: bool(client.markers_with_stamp(t)), timeout=30), node.log()[-2000:]
    markers = client.markers_with_stamp(t)[0].markers
    assert markers[0].action == markers[0].DELETEALL
    assert len(markers) > 1  # score_threshold 0: the untrained model always reports boxes
    assert all(m.header.frame_id == frame and m.header.stamp == t for m in markers)
    lines = [m for m in markers if m.type == m.LINE_LIST]
    texts = [m for m in markers if m.type == m.TEXT_VIEW_FACING]
    assert lines and sum(len(m.points) for m in lines) == 24 * len(texts)  # 12 edges per labelled box


def _truncated():
    c = points_to_cloud(kitti_points()[:1000])
    c.data = c.data[:-16]
    return c, "data holds 15984 bytes"


def _no_x():
    return points_to_cloud(kitti_points()[:1000, 1:], ("y", "z", "intensity")), "no 'x' field"


def _small_point_step():
    c = points_to_cloud(kitti_points()[:1000])
    c.point_step, c.row_step, c.width = 12, 12 * 1000, 1000
    c.data = c.data[: 12 * 1000]
    return c, "beyond point_step 12"


def _empty():
    return points_to_cloud(np.zeros((0, 4), np.float32)), "empty cloud"


def _bad_datatype():
    c = points_to_cloud(kitti_points()[:1000])
    c.fields = [PointField(name=f.name, offset=f.offset, datatype=42, count=1) for f in c.fields]
    return c, "unknown datatype 42"


def test_malformed_clouds_are_skipped_and_the_node_keeps_answering(node_and_client):
    node, client = node_and_client
    good = kitti_points()
    for i, make_bad in enumerate((_truncated, _no_x, _small_point_step, _empty, _bad_datatype)):
        bad, reason = make_bad()

        def diag_says(reason=reason):
            d = client.latest_diagnostics()
            return d is not None and reason in d.get("last_problem", "")

        assert client.publish_until(bad, diag_says, timeout=15, period=0.3), (reason, client.latest_diagnostics())
        t = stamp(200 + i)
        cloud = points_to_cloud(good, header=header(t, "velodyne"))
        assert client.publish_until(cloud, lambda: bool(client.markers_with_stamp(t)), timeout=30), reason
    assert node.proc.poll() is None
    assert "skipping malformed cloud: data holds 15984 bytes" in node.log()  # the first warning names it
    d = client.latest_diagnostics()
    assert int(d["skipped_malformed"]) >= 5


def test_stream_at_20hz_into_a_slow_model(node_and_client):
    """Newest cloud wins: latency stays about one detector time, memory stays flat, drops are counted.

    The model needs far more than the 50 ms between clouds on a CPU, so most clouds must be dropped.
    """
    node, client = node_and_client
    pub = client.publisher()
    pts = kitti_points()
    # Diagnostics come at 1 Hz: count from a report that no cloud of an earlier test can still change.
    start = client.settled_diagnostics(timeout=30.0)
    assert start is not None, "no two diagnostics reports in a row without a new cloud within 30 s"
    rss, sent = [], 0
    t_start = time.monotonic()
    while (elapsed := time.monotonic() - t_start) < 10.0:
        pub.publish(points_to_cloud(pts, header=header(client.now(), "velodyne")))
        sent += 1
        if sent % 10 == 0:
            rss.append((elapsed, node.rss_mb()))
        time.sleep(max(0.0, t_start + sent * 0.05 - time.monotonic()))
    at_end = client.latest_diagnostics()
    time.sleep(5.0)
    d = client.latest_diagnostics()
    processed, dropped, received = (int(d[k]) for k in ("frames_processed", "dropped_stale", "clouds_received"))
    # Nothing queues: after the stream, at most the cloud in progress, the one in the mailbox and the one in
    # the depth-1 reader queue are still processed, plus what the node processed in the up to 1 s by which the
    # at_end diagnostics may be old (a fast model on an idle CPU, or slow one on a busy CPU, changes that part;
    # a queue would leave most of the ~200 clouds sent).
    per_second = 1000.0 / max(float(d["detector_ms_median"]), 1.0)
    assert processed - int(at_end["frames_processed"]) <= 3 + math.ceil(per_second) + 1, (at_end, d)
    assert processed - int(start["frames_processed"]) >= 2, d
    assert dropped - int(start["dropped_stale"]) >= 10, d
    assert received == processed + dropped + int(d["skipped_malformed"]) + int(d["detector_errors"])
    assert received - int(start["clouds_received"]) <= sent
    # Latency: a cloud waits at most for the frame in progress, then its own run.
    assert float(d["receive_to_publish_ms_max"]) <= 2 * float(d["detector_ms_max"]) + 300, d
    assert float(d["latency_ms_median"]) <= 2 * float(d["detector_ms_median"]) + 300, d
    # Memory: flat once warm (no queue, no leak); allow allocator noise.
    warm = [mb for t, mb in rss if t >= 2.0]
    assert max(warm) - min(warm) < 40, rss
    assert "dropped" in node.log() and "median ms: decode" in node.log()


def test_context_shutdown_lets_the_frame_in_flight_finish(context):
    """Shutting the context down while the worker is mid-frame first stops the worker (the context
    destroys its nodes first): the frame is published, nothing fails, the worker is gone."""
    det = StandInDetector(delay=0.5)
    node, _ = make_node(context, det)
    node.markers_pub = node.create_publisher(MarkerArray, "~/markers", 1)  # the real publisher: it must fail
    try:
        node._on_cloud(points_to_cloud(kitti_points()[:50], header=header(stamp(1))))
        assert _wait(lambda: len(det.seen) == 1)  # the worker is inside the detector now
        rclpy.try_shutdown(context=context)
        assert not node._worker.is_alive()
        assert node.stats.errors == 0 and node.stats.processed == 1
    finally:
        node.destroy_node()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_frame_stops_the_node_quietly(sig, tmp_path):
    """Ctrl-C or SIGTERM while the worker runs a slow model: exit 0, and no error in the log (the worker
    finishes its frame and stops before the context goes)."""
    domain = domain_id() + 11
    node = NodeProcess(["-p", "model:=cp_voxel_s", "-p", "warmup_runs:=0", "-p", "device:=cpu",
                        "-p", "log_period:=0.0", "-p", "diagnostics_period:=0.2"], domain, tmp_path / "node.log")
    client = RosClient(domain)
    try:
        assert node.wait_for_log("listening on", timeout=90), node.log()
        cloud = points_to_cloud(kitti_points(), header=header(stamp(1), "velodyne"))

        def busy():
            d = client.latest_diagnostics()
            return d is not None and int(d["frames_processed"]) >= 1

        assert client.publish_until(cloud, busy, timeout=60, period=0.1), node.log()
        for _ in range(5):  # keep the worker busy: the model takes far longer than these 0.5 s
            client.publisher().publish(cloud)
            time.sleep(0.1)
        t = time.monotonic()
        assert node.stop(timeout=30, sig=sig) == 0, node.log()
        assert time.monotonic() - t < 30
    finally:
        client.close()
        node.stop()
    log = node.log()
    assert "[ERROR]" not in log and "[FATAL]" not in log and "Traceback" not in log, log


def test_an_error_while_running_is_named_as_such(tmp_path, monkeypatch, capfd):
    """A failure after start-up is logged as 'stopped by an error while running', with exit code 1,
    not as 'cannot start'."""
    from sparsekd_core.checkpoint import write_untrained_checkpoint
    from sparsekd_ros import detector_node

    ckpt = write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path / "m.pth")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id() + 12))

    def broken_diagnostics(self):
        raise RuntimeError("scripted failure in a timer")

    monkeypatch.setattr(detector_node.DetectorNode, "_publish_diagnostics", broken_diagnostics)
    code = detector_node.main(["--ros-args", "-p", f"model:={ckpt}", "-p", "warmup_runs:=0", "-p", "device:=cpu",
                               "-p", "diagnostics_period:=0.1", "-p", "log_period:=0.0"])
    err = capfd.readouterr().err
    assert code == 1
    assert "stopped by an error while running: RuntimeError: scripted failure in a timer" in err
    assert "broken_diagnostics" in err and "cannot start" not in err


def test_unknown_model_exits_with_a_clear_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sparsekd_ros.detector_node", "--ros-args", "-p", "model:=no_such_model"],
        env=ros_env(domain_id() + 2), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr + proc.stdout and "no_such_model" in proc.stderr + proc.stdout


def test_parameters_without_ros_args_are_refused():
    # without --ros-args, ROS would drop `-p model:=...` and the node would run the default model
    proc = subprocess.run([sys.executable, "-m", "sparsekd_ros.detector_node", "-p", "model:=cp_voxel_s"],
                          env=ros_env(domain_id() + 13), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    # rcl takes the bare `model:=cp_voxel_s` for a (deprecated) remapping rule; the stray -p is what is left
    assert "unrecognized arguments: -p;" in proc.stderr and "detector_node --ros-args -p model:=" in proc.stderr


def test_help_lists_every_parameter():
    from sparsekd_ros.parameters import PARAMETERS

    out = subprocess.run([sys.executable, "-m", "sparsekd_ros.detector_node", "--help"], env=ros_env(0),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for spec in PARAMETERS:
        assert f"  {spec.name} (default {spec.default!r}" in out.stdout


def test_node_bench_measures_through_the_real_node():
    """The figures of sparsekd_ros.bench_node, with a stand-in detector of known forward time."""
    from sparsekd_ros.bench_node import codec_bench, node_bench

    det = StandInDetector(delay=0.05)
    cloud = points_to_cloud(kitti_points(), header=header(stamp(0), "lidar"))
    # two seconds of streaming: a one-second window failed once when the loaded CI machine stalled the whole of it
    # (1.6 Hz processed, 2 dropped)
    f = node_bench(det, cloud, latency_frames=3, sustained_s=2.0, rate_hz=40.0, warmup_runs=0, domain=domain_id() + 6)
    assert f["boxes"] == 1 and f["points_in"] == len(kitti_points())
    assert 50 <= f["inference_ms_median"] < 80 and f["latency_ms_median"] >= f["inference_ms_median"]
    assert f["overhead_ms"] == pytest.approx(f["latency_ms_median"] - f["inference_ms_median"])
    assert 0 < f["ros_glue_ms"] < f["latency_ms_median"]
    # ~50 ms per frame: at most ~20 Hz sustained out of 40 offered, the rest dropped as stale. (How close to 20 Hz
    # it gets depends on the machine's load, so only the bound is asserted; the benchmark reports the figure.)
    assert 0 < f["sustained_hz"] <= 21 and f["sustained_dropped"] >= 5
    c = codec_bench(kitti_points(), n_points=20_000, repeats=5)
    assert set(c["layouts"]) == {"packed_xyzi_16B", "ouster_like_32B"}
    assert all(v["decode_ms"] > 0 and v["ratio"] > 0 for v in c["layouts"].values())
