"""sparsekd-replay: frame files and rosbags (written here with rosbags alone) come out as PointCloud2
with the right content, fields, frames, stamps and timing."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from ros_helpers import (
    KITTI_BIN,
    NUSCENES_BIN,
    WAYMO_NPY,
    domain_id,
    kitti_points,
    nuscenes_points,
    ros_env,
    stamp,
    write_cloud_bag,
)
from sparsekd_ros.bag_io import BagError
from sparsekd_ros.frame_files import list_frames, read_frame
from sparsekd_ros.pointcloud2 import cloud_to_points, read_points
from sparsekd_ros.qos import sensor_qos
from sparsekd_ros.replay import DEFAULT_FRAME_ID, replay_bag, replay_frames
from sparsekd_ros.spin import BackgroundSpin


class Listener:
    """Publisher node and listening node in one context; received clouds are kept with arrival times."""

    def __init__(self, topic: str = "/points"):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id() + 3)
        self.node = Node("replay_under_test", context=self.context)
        self.listener = Node("replay_listener", context=self.context)
        self.clouds: list[tuple[float, PointCloud2]] = []
        self.listener.create_subscription(PointCloud2, topic, lambda m: self.clouds.append((time.monotonic(), m)),
                                          QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.listener)
        self.spin = BackgroundSpin(self.executor, self.listener.get_logger(), "the replay listener's spin thread")

    def settle(self, count: int, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while len(self.clouds) < count and time.monotonic() < end:
            time.sleep(0.02)

    def close(self):
        self.spin.stop(timeout=2.0)
        self.listener.destroy_node()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def listener():
    ls = Listener()
    yield ls
    ls.close()


def test_frame_files_are_read_in_their_layouts(tmp_path):
    pts, names = read_frame(KITTI_BIN)
    assert names == ("x", "y", "z", "intensity") and pts.shape == (17238, 4)
    pts, names = read_frame(NUSCENES_BIN)
    assert names == ("x", "y", "z", "intensity", "ring") and pts.shape == (34688, 5)
    assert set(np.unique(pts[:, 4])) <= set(range(32))  # HDL-32E ring indices
    pts, names = read_frame(WAYMO_NPY)
    assert names == ("x", "y", "z") and pts.shape == (198130, 3)
    waymo6 = np.c_[kitti_points()[:10], np.zeros(10), np.r_[np.full(8, -1.0), 1.0, 1.0]].astype(np.float32)
    np.save(tmp_path / "0000.npy", waymo6)
    pts, names = read_frame(tmp_path / "0000.npy")
    assert names == ("x", "y", "z", "intensity", "elongation") and len(pts) == 8  # NLZ points dropped
    np.testing.assert_allclose(pts[:, 3], np.tanh(waymo6[:8, 3]), rtol=1e-6)
    assert [p.name for p in list_frames(tmp_path)] == ["0000.npy"]
    with pytest.raises(ValueError, match="missing does not exist"):
        list_frames(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .bin or .npy frames directly"):
        list_frames(tmp_path / "empty")


def test_frames_published_with_fields_frame_and_rate(listener, tmp_path):
    shutil.copy(KITTI_BIN, tmp_path / "000008.bin")
    shutil.copy(NUSCENES_BIN, tmp_path / "lidar_top.bin")
    frames = list_frames(tmp_path)
    t0 = time.monotonic()
    n = replay_frames(listener.node, frames * 3, rate_hz=20.0, loop=False, wait_for_subscriber=5.0,
                      fields=("x", "y", "z", "intensity"))
    elapsed = time.monotonic() - t0
    assert n == 6
    listener.settle(6)
    got = [m for _, m in listener.clouds]
    assert len(got) >= 4  # best effort may lose some; most arrive in-process
    assert 5 / 20.0 - 0.02 <= elapsed < 3.0  # six clouds at 20 Hz: five intervals of 50 ms
    for m in got:
        assert m.header.frame_id == DEFAULT_FRAME_ID and [f.name for f in m.fields] == ["x", "y", "z", "intensity"]
    stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    kitti = [m for m in got if m.width == 17238][0]
    np.testing.assert_array_equal(cloud_to_points(kitti), kitti_points())
    nus = [m for m in got if m.width == 34688][0]
    np.testing.assert_array_equal(cloud_to_points(nus), nuscenes_points()[:, :4])
    with pytest.raises(ValueError, match="not \\['elongation'\\]"):
        replay_frames(listener.node, frames, fields=("x", "y", "z", "elongation"), loop=False)


def test_bag_replays_with_recorded_timing_and_stamps(listener, tmp_path):
    pts = kitti_points()[:500]
    clouds = [(1_000_000_000 + i * 100_000_000, pts + i, stamp(i), "velodyne") for i in range(5)]
    bag = write_cloud_bag(tmp_path / "bag", clouds, topic="/velodyne_points", storage="mcap")
    t0 = time.monotonic()
    n = replay_bag(listener.node, bag, publish_topic="/points", rate=2.0, wait_for_subscriber=5.0)
    elapsed = time.monotonic() - t0
    assert n == 5 and 0.4 / 2.0 - 0.02 <= elapsed < 3.0  # 400 ms of recording at 2x
    listener.settle(5)
    got = [m for _, m in listener.clouds]
    assert len(got) >= 3
    for m in got:
        i = m.header.stamp.sec - stamp(0).sec
        assert m.header.stamp == stamp(i) and m.header.frame_id == "velodyne"
        np.testing.assert_array_equal(cloud_to_points(m), pts + i)
    arrivals = [t for t, _ in listener.clouds]
    if len(got) == 5:
        assert arrivals[-1] - arrivals[0] >= 0.4 / 2.0 - 0.03


def test_bag_restamp_loop_and_topic_choice(listener, tmp_path):
    pts = kitti_points()[:100]
    bag = write_cloud_bag(tmp_path / "bag", [(i * 50_000_000, pts, stamp(i), "lidar") for i in range(3)],
                          topic="/points")
    stop = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "n", replay_bag(listener.node, bag, rate=1.0, loop=True, restamp=True, stop=stop, wait_for_subscriber=5.0)))
    worker.start()
    time.sleep(1.0)
    stop.set()
    worker.join(5)
    assert result["n"] > 3  # looped past the 3 recorded clouds
    listener.settle(3)
    now = listener.node.get_clock().now().nanoseconds * 1e-9
    for _, m in listener.clouds:
        assert abs(now - (m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec)) < 10  # restamped: now, not 2020
    two = tmp_path / "two"
    from rosbags.rosbag2 import Writer  # a bag with two cloud topics needs a choice
    from rosbags.typesys import Stores, get_typestore

    with Writer(two, version=8) as w:
        ts = get_typestore(Stores.LATEST)
        w.add_connection("/a", "sensor_msgs/msg/PointCloud2", typestore=ts)
        w.add_connection("/b", "sensor_msgs/msg/PointCloud2", typestore=ts)
    with pytest.raises(BagError, match=r"2 PointCloud2 topics \['/a', '/b'\]: choose one with --topic"):
        replay_bag(listener.node, two)
    with pytest.raises(BagError, match="no PointCloud2 topic /c"):
        replay_bag(listener.node, two, topic="/c")
    with pytest.raises(BagError, match="does not exist"):
        replay_bag(listener.node, tmp_path / "nope")


def test_cli_publishes_frames(tmp_path):
    """The console entry end to end: a separate process publishes, this one receives."""
    domain = domain_id() + 4
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = Node("cli_listener", context=ctx)
    got = []
    node.create_subscription(PointCloud2, "/points", got.append, sensor_qos())
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparsekd_ros.replay", "--frames", str(KITTI_BIN), "--rate-hz", "20",
         "--fields", "x,y,z,intensity", "--frame-id", "velodyne", "--wait-for-subscriber", "10"],
        env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        end = time.monotonic() + 30
        while not got and time.monotonic() < end and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.send_signal(subprocess.signal.SIGINT)
        out = proc.communicate(timeout=15)[0]
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert got, out
    assert got[0].header.frame_id == "velodyne" and got[0].width == 17238
    assert read_points(got[0])["intensity"].max() <= 1.0
    assert "publishing 1 frame(s)" in out and proc.returncode == 0
    bad = subprocess.run([sys.executable, "-m", "sparsekd_ros.replay"], env=ros_env(domain), capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "give either a BAG or --frames" in bad.stderr


def test_bag_replay_with_simulated_time(tmp_path):
    """sparsekd-replay --clock publishes the recording's time on /clock; a detector node with use_sim_time
    measures its latency against that time, so clouds recorded in 2020 get a real, small latency. The
    same clouds on a node without use_sim_time get none (their stamps are years old), and the
    stage timings and rate, on wall time, are there in both."""
    from builtin_interfaces.msg import Time as TimeMsg
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock as ClockMsg

    from ros_helpers import StandInDetector
    from sparsekd_ros.detector_node import DetectorNode

    t0 = 1_580_000_000 * 10**9  # recorded in 2020
    pts = kitti_points()[:2000]
    clouds = [(t0 + i * 100_000_000, pts, TimeMsg(sec=(t0 + i * 100_000_000) // 10**9,
                                                  nanosec=(t0 + i * 100_000_000) % 10**9), "velodyne")
              for i in range(20)]
    bag = write_cloud_bag(tmp_path / "bag", clouds)
    domain = domain_id() + 13
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    common = [Parameter("input_topic", value="/simtime/points"), Parameter("log_period", value=0.0),
              Parameter("warmup_runs", value=0)]
    sim = DetectorNode("simtime_detector", detector=StandInDetector(delay=0.05), context=ctx,
                       parameter_overrides=[*common, Parameter("use_sim_time", value=True)])
    wall = DetectorNode("walltime_detector", detector=StandInDetector(delay=0.05), context=ctx,
                        parameter_overrides=common)
    watcher = Node("simtime_clock_watcher", context=ctx)
    ticks = []
    watcher.create_subscription(ClockMsg, "/clock", lambda m: ticks.append(m.clock.sec * 10**9 + m.clock.nanosec),
                                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=ctx)
    for n in (sim, wall, watcher):
        executor.add_node(n)
    spin = BackgroundSpin(executor, watcher.get_logger(), "the sim-time test's spin thread")
    try:
        res = subprocess.run([sys.executable, "-m", "sparsekd_ros.replay", str(bag), "--clock", "--publish-topic",
                              "/simtime/points", "--wait-for-subscriber", "10"], env=ros_env(domain),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        time.sleep(0.5)
        spin.check()
        assert len(ticks) > 20  # 100 Hz over the 1.9 s recording, plus one per cloud
        assert all(t0 <= t <= t0 + 2_500_000_000 for t in ticks) and ticks == sorted(ticks)
        assert t0 <= sim.get_clock().now().nanoseconds <= t0 + 2_500_000_000  # the node lives in 2020
        for node in (sim, wall):
            assert node.stats.processed >= 5, node.stats.log_line(node.mailbox.put_count, node.mailbox.dropped)
            assert node.stats.percentiles_ms("receive_to_publish")[0] >= 50  # wall time: the 50 ms detector
        # Recorded stamp -> published, in the recording's time; the node's clock moves in /clock steps
        # (10 ms at 100 Hz), so it may read up to one step less than the 50 ms the detector takes.
        median, _, worst = sim.stats.percentiles_ms("latency")
        assert 40 <= median < 500 and worst < 1000
        assert wall.stats.percentiles_ms("latency") is None  # years old on the wall clock: not a latency
    finally:
        spin.stop()
        for n in (sim, wall, watcher):
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_playback_clock_never_runs_backwards():
    """A replay that falls behind schedule seeks back to the next message's stamp; /clock must hold still
    until the recording catches up, not jump back (nodes with sim time would see time reverse)."""
    from ros_helpers import Capture
    from sparsekd_ros.playback_clock import PlaybackClock

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id() + 17)
    node = Node("clock_under_test", context=ctx)
    try:
        clock = PlaybackClock(node, hz=100.0, rate=1.0)
        clock._pub = Capture()
        t0 = 1_580_000_000 * 10**9
        clock.seek(t0)
        time.sleep(0.05)
        clock.publish()  # about t0 + 50 ms
        ahead = clock._pub.msgs[-1].clock
        clock.seek(t0 + 10_000_000)  # the next message was recorded at t0 + 10 ms: behind the clock
        stamps = [m.clock.sec * 10**9 + m.clock.nanosec for m in clock._pub.msgs]
        assert stamps == sorted(stamps) and stamps[-1] == ahead.sec * 10**9 + ahead.nanosec >= t0 + 50_000_000
        clock.seek(t0 + 1_000_000_000)  # a message ahead of the clock moves it forward at once
        last = clock._pub.msgs[-1].clock.sec * 10**9 + clock._pub.msgs[-1].clock.nanosec
        assert t0 + 1_000_000_000 <= last < t0 + 1_010_000_000
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_clock_needs_a_bag():
    res = subprocess.run([sys.executable, "-m", "sparsekd_ros.replay", "--frames", str(KITTI_BIN), "--clock"],
                         env=ros_env(domain_id() + 14), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--clock publishes a bag's recorded time: give a BAG" in res.stderr
