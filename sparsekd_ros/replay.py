"""sparsekd-replay: publish point clouds from a rosbag2 or from frame files, so the detector has a
stream without a sensor.

  sparsekd-replay BAG [--topic /points] [--rate 1.0] [--loop] [--restamp] [--clock]
  sparsekd-replay --frames DIR_OR_FILE [--rate-hz 10] [--fields x,y,z,intensity] [--frame-id lidar]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from sparsekd_ros.bag_io import BagError, iter_messages, open_bag, pick_cloud_topic, to_rclpy
from sparsekd_ros.frame_files import list_frames, read_frame
from sparsekd_ros.playback_clock import PlaybackClock
from sparsekd_ros.pointcloud2 import points_to_cloud
from sparsekd_ros.spin import BackgroundSpin, SpinFailed
from sparsekd_ros.stop_signal import StopOnSignal

__all__ = ["DEFAULT_FRAME_ID", "DEFAULT_TOPIC", "replay_bag", "replay_frames", "main"]

#: Frame of clouds published from frame files; rviz/sparsekd.rviz uses it as its fixed frame.
DEFAULT_FRAME_ID = "lidar"
DEFAULT_TOPIC = "/points"
# Fast DDS's default shared-memory segment cannot carry clouds this large in one piece; best-effort
# subscribers (the node, RViz) then often receive none. Said once so users know where to look.
_LARGE_CLOUD_BYTES = 1 << 20


def _cloud_publisher(node: Node, topic: str):
    # Reliable + depth 1: matches best-effort and reliable subscribers alike, and never queues.
    return node.create_publisher(PointCloud2, topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))


def _wait_for_subscriber(node: Node, pub, seconds: float, stop: threading.Event | None) -> None:
    """Give discovery up to ``seconds`` to find a subscriber, so the first clouds are not lost."""
    if seconds <= 0:
        return
    end = time.monotonic() + seconds
    while pub.get_subscription_count() == 0 and time.monotonic() < end and not (stop and stop.is_set()):
        time.sleep(0.05)
    if pub.get_subscription_count() == 0:
        node.get_logger().warning(f"no subscriber on {pub.topic_name} after {seconds:.1f} s; publishing anyway")


def _warn_if_large(node: Node, nbytes: int) -> None:
    if nbytes > _LARGE_CLOUD_BYTES:
        node.get_logger().warning(
            f"clouds of {nbytes / 1e6:.1f} MB: with Fast DDS defaults, best-effort subscribers in other processes "
            f"may not receive clouds over ~1 MB; give Fast DDS a larger shared-memory segment (README, large clouds)",
            once=True,
        )


def _sleep_until(deadline: float, stop: threading.Event | None) -> bool:
    """Sleep until ``deadline`` (time.monotonic); False if stopped meanwhile."""
    while True:
        left = deadline - time.monotonic()
        if stop is not None and stop.is_set():
            return False
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))


def replay_bag(
    node: Node,
    bag: str | Path,
    topic: str | None = None,
    publish_topic: str | None = None,
    rate: float = 1.0,
    loop: bool = False,
    restamp: bool = False,
    stop: threading.Event | None = None,
    wait_for_subscriber: float = 0.0,
    clock: PlaybackClock | None = None,
) -> int:
    """Publish a bag's clouds with their recorded spacing divided by ``rate``; returns how many.

    topic: the bag's cloud topic (default: its only one). publish_topic: default the same name.
    restamp: set header.stamp to the publish time (else the recorded stamps are kept, as ros2 bag
    play does), so the node's stamp-to-publish latency is meaningful without simulated time.
    wait_for_subscriber: seconds to wait for a subscriber before the first cloud.
    clock: publish the recording's time on /clock (``--clock``); with it, --restamp stamps clouds with
    their recorded time, which is the simulated "now".
    """
    if rate <= 0:
        raise ValueError(f"--rate must be > 0, got {rate}")
    reader = open_bag(bag)
    try:
        topic = pick_cloud_topic(reader, topic)
        pub = _cloud_publisher(node, publish_topic or topic)
        count = sum(c.msgcount for c in reader.connections if c.topic == topic)
        node.get_logger().info(f"replaying {count} clouds of {topic} from {bag} on {pub.topic_name} at {rate}x"
                               + (" in a loop" if loop else ""))
        _wait_for_subscriber(node, pub, wait_for_subscriber, stop)
        published = 0
        while True:
            start_wall, first = time.monotonic(), None
            for item in iter_messages(reader, [topic]):
                first = item.timestamp_ns if first is None else first
                if not _sleep_until(start_wall + (item.timestamp_ns - first) * 1e-9 / rate, stop):
                    return published
                _warn_if_large(node, len(item.raw))
                if clock is not None:
                    clock.seek(item.timestamp_ns)
                if restamp:
                    msg = to_rclpy(item.raw, item.msgtype)
                    now = Time(nanoseconds=item.timestamp_ns) if clock is not None else node.get_clock().now()
                    msg.header.stamp = now.to_msg()
                    pub.publish(msg)
                else:
                    pub.publish(bytes(item.raw))  # recorded CDR as is: no decode, no copy of fields
                published += 1
            if not loop or first is None:
                return published
    finally:
        reader.close()


def replay_frames(
    node: Node,
    frames: Sequence[Path],
    topic: str = DEFAULT_TOPIC,
    rate_hz: float = 10.0,
    fields: Sequence[str] | None = None,
    frame_id: str = DEFAULT_FRAME_ID,
    bin_columns: int | None = None,
    loop: bool = True,
    stop: threading.Event | None = None,
    wait_for_subscriber: float = 0.0,
) -> int:
    """Publish frame files as PointCloud2 at ``rate_hz``, stamped with the publish time; returns how many.

    fields: the columns to publish (default all the file has), e.g. ("x", "y", "z", "intensity").
    wait_for_subscriber: seconds to wait for a subscriber before the first cloud.
    """
    if rate_hz <= 0:
        raise ValueError(f"--rate-hz must be > 0, got {rate_hz}")
    pub = _cloud_publisher(node, topic)
    loaded = []
    for path in frames:  # frames are read once; publishing re-encodes only the header
        points, names = read_frame(path, bin_columns)
        if fields:
            missing = [f for f in fields if f not in names]
            if missing:
                raise ValueError(f"{path} has columns {list(names)}, not {missing}: choose --fields among them")
            points = points[:, [names.index(f) for f in fields]]
            names = tuple(fields)
        loaded.append(points_to_cloud(np.ascontiguousarray(points, np.float32), names, Header(frame_id=frame_id)))
    node.get_logger().info(
        f"publishing {len(loaded)} frame(s) with fields {[f.name for f in loaded[0].fields]} on {pub.topic_name} "
        f"(frame '{frame_id}') at {rate_hz} Hz" + (" in a loop" if loop else "")
    )
    _wait_for_subscriber(node, pub, wait_for_subscriber, stop)
    published, start = 0, time.monotonic()
    while True:
        for cloud in loaded:
            if not _sleep_until(start + published / rate_hz, stop):
                return published
            _warn_if_large(node, len(cloud.data))
            cloud.header.stamp = node.get_clock().now().to_msg()
            pub.publish(cloud)
            published += 1
        if not loop:
            return published


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsekd-replay",
        description="Publish point clouds for the sparsekd_ros detector: a rosbag2 with its recorded timing, "
                    "or KITTI / nuScenes / Waymo-layout / simulated frame files at a fixed rate.",
        epilog="examples:\n"
               "  sparsekd-replay my_drive_bag --topic /velodyne_points --publish-topic /points --loop\n"
               "  sparsekd-replay my_drive_bag --clock     # + detector_node with use_sim_time:=true\n"
               "  sparsekd-replay --frames ../shared/data/kitti/training/velodyne_reduced --rate-hz 10\n"
               "  sparsekd-replay --frames ../shared/data/nuscenes/lidar_top.bin --fields x,y,z,intensity,ring\n"
               "then: python -m sparsekd_ros.detector_node --ros-args -p model:=cp_voxel_s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bag", nargs="?", help="rosbag2 directory (sqlite3 or mcap) to replay")
    parser.add_argument("--topic", default=None,
                        help="bag mode: the bag's PointCloud2 topic (default: its only one); "
                             f"frames mode: the topic to publish on (default {DEFAULT_TOPIC})")
    parser.add_argument("--publish-topic", default=None, help="bag mode: publish on this topic instead of --topic")
    parser.add_argument("--rate", type=float, default=1.0, help="bag mode: playback speed factor (default 1.0)")
    parser.add_argument("--restamp", action="store_true",
                        help="bag mode: stamp clouds with the publish time instead of the recorded stamps")
    parser.add_argument("--loop", action="store_true", help="bag mode: start again at the end")
    parser.add_argument("--clock", action="store_true",
                        help="bag mode: publish the recording's time on /clock, as ros2 bag play --clock does, for "
                             "nodes run with use_sim_time:=true")
    parser.add_argument("--clock-hz", type=float, default=100.0, help="bag mode: /clock rate (default 100)")
    parser.add_argument("--frames", type=Path, default=None, help="a .bin/.npy frame file or a directory of them")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="frames mode: publish rate (default 10)")
    parser.add_argument("--fields", default=None,
                        help="frames mode: comma-separated columns to publish, e.g. x,y,z,intensity,ring "
                             "(default: all the files have)")
    parser.add_argument("--frame-id", default=DEFAULT_FRAME_ID,
                        help=f"frames mode: header.frame_id (default '{DEFAULT_FRAME_ID}', RViz config's fixed frame)")
    parser.add_argument("--bin-columns", type=int, choices=(4, 5), default=None,
                        help="frames mode: float32 columns of .bin files, 4 KITTI or 5 nuScenes (default: guessed)")
    parser.add_argument("--once", action="store_true", help="frames mode: publish each frame once, then exit")
    parser.add_argument("--wait-for-subscriber", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for a subscriber before publishing (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(rclpy.utilities.remove_ros_args(["sparsekd-replay", *argv])[1:])
    if (args.bag is None) == (args.frames is None):
        parser.error("give either a BAG or --frames DIR (not both)")
    if args.clock and args.bag is None:
        parser.error("--clock publishes a bag's recorded time: give a BAG (frames are stamped with the current time)")
    if args.clock_hz <= 0:
        parser.error(f"--clock-hz must be > 0, got {args.clock_hz}")
    # A signal stops the publishing loop, then the node and context go in order (stop_signal.py): rclpy's own
    # handlers would shut the context down under a publish.
    rclpy.init(args=["sparsekd-replay", *argv], signal_handler_options=SignalHandlerOptions.NO)
    node = Node("sparsekd_replay")
    stop = threading.Event()
    signals = StopOnSignal(on_stop=stop.set)
    rclpy.get_default_context().on_shutdown(stop.set)  # an external shutdown stops publishing too
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    # Serves discovery and parameter services while the main thread publishes; if it dies, publishing stops.
    spin = BackgroundSpin(executor, node.get_logger(), "sparsekd-replay's spin thread", on_failure=stop.set)
    try:
        if args.bag is not None:
            clock = PlaybackClock(node, args.clock_hz, args.rate) if args.clock else None
            count = replay_bag(node, args.bag, args.topic, args.publish_topic, args.rate, args.loop, args.restamp, stop,
                               args.wait_for_subscriber, clock)
        else:
            fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
            count = replay_frames(node, list_frames(args.frames), args.topic or DEFAULT_TOPIC, args.rate_hz, fields,
                                  args.frame_id, args.bin_columns, loop=not args.once, stop=stop,
                                  wait_for_subscriber=args.wait_for_subscriber)
        spin.check()
        node.get_logger().info(f"published {count} clouds")
        return 0
    except SpinFailed as exc:
        node.get_logger().error(f"{exc}; stopped publishing")
        return 1
    except (BagError, ValueError) as exc:
        node.get_logger().error(str(exc))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception:
        # A publish racing a shutdown (Ctrl-C, or SIGTERM, whose handler invalidates the context without running
        # on_shutdown callbacks) is not an error; anything else is.
        if not spin.failed and (stop.is_set() or not rclpy.ok()):
            return 0
        raise
    finally:
        stop.set()
        signals.restore()
        spin.stop()  # the node must not be destroyed under a running spin
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
