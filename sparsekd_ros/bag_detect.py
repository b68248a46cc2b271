"""sparsekd-bag-detect: run a detector over every cloud of a rosbag2 and write a new bag with the
clouds, the markers and (with vision_msgs) the detections, at the clouds' timestamps.

  sparsekd-bag-detect IN_BAG OUT_BAG --model cp_voxel_s
  ros2 bag play OUT_BAG   # then RViz with rviz/sparsekd.rviz shows clouds and boxes
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from tqdm import tqdm

from sparsekd_core.cli.class_thresholds_option import add_class_thresholds_option, class_setting_from
from sparsekd_core.cli.own_vehicle_option import add_own_vehicle_option, own_vehicle_from
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_core.thresholds import ScoreThresholds, class_thresholds_for
from sparsekd_ros.bag_io import (CLOUD_TYPE, BagError, BagWriter, iter_messages, open_bag, pick_cloud_topic, storage_of,
                                 to_rclpy)
from sparsekd_ros.cloud_input import model_input
from sparsekd_ros.messages import detections_to_markers, detections_to_vision, label_info, load_vision_msgs
from sparsekd_ros.parameters import NODE_NAME, SPECS, check_range_crop
from sparsekd_ros.pointcloud2 import MalformedCloud

__all__ = ["MARKERS_TOPIC", "DETECTIONS_TOPIC", "LABEL_INFO_TOPIC", "detect_bag", "main"]

#: Same topics as the node publishes, so rviz/sparsekd.rviz works on the output bag.
MARKERS_TOPIC = f"/{NODE_NAME}/markers"
DETECTIONS_TOPIC = f"/{NODE_NAME}/detections"
LABEL_INFO_TOPIC = f"/{NODE_NAME}/label_info"


def detect_bag(
    in_bag: str | Path,
    out_bag: str | Path,
    det: Any,
    topics: Sequence[str] | None = None,
    storage: str | None = None,
    intensity_field: str = "intensity",
    intensity_scale: float = 1.0,
    max_range: float = 0.0,
    sensor_to_model: RigidTransform | None = None,
    copy_other_topics: bool = False,
    progress: bool = True,
    min_range: float = 0.0,
) -> dict[str, Any]:
    """Detect on every cloud of ``topics`` (default: the bag's only cloud topic) and write ``out_bag``.

    The output holds each input cloud unchanged, a MarkerArray on MARKERS_TOPIC and, when vision_msgs
    is installed, a Detection3DArray on DETECTIONS_TOPIC, all at the cloud's bag timestamp and with
    its header, plus one vision_msgs/LabelInfo on LABEL_INFO_TOPIC (class id -> name) with the first.
    Malformed clouds are copied and counted, without markers.
    sensor_to_model: points are moved by it into the model's frame and the boxes back (as the node's parameter).
    Boxes are in each cloud's own frame.
    copy_other_topics: also copy every non-cloud topic (e.g. /tf) unchanged.
    Returns counts and the mean detector time.
    """
    vision = load_vision_msgs()
    reader = open_bag(in_bag)
    try:
        cloud_set = set(topics) if topics else {pick_cloud_topic(reader, None)}
        for t in cloud_set:
            pick_cloud_topic(reader, t)  # raises with the bag's cloud topics if t is not one
        wanted = None if copy_other_topics else cloud_set
        total = sum(c.msgcount for c in reader.connections if wanted is None or c.topic in wanted)
        summary = {"clouds": 0, "boxes": 0, "skipped": 0, "copied": 0, "detector_s": 0.0, "problems": []}
        with BagWriter(out_bag, storage or storage_of(reader)) as writer:
            for item in tqdm(iter_messages(reader, wanted), total=total, unit="msg", disable=not progress,
                             desc="detecting"):
                writer.write(item.topic, item.timestamp_ns, item.raw, item.msgtype, like=item.connection)
                if item.topic not in cloud_set or item.msgtype != CLOUD_TYPE:
                    summary["copied"] += 1
                    continue
                cloud: PointCloud2 = to_rclpy(item.raw, item.msgtype)
                try:
                    points = model_input(cloud, det.point_features, intensity_field, intensity_scale, max_range,
                                         min_range)
                except MalformedCloud as exc:
                    summary["skipped"] += 1
                    summary["problems"].append(f"t={item.timestamp_ns}: {exc}")
                    continue
                t0 = time.perf_counter()
                if sensor_to_model is not None:
                    dets = sensor_to_model.inverse().apply_detections(det(sensor_to_model.apply_points(points)))
                else:
                    dets = det(points)
                summary["detector_s"] += time.perf_counter() - t0
                header = Header(stamp=cloud.header.stamp, frame_id=cloud.header.frame_id)
                writer.write(MARKERS_TOPIC, item.timestamp_ns, detections_to_markers(dets, header))
                if vision is not None:
                    if summary["clouds"] == 0 and hasattr(vision, "LabelInfo"):
                        info = label_info(det.class_names, header, det.thresholds.default, vision)
                        writer.write(LABEL_INFO_TOPIC, item.timestamp_ns, info)
                    writer.write(DETECTIONS_TOPIC, item.timestamp_ns, detections_to_vision(dets, header, vision))
                summary["clouds"] += 1
                summary["boxes"] += len(dets)
        summary["out_counts"] = dict(writer.counts)
    finally:
        reader.close()
    summary["vision_msgs"] = vision is not None
    summary["detector_ms_mean"] = 1e3 * summary["detector_s"] / max(summary["clouds"], 1)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsekd-bag-detect",
        description="Run a SparseKD detector over every PointCloud2 of a rosbag2 (sqlite3 or mcap) and write a new "
                    f"bag with the clouds, {MARKERS_TOPIC} (visualization_msgs/MarkerArray) and, when vision_msgs "
                    f"is installed, {DETECTIONS_TOPIC} (vision_msgs/Detection3DArray).",
        epilog="example:\n  sparsekd-bag-detect drive_bag drive_boxes --model cp_voxel_s --topic /points\n"
               "  ros2 bag play drive_boxes & rviz2 -d rviz/sparsekd.rviz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("in_bag", type=Path, help="input rosbag2 directory")
    parser.add_argument("out_bag", type=Path, help="output rosbag2 directory (must not exist)")
    parser.add_argument("--model", default=SPECS["model"].default,
                        help=f"zoo model name or .pth checkpoint (default {SPECS['model'].default}, the node's)")
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu (default auto)")
    parser.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    parser.add_argument("--topic", action="append", default=None,
                        help="cloud topic to detect on (repeatable; default: the bag's only PointCloud2 topic)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default=None,
                        help="output storage (default: as input)")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="minimum box score (default 0.3)")
    add_class_thresholds_option(parser)
    parser.add_argument("--intensity-field", default="intensity", help="cloud field used as intensity")
    parser.add_argument("--intensity-scale", type=float, default=1.0, help="factor on that field (e.g. 0.00392)")
    parser.add_argument("--max-range", type=float, default=0.0, help="keep points within this range (m); 0 = all")
    parser.add_argument("--min-range", type=float, default=0.0,
                        help="drop points nearer than this (m): the robot's own body, as the node's min_range; "
                             "0 = keep all")
    add_own_vehicle_option(parser)
    parser.add_argument("--sensor-to-model", default="0,0,0,0,0,0", metavar="X,Y,Z,ROLL,PITCH,YAW",
                        help="the node's sensor_to_model: moves points into the model's frame (metres, radians) and "
                             "the boxes back; boxes stay in each cloud's frame (default: none)")
    parser.add_argument("--copy-other-topics", action="store_true", help="also copy non-cloud topics (e.g. /tf)")
    return parser


def _numbers(text: str) -> list[float] | str:
    """'0,0,0.77,0,0,0' -> numbers; the text itself when it is not numbers (the parameter's check says why)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sparsekd_core.inference import load_detector  # torch is heavy: only once the arguments are fine

    try:
        check_range_crop(args.min_range, args.max_range)
        setting = class_setting_from(args)
        sensor_to_model = RigidTransform.from_xyz_rpy(*SPECS["sensor_to_model"].typed(_numbers(args.sensor_to_model)))
        det = load_detector(args.model, device=args.device, fp16=args.fp16)
        thresholds = ScoreThresholds(args.score_threshold, class_thresholds_for(setting, det.operating_thresholds))
        unknown = thresholds.unknown(det.class_names)
        if unknown:
            raise ValueError(f"--class-score-thresholds names {unknown}, not classes of {det.name} "
                             f"{list(det.class_names)}")
        det.thresholds = thresholds
        det.own_vehicle = own_vehicle_from(args)
        print(f"model {det.name} on {det.device}, classes {list(det.class_names)}", file=sys.stderr)
        if det.cfg.sweeps > 1:
            print(f"note: {det.name} merges {det.cfg.sweeps} sweeps; sparsekd-bag-detect gives it one cloud at a time "
                  "(time lag 0). The node (detector_node) merges them with the sensor's motion.", file=sys.stderr)
        summary = detect_bag(args.in_bag, args.out_bag, det, args.topic, args.storage, args.intensity_field,
                             args.intensity_scale, args.max_range, sensor_to_model, args.copy_other_topics,
                             min_range=args.min_range)
    except (BagError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"sparsekd-bag-detect: error: {exc}", file=sys.stderr)
        return 2
    for problem in summary["problems"][:5]:
        print(f"skipped cloud {problem}", file=sys.stderr)
    print(
        f"{summary['clouds']} clouds, {summary['boxes']} boxes, {summary['skipped']} skipped, "
        f"{summary['copied']} other messages copied, detector {summary['detector_ms_mean']:.1f} ms/cloud "
        f"-> {args.out_bag}" + ("" if summary["vision_msgs"] else " (no vision_msgs: markers only)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
