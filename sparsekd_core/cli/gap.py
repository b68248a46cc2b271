"""``sparsekd-gap``: put real and simulated LiDAR frames side by side (eval/domain_gap.py)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sparsekd_core.cli.class_thresholds_option import add_class_thresholds_option, class_setting_from
from sparsekd_core.cli.own_vehicle_option import add_own_vehicle_option, own_vehicle_from
from sparsekd_core.cli.clear_overhead_option import add_clear_overhead_option, apply_clear_overhead
from sparsekd_core.cli.square_footprint_option import add_square_footprint_option, apply_square_footprint
from sparsekd_core.cli.tta_flip_option import add_tta_flip_option, apply_tta_flip
from sparsekd_core.cli.view_turn_option import add_view_turn_option, apply_view_turn

DESCRIPTION = """\
Measure the gap between real and simulated LiDAR frames in the figures a detector is sensitive to:
points per frame, ground height, the sensor's own vehicle, how much stands around the road (returns
0.3-3 m above it by distance: parked cars, walls, vegetation), intensity (percentiles, zeros, by range),
box sizes per class, points per fully visible object by distance, how deep an object's returns lie in
its box (from its centre, along the sensor's ray), and, with --checkpoint, boxes and
false boxes per frame at the model's score threshold (false: in the front camera's view, near no
labelled object and outside every DontCare region), by class and distance, with the median score of
false boxes beside that of boxes on labelled objects (what a score threshold can separate), and how
the boxes on labelled objects are wrong: per class, how many got a box within 1.5 m, their centre,
size and yaw errors, and their BEV IoU against KITTI's threshold (and the share that would pass with
the label's yaw, or with its size: which error costs the AP); the same for pedestrians in company
(another within 1.1 m), where one box across two people is a common failure, and for pedestrians
crossing the sensor's ray, whom a detector that misreads their shape boxes along it (beside how wide
people read across the ray at chest height, crossing it or walking along it); for pedestrians and
cyclists, labelled and false, how flat their returns lie (a real body is round; a board is not) and
whether something goes on up over their heads; and for cyclists seen from the side, where the rider sits
along the bicycle (head and shoulders from the box centre) and how much of them is wheels and frame
(returns below 0.9 m); and how much stands within 3 m of each pedestrian and cyclist that is on no
labelled road user (walls, posts, bollards, bushes). Each side is a KITTI-format split prepared by sparsekd-data.
"""

EPILOG = """\
examples:
  cp -r ../shared/data/kitti_real /tmp/kitti_real && sparsekd-data kitti --root /tmp/kitti_real --splits val
  sparsekd-gap --side real=/tmp/kitti_real:val --side sim=data/sim/kitti:val
  sparsekd-gap --side real=/tmp/kitti_real:val --side sim=data/sim/kitti:val --checkpoint cp_pillar_v0.64 \
      --score-threshold 0.3
  sparsekd-gap ... --json gap.json
  sparsekd-gap --side real=KITTI_ROOT:val --checkpoint cp_voxel_s --score-threshold 0.3 --images pictures/
      # KITTI roots with image_2/: pictures/real/<frame>.png show what each false box stands on
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsekd-gap", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True, metavar="NAME=ROOT[:SPLIT]",
                        help="a column of the report: a KITTI-format dataset root and split (default val); "
                             "give it twice or more")
    parser.add_argument("--checkpoint", default=None, metavar="C",
                        help="also run this checkpoint (or bundled model name) and count its boxes per frame")
    parser.add_argument("--score-threshold", type=float, default=None, metavar="S",
                        help="score threshold for --checkpoint, for classes without their own (default: the model's "
                             "own; the ROS node publishes at 0.3 unless told otherwise, so use 0.3 to count what "
                             "a robot sees)")
    add_class_thresholds_option(parser)
    parser.add_argument("--min-points", type=int, default=None, metavar="N",
                        help="for --checkpoint: drop boxes holding fewer than N LiDAR returns (default: the "
                             "checkpoint's head.post.min_points; 0 keeps every box)")
    add_own_vehicle_option(parser)
    add_square_footprint_option(parser)
    add_clear_overhead_option(parser)
    add_tta_flip_option(parser)
    add_view_turn_option(parser)
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="with --checkpoint: draw each frame's labels and boxes on its camera image (KITTI "
                             "image_2/<frame>.png beside the point files) into DIR/<side>/<frame>.png, false boxes "
                             "thick and captioned with class, score, distance and returns: what they stand on")
    parser.add_argument("--max-frames", type=int, default=200, metavar="N",
                        help="frames per side (default 200; 0 = all)")
    parser.add_argument("--device", default="cpu", help="device for --checkpoint (default cpu)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def parse_side(text: str) -> tuple[str, Path, str]:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--side {text!r}: expected NAME=ROOT[:SPLIT], e.g. real=/tmp/kitti_real:val")
    root, _, split = rest.partition(":")
    return name, Path(root), split or "val"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sparsekd_core.data.infos import load_split
    from sparsekd_core.eval.domain_gap import format_report, measure
    from sparsekd_core.thresholds import class_thresholds_for

    try:
        sides = [parse_side(s) for s in args.side]
        detector = None
        if args.checkpoint:
            from sparsekd_core.inference import load_detector

            setting = class_setting_from(args)
            detector = load_detector(args.checkpoint, args.device)
            if args.score_threshold is not None:
                detector.score_threshold = args.score_threshold
            detector.class_score_thresholds = class_thresholds_for(setting, detector.operating_thresholds)
            if args.min_points is not None:
                detector.min_points = args.min_points
            detector.own_vehicle = own_vehicle_from(args)
            apply_square_footprint(detector, args.square_footprint)
            apply_clear_overhead(detector, args.clear_overhead)
            apply_tta_flip(detector, args.tta_flip)
            apply_view_turn(detector, args.view_turn)
        if args.view_turn and detector is None:
            raise ValueError("--view-turn turns what a detector sees: give --checkpoint too")
        if args.images and detector is None:
            raise ValueError("--images draws a detector's boxes: give --checkpoint too")
        results, drawn = [], []
        for name, root, split in sides:
            infos = load_split(root, "kitti", split)
            images = Path(args.images) / name if args.images else None
            stats = measure(name, infos, root, detector, max_frames=args.max_frames or None,
                            progress=not args.quiet, images_dir=images)
            results.append(stats.summary())
            if images is not None:
                drawn.append(f"{name}: {stats.images} camera images drawn into {images}" if stats.images else
                             f"{name}: no camera images (image_2/<frame>.png beside the point files) to draw on")
    except (ValueError, FileNotFoundError) as err:
        print(f"sparsekd-gap: error: {err}", file=sys.stderr)
        return 2
    if detector is not None:
        vehicle = "none" if detector.own_vehicle is None else " ".join(f"{v:g}" for v in detector.own_vehicle.as_list())
        square, flip = ",".join(detector.square_footprint) or "none", "on" if detector.tta_flip else "off"
        overhead = ",".join(detector.clear_overhead) or "none"
        print(f"detector: {args.checkpoint} (score threshold {detector.thresholds.describe()}, min points "
              f"{detector.min_points}, square footprint {square}, clear overhead {overhead}, test-time flip {flip}, "
              f"own vehicle {vehicle})")
    print(format_report(results))
    for line in drawn:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "sides": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
