"""The ROS side of ``make demo``: publish frames as PointCloud2 at a fixed rate to a running detector
node, listen to its markers and /diagnostics, and report every answer as one JSON line on stdout.

The demo's runner (sparsekd_ros.demo.runner, no rclpy there) starts the node and this client as
processes and reads the lines; a person can run it by hand against any node too:

  python -m sparsekd_ros.demo.client --manifest frames.json --markers-topic /sparsekd_detector/markers

Events (one JSON object per line): ``ready``; ``sent`` (frame, name, t); ``answer`` (frame, t,
latency_ms, boxes/scores/labels decoded from the markers); ``done`` (counts, the node's last
diagnostics, the bag); ``error`` (message: the client's spin thread died, exit code 4).
``t`` is time.monotonic() (CLOCK_MONOTONIC: one clock for all processes).
Boxes are read back from the LINE_LIST corners exactly; scores from the labels' text (2 decimals).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from sparsekd_core.data.point_files import model_points, read_point_file
from sparsekd_core.geometry.boxes import BOX_EDGES
from sparsekd_ros.pointcloud2 import points_to_cloud
from sparsekd_ros.spin import BackgroundSpin, SpinFailed

__all__ = ["markers_to_boxes", "load_manifest", "DemoClient", "main"]

# Where each of a box's 8 corners first appears among the 24 LINE_LIST points of its 12 edges.
_EDGE_ORDER = np.array(BOX_EDGES, dtype=np.int64).reshape(-1)
_CORNER_AT = np.array([int(np.flatnonzero(_EDGE_ORDER == k)[0]) for k in range(8)])


def _corners_to_boxes(corners: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners in corners_3d's order -> (M, 7) boxes: the inverse of corners_3d."""
    centre = corners.mean(axis=1)
    front, rear_left, right = corners[:, 0], corners[:, 1], corners[:, 3]  # (+,+), (-,+), (+,-) bottom corners
    forward = front[:, :2] - rear_left[:, :2]
    dx = np.linalg.norm(forward, axis=1)
    dy = np.linalg.norm(front[:, :2] - right[:, :2], axis=1)
    dz = corners[:, 4, 2] - corners[:, 0, 2]
    yaw = np.arctan2(forward[:, 1], forward[:, 0])
    return np.column_stack([centre, dx, dy, dz, yaw])


def markers_to_boxes(msg: MarkerArray, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A MarkerArray of sparsekd_ros.messages.detections_to_markers -> (boxes (M, 7), scores (M,), labels (M,)).

    Boxes come grouped by class (LINE_LIST id = class index, 24 points per box); each class's k-th
    box takes the score of the k-th label text of that class ("Car 0.87"); NaN where labels are off.
    """
    boxes, scores, labels = [], [], []
    texts: dict[str, list[float]] = {}
    for m in msg.markers:
        if m.type == Marker.TEXT_VIEW_FACING and m.action == Marker.ADD:
            name, _, score = m.text.rpartition(" ")
            texts.setdefault(name, []).append(float(score))
    for m in sorted((m for m in msg.markers if m.type == Marker.LINE_LIST and m.action == Marker.ADD),
                    key=lambda m: m.id):
        pts = np.array([(p.x, p.y, p.z) for p in m.points], dtype=np.float64).reshape(-1, 24, 3)
        found = _corners_to_boxes(pts[:, _CORNER_AT])
        name = class_names[m.id] if 0 <= m.id < len(class_names) else str(m.id)
        mine = texts.get(name, [])
        boxes.append(found)
        scores.append([mine[k] if k < len(mine) else float("nan") for k in range(len(found))])
        labels.append(np.full(len(found), m.id, np.int64))
    if not boxes:
        return np.zeros((0, 7)), np.zeros(0), np.zeros(0, np.int64)
    return np.vstack(boxes), np.concatenate(scores), np.concatenate(labels)


@dataclass(frozen=True)
class Frame:
    """name: label for the reports. after_answer: publish only once the previous frame is answered
    (for single frames that should each get an answer, not be skipped by a busy node)."""

    name: str
    cloud: PointCloud2
    after_answer: bool = False


def load_manifest(path: str | Path) -> tuple[list[Frame], dict[str, Any]]:
    """Read the demo's frame list and encode every frame once as a PointCloud2 of the model's features.

    Manifest JSON: {"features": [...], "class_names": [...], "frame_id": "lidar",
    "frames": [{"name": ..., "path": ..., "fields": null or "x,y,z,intensity,ring", "after_answer": false}]}.
    """
    spec = json.loads(Path(path).read_text())
    features = tuple(spec["features"])
    frames = []
    for item in spec["frames"]:
        pf = read_point_file(item["path"], item.get("fields"))
        points, _, _ = model_points(pf.points, pf.fields, features)
        cloud = points_to_cloud(points, features, Header(frame_id=spec.get("frame_id", "lidar")))
        frames.append(Frame(item["name"], cloud, bool(item.get("after_answer", False))))
    return frames, spec


#: Topic names in the written bag: the node's defaults, which rviz/sparsekd.rviz displays.
BAG_CLOUD_TOPIC = "/points"
BAG_MARKERS_TOPIC = "/sparsekd_detector/markers"
_EMIT_LOCK = threading.Lock()  # the publishing thread and the executor thread both report


def _emit(event: str, **values: Any) -> None:
    line = json.dumps({"event": event, **values})
    with _EMIT_LOCK:
        print(line, flush=True)


class DemoClient:
    """Publisher of the frames and listener of the node's markers and diagnostics, in one rclpy context."""

    def __init__(self, topic: str, markers_topic: str, class_names: Sequence[str]):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("sparsekd_demo_client", context=self.context)
        self.class_names = tuple(class_names)
        self.topic, self.markers_topic = topic, markers_topic
        self.pub = self.node.create_publisher(PointCloud2, topic, QoSProfile(depth=1,
                                                                             reliability=ReliabilityPolicy.RELIABLE))
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.markers_sub = self.node.create_subscription(MarkerArray, markers_topic, self._on_markers, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self._lock = threading.Lock()
        self.sent: dict[tuple[int, int], tuple[int, float]] = {}  # stamp -> (frame index, send time)
        self.answered: dict[int, float] = {}  # frame index -> latency (s)
        self.record: list[tuple[int, str, Any]] = []  # (receive/publish time ns, topic, message) for the bag
        self.diagnostics: dict[str, str] = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spin = BackgroundSpin(self.executor, self.node.get_logger(), "the demo client's spin thread")

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_markers(self, msg: MarkerArray) -> None:
        arrived = time.monotonic()
        if not msg.markers:
            return
        stamp = msg.markers[0].header.stamp
        with self._lock:
            hit = self.sent.get((stamp.sec, stamp.nanosec))
            self.record.append((self._now_ns(), self.markers_topic, msg))
            if hit is None or hit[0] in self.answered:
                return
        frame, sent_at = hit
        boxes, scores, labels = markers_to_boxes(msg, self.class_names)  # an answer counts once it decodes
        with self._lock:
            self.answered[frame] = arrived - sent_at
        _emit("answer", frame=frame, t=arrived, latency_ms=round(1e3 * (arrived - sent_at), 2),
              boxes=boxes.round(4).tolist(),
              scores=[None if np.isnan(s) else s for s in scores.tolist()], labels=labels.tolist())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "lidar detector" in status.name:
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values} | {"message": status.message}
                    self.record.append((self._now_ns(), "/diagnostics", msg))

    def wait_for_node(self, timeout: float) -> bool:
        """Until the node subscribes to the clouds and publishes markers (discovery both ways)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.spin.check()
            if self.pub.get_subscription_count() > 0 and self.markers_sub.get_publisher_count() > 0:
                return True
            time.sleep(0.05)
        return False

    def publish(self, frames: Sequence[Frame], rate_hz: float, answer_timeout: float = 15.0) -> None:
        """Each frame once, stamped with the publish time, at ``rate_hz`` (an ``after_answer`` frame first
        waits up to ``answer_timeout`` s for the previous frame's answer; the pace restarts after it)."""
        start, slot = time.monotonic(), 0
        for i, frame in enumerate(frames):
            self.spin.check()  # answers stop arriving when the spin dies: say so, do not count them as drops
            if frame.after_answer and i > 0:
                self.wait_for_answer(i - 1, answer_timeout)
                start, slot = time.monotonic(), 0
            delay = start + slot / rate_hz - time.monotonic()
            slot += 1
            if delay > 0:
                time.sleep(delay)
            now = self.node.get_clock().now()
            frame.cloud.header.stamp = now.to_msg()
            with self._lock:
                self.sent[(frame.cloud.header.stamp.sec, frame.cloud.header.stamp.nanosec)] = (i, time.monotonic())
                self.record.append((now.nanoseconds, self.topic, frame.cloud))
            self.pub.publish(frame.cloud)
            _emit("sent", frame=i, name=frame.name, t=time.monotonic())

    def wait_for_answer(self, frame: int, timeout: float) -> bool:
        """Until ``frame`` is answered (the node never drops the newest cloud; DDS might)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if frame in self.answered:
                    return True
            self.spin.check()
            time.sleep(0.02)
        return False

    def write_bag(self, path: Path, cloud_topic: str = BAG_CLOUD_TOPIC, markers_topic: str = BAG_MARKERS_TOPIC
                  ) -> dict[str, int]:
        """Clouds, markers and diagnostics as a rosbag2 (mcap), in time order, under the usual topic names
        (so ``ros2 bag play`` feeds RViz's shipped config, or a detector node, without remapping)."""
        from sparsekd_ros.bag_io import BagWriter

        rename = {self.topic: cloud_topic, self.markers_topic: markers_topic}
        with self._lock:
            items = sorted(self.record, key=lambda r: r[0])
        with BagWriter(path, storage="mcap") as bag:
            for t, topic, msg in items:
                bag.write(rename.get(topic, topic), t, msg)
            return dict(bag.counts)

    def close(self) -> None:
        self.spin.stop(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sparsekd_ros.demo.client",
                                description="Publish the demo's frames to a running detector node and report its "
                                            "answers as JSON lines (used by python -m sparsekd_ros.demo).")
    p.add_argument("--manifest", type=Path, required=True, help="JSON frame list (see load_manifest)")
    p.add_argument("--topic", default="/points", help="cloud topic the node subscribes to (default /points)")
    p.add_argument("--markers-topic", default="/sparsekd_detector/markers", help="the node's markers topic")
    p.add_argument("--rate-hz", type=float, default=10.0, help="publish rate (default 10)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the node (default 60)")
    p.add_argument("--drain", type=float, default=15.0,
                   help="seconds to wait for an answer: the last frame's, and the previous frame's before an "
                        "after_answer frame (default 15)")
    p.add_argument("--bag", type=Path, default=None,
                   help=f"write clouds + markers + diagnostics here (mcap), as {BAG_CLOUD_TOPIC} and "
                        f"{BAG_MARKERS_TOPIC}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate_hz <= 0:
        print("demo_client: --rate-hz must be > 0", file=sys.stderr)
        return 2
    frames, spec = load_manifest(args.manifest)
    client = DemoClient(args.topic, args.markers_topic, spec["class_names"])
    try:
        if not client.wait_for_node(args.wait):
            print(f"demo_client: no detector node on {args.topic} / {args.markers_topic} after {args.wait:.0f} s",
                  file=sys.stderr)
            return 3
        _emit("ready", frames=len(frames))
        client.publish(frames, args.rate_hz, args.drain)
        client.wait_for_answer(len(frames) - 1, args.drain)
        time.sleep(1.2)  # one more diagnostics period: the node's final counts
        client.spin.check()
        counts = client.write_bag(args.bag) if args.bag else {}
        with client._lock:
            _emit("done", sent=len(client.sent), answered=len(client.answered), diagnostics=client.diagnostics,
                  bag=str(args.bag) if args.bag else None, bag_counts=counts)
        return 0
    except SpinFailed as exc:
        _emit("error", message=str(exc))  # the demo reports this failure, not the unanswered frames as drops
        return 4
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
