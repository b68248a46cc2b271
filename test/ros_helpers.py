"""Shared helpers for the ROS tests: an isolated DDS domain, the node in a subprocess, a client node.

Every test process uses its own ROS_DOMAIN_ID (from its pid) and localhost-only discovery, so
parallel runs do not hear each other. Best-effort DDS may drop large clouds between processes:
helpers re-publish until an answer arrives instead of assuming every message gets through.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from sparsekd_ros.demo.processes import LoggedProcess, dds_profile, dds_profile_env
from sparsekd_ros.spin import BackgroundSpin
from visualization_msgs.msg import MarkerArray

from sparsekd_core.detections import Detections
from sparsekd_core.thresholds import ScoreThresholds

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
KITTI_BIN = DATA / "kitti" / "training" / "velodyne_reduced" / "000008.bin"
NUSCENES_BIN = DATA / "nuscenes" / "lidar_top.bin"
WAYMO_NPY = DATA / "waymo_like" / "benchmark_pc.npy"
MARKERS_TOPIC = "/sparsekd_detector/markers"
CLASSES = ("Car", "Pedestrian", "Cyclist")


def dds_env() -> dict[str, str]:
    """Fast DDS's large-data profile (config/fastdds_large_data.xml): without it, best-effort clouds of a
    few megabytes (the Waymo-size frame) never cross between processes."""
    return dds_profile_env(dds_profile())


def domain_id() -> int:
    """A DDS domain for this test process (valid ids are 0..232)."""
    return 10 + os.getpid() % 200


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
        RCUTILS_LOGGING_BUFFERED_STREAM="0",
        OMP_NUM_THREADS="1",  # the test machine is small and shared: no thread oversubscription
        **dds_env(),
    )
    return env


def stamp(i: int) -> Time:
    """A distinctive stamp for the i-th test cloud (lets a test match answers to requests)."""
    return Time(sec=1_600_000_000 + i, nanosec=1000 + i)


def kitti_points() -> np.ndarray:
    return np.fromfile(KITTI_BIN, dtype=np.float32).reshape(-1, 4)


def nuscenes_points() -> np.ndarray:
    return np.fromfile(NUSCENES_BIN, dtype=np.float32).reshape(-1, 5)


def waymo_points() -> np.ndarray:
    return np.load(WAYMO_NPY)


class NodeProcess(LoggedProcess):
    """``python -m <module> --ros-args ...`` in its own process, output in ``log_path``."""

    def __init__(self, ros_args: list[str], domain: int, log_path: Path, module: str = "sparsekd_ros.detector_node",
                 args: list[str] | None = None):
        cmd = [sys.executable, "-m", module, *(args or [])]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        super().__init__(cmd, ros_env(domain), log_path, cwd=REPO)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGINT) -> int:
        return super().stop(timeout, sig)


class RosClient:
    """A test-side node in its own rclpy context, spun on a background thread."""

    def __init__(self, domain: int, name: str = "sparsekd_test_client"):
        os.environ.update(dds_env())  # read when this process's DDS participant is created
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node(name, context=self.context)
        self._lock = threading.Lock()
        self.markers: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(MarkerArray, MARKERS_TOPIC, self._keep(self.markers), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spin = BackgroundSpin(self.executor, self.node.get_logger(), "the test client's spin thread")
        self._publishers: dict[str, object] = {}

    def _keep(self, sink: list) -> Callable:
        def callback(msg) -> None:
            with self._lock:
                sink.append(msg)
        return callback

    def publisher(self, topic: str = "/points"):
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(PointCloud2, topic, QoSProfile(depth=1))
        return self._publishers[topic]

    def now(self) -> Time:
        return self.node.get_clock().now().to_msg()

    def markers_with_stamp(self, t: Time) -> list[MarkerArray]:
        with self._lock:
            return [m for m in self.markers if m.markers and m.markers[0].header.stamp == t]

    def latest_diagnostics(self) -> dict[str, str] | None:
        with self._lock:
            for arr in reversed(self.diagnostics):
                for status in arr.status:
                    if "lidar detector" in status.name:
                        return {kv.key: kv.value for kv in status.values} | {"_message": status.message}
        return None

    def settled_diagnostics(self, timeout: float) -> dict[str, str] | None:
        """The node's diagnostics once a whole report period passed with no cloud received, or None at ``timeout``.

        ``latest_diagnostics`` may be up to a period old, so counts read from it right after other clouds were sent
        can miss the last of them; two successive reports that agree on ``clouds_received`` cannot.
        """
        end = time.monotonic() + timeout
        before, seen = None, -1
        while time.monotonic() < end:
            with self._lock:
                n = len(self.diagnostics)
            d = self.latest_diagnostics() if n != seen else None
            if d is not None:
                if before is not None and before["clouds_received"] == d["clouds_received"]:
                    return d
                before, seen = d, n
            time.sleep(0.1)
        return None

    def publish_until(self, cloud: PointCloud2, done: Callable[[], bool], timeout: float, period: float = 0.5) -> bool:
        """Publish ``cloud`` every ``period`` s until ``done()`` or ``timeout``; True when done."""
        pub = self.publisher()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.spin.check()
            pub.publish(cloud)
            step_end = min(end, time.monotonic() + period)
            while time.monotonic() < step_end:
                if done():
                    return True
                time.sleep(0.02)
        return done()

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if done():
                return True
            time.sleep(0.05)
        return done()

    def close(self) -> None:
        self.spin.stop(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def header(t: Time, frame_id: str = "lidar") -> Header:
    return Header(stamp=t, frame_id=frame_id)


class Capture:
    """Takes a publisher's place in an in-process node and keeps what is published."""

    def __init__(self):
        self.msgs = []

    def publish(self, msg):
        self.msgs.append(msg)


class StandInDetector:
    """The Detector API with a scripted result: one Car box at the mean of the points it was given.
    It ignores its thresholds; test/scripted_detector.py is a real Detector with scripted scores."""

    def __init__(self, delay: float = 0.0, features=("x", "y", "z", "intensity")):
        self.name, self.device, self.class_names, self.point_features = "stand_in", "cpu", CLASSES, features
        self.point_cloud_range = np.array([-80, -80, -5, 80, 80, 5], np.float32)
        self.thresholds = ScoreThresholds(0.1)
        self.operating_thresholds: dict[str, float] = {}  # the checkpoint's operating point: none recorded
        self.last_timings: dict[str, float] = {}
        self.delay, self.seen, self.fail_on_n_points = delay, [], None

    def warmup(self, runs: int = 3) -> float:
        return 0.001

    def __call__(self, points: np.ndarray) -> Detections:
        if len(points) == self.fail_on_n_points:
            raise RuntimeError("scripted failure")
        self.seen.append(points.copy())
        time.sleep(self.delay)
        self.last_timings = {"preprocess": 0.001, "inference": self.delay, "postprocess": 0.002}
        if len(points) == 0:
            return Detections.empty(CLASSES)
        c = points[:, :3].mean(axis=0)
        return Detections(np.array([[*c, 4, 2, 1.5, 0.0]]), np.array([0.9]), np.array([0]), CLASSES)


def write_cloud_bag(
    path: Path,
    clouds: list[tuple[int, np.ndarray, Time, str]],
    topic: str = "/points",
    storage: str = "sqlite3",
    extra_topics: dict[str, list[int]] | None = None,
) -> Path:
    """Write a rosbag2 with rosbags only (its own typestore and CDR serialiser, no rclpy), so the
    code under test reads a bag it did not write.

    clouds: (bag timestamp ns, float32 (N, 4) x y z intensity points, header stamp, frame_id).
    extra_topics: topic -> timestamps of std_msgs/String messages (to test copying other topics).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate(("x", "y", "z", "intensity"))]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, "sensor_msgs/msg/PointCloud2", typestore=ts)
        for t_ns, pts, st, frame in clouds:
            pts = np.ascontiguousarray(pts, dtype="<f4")
            msg = T["sensor_msgs/msg/PointCloud2"](
                header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=st.sec, nanosec=st.nanosec),
                                                frame_id=frame),
                height=1, width=len(pts), fields=fields, is_bigendian=False, point_step=16,
                row_step=16 * len(pts), data=pts.view(np.uint8).reshape(-1), is_dense=True,
            )
            writer.write(conn, t_ns, ts.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"))
        for extra, stamps in (extra_topics or {}).items():
            c = writer.add_connection(extra, "std_msgs/msg/String", typestore=ts)
            for t_ns in stamps:
                writer.write(c, t_ns, ts.serialize_cdr(T["std_msgs/msg/String"](data=f"at {t_ns}"),
                                                       "std_msgs/msg/String"))
    return path
