"""``sparsekd-detect``: 3D boxes for point-cloud files, offline (no ROS): a table, JSON, BEV PNGs or a 3D window."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsekd_core.cli.class_thresholds_option import add_class_thresholds_option, class_setting_from
from sparsekd_core.cli.own_vehicle_option import add_own_vehicle_option, own_vehicle_from
from sparsekd_core.cli.clear_overhead_option import add_clear_overhead_option, apply_clear_overhead
from sparsekd_core.cli.square_footprint_option import add_square_footprint_option, apply_square_footprint
from sparsekd_core.cli.tta_flip_option import add_tta_flip_option, apply_tta_flip
from sparsekd_core.config import DEFAULT_MODEL
from sparsekd_core.data.point_files import (
    POINT_FILE_SUFFIXES,
    list_point_files,
    model_points,
    parse_fields,
    read_point_file,
)
from sparsekd_core.detections import Detections

BOX_CONVENTION = ("x y z dx dy dz yaw: LiDAR frame (x forward, y left, z up), gravity centre, full extents in "
                  "metres, yaw in radians about +z from +x")

DESCRIPTION = """\
Detect 3D objects in LiDAR point-cloud files with a zoo model or a checkpoint, without ROS.

Formats: .bin (KITTI x y z intensity, or nuScenes x y z intensity ring: --fields), .npy ((N, 3..6): x y z
[intensity [elongation]], Waymo-processed (N, 6)), .pcd and .ply (read by open3d, fields by name). A
directory stands for the point files directly inside it.

Boxes: """ + BOX_CONVENTION + """. Models that regress velocity (e.g. an imported nuScenes
CenterPoint) add vx vy in m/s. A model that merges several sweeps sees each file as one sweep (time lag 0).

Intensity: models take 0..1 (KITTI reflectance). --intensity-scale auto (default) keeps values that are
already within 0..1 (KITTI, Waymo, the simulator), divides by 255 when the largest is at most 255
(nuScenes, most Velodyne drivers) and by 65535 above that (16-bit sensors, with a warning); give a number
to force a factor. A feature the file lacks (e.g. elongation for a Waymo model) is fed as zeros."""

EPILOG = """\
examples:
  sparsekd-detect ../shared/data/kitti/training/velodyne_reduced/000008.bin --model kitti_cp_voxel_s
  sparsekd-detect ../shared/data/nuscenes/lidar_top.bin --fields x,y,z,intensity,ring --json > boxes.json
  sparsekd-detect scans/ --model runs/my_student/last.pth --png bev/ --score-threshold 0.4
  sparsekd-detect cloud.pcd --show                  # open3d window (needs a display)

--model takes a zoo name with a bundled checkpoint (sparsekd_core/assets/checkpoints/<name>.pth) or a
.pth path (sparsekd-train writes them). The ROS node uses the same models: detector_node model:=...
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparsekd-detect", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help=f"point files ({', '.join(POINT_FILE_SUFFIXES)}) or directories of them")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                   help=f"zoo name with bundled weights, or a checkpoint .pth (default: {DEFAULT_MODEL}, the node's)")
    p.add_argument("--fields", default=None, metavar="x,y,z,intensity[,ring]",
                   help="column names of .bin/.npy files, in file order (their count must match the file); "
                        "default: guessed (KITTI 4 columns; nuScenes 5 for 'lidar_top'/'*.pcd.bin' names)")
    p.add_argument("--intensity-scale", default="auto", metavar="auto|FACTOR",
                   help="factor for the intensity column (default auto: see above)")
    p.add_argument("--score-threshold", type=float, default=None, metavar="T",
                   help="keep boxes scoring at least T, for classes without their own (default: the checkpoint's "
                        "own threshold)")
    add_class_thresholds_option(p)
    p.add_argument("--min-points", type=int, default=None, metavar="N",
                   help="drop boxes holding fewer than N LiDAR returns (default: the checkpoint's "
                        "head.post.min_points; 0 keeps every box)")
    add_own_vehicle_option(p)
    add_square_footprint_option(p)
    add_clear_overhead_option(p)
    add_tta_flip_option(p)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--png", type=Path, default=None, metavar="DIR",
                   help="write a bird's-eye-view PNG per file into DIR (created if missing)")
    p.add_argument("--show", action="store_true", help="open an open3d window per file with the cloud and boxes")
    return p


@dataclass
class FileResult:
    """One file's outcome: its points as fed to the model and the detections."""

    path: Path
    num_points: int
    fields: tuple[str, ...]
    intensity_scale: float
    missing_features: list[str]
    detections: Detections
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = self.detections
        return {
            "file": str(self.path),
            "points": self.num_points,
            "fields": list(self.fields),
            "intensity_scale": self.intensity_scale,
            "missing_features": self.missing_features,
            "latency_ms": {k: round(1e3 * v, 3) for k, v in self.timings.items()},
            "detections": [
                {"class": n, "score": round(float(s), 4), "box": [round(float(v), 4) for v in b],
                 **({} if d.velocities is None else {"velocity": [round(float(v), 4) for v in d.velocities[i]]})}
                for i, (n, s, b) in enumerate(zip(d.names, d.scores, d.boxes))
            ],
        }


def expand_files(args: Sequence[str | Path]) -> list[Path]:
    """FILE arguments -> point files (a directory stands for the point files directly inside it)."""
    out: list[Path] = []
    for a in args:
        out.extend(list_point_files(a))
    return out


def format_table(result: FileResult, model: str) -> str:
    """A header line and one row per box: class, score, x y z dx dy dz yaw."""
    d = result.detections
    total_ms = 1e3 * sum(result.timings.values())
    lines = [f"{result.path}: {result.num_points} points ({' '.join(result.fields)}), {len(d)} boxes, "
             f"{total_ms:.0f} ms [{model}]"]
    if result.missing_features:
        lines.append(f"  note: the file has no {', '.join(result.missing_features)}; fed as zeros")
    if len(d):
        heads = ("x", "y", "z", "dx", "dy", "dz", "yaw") + (("vx", "vy") if d.velocities is not None else ())
        lines.append(f"  {'#':>3}  {'class':<12}{'score':>6}" + "".join(f"{h:>8}" for h in heads))
        for i, (name, score, box) in enumerate(zip(d.names, d.scores, d.boxes)):
            values = list(box) + (list(d.velocities[i]) if d.velocities is not None else [])
            lines.append(f"  {i:>3}  {name:<12}{score:>6.3f}" + "".join(f"{v:>8.2f}" for v in values))
    return "\n".join(lines)


def png_name(path: Path, used: set[str]) -> str:
    """'<stem>.png', or '<stem>_<suffix>.png' when another file of this run already took the stem."""
    name = f"{path.stem}.png"
    if name in used:
        name = f"{path.stem}_{path.suffix.lstrip('.')}.png"
    k = 2
    base = name[:-4]
    while name in used:
        name = f"{base}_{k}.png"
        k += 1
    used.add(name)
    return name


def untrained_banner(model: str) -> str:
    bar = "!" * 78
    return (f"{bar}\n!! {model}: UNTRAINED (random) weights. The boxes below show that the pipeline runs,\n"
            f"!! not what is in the scene. Train one (sparsekd-train) or use a bundled model.\n{bar}")


def detect_file(det: Any, path: Path, fields: tuple[str, ...] | None, scale: str) -> tuple[FileResult, np.ndarray]:
    """Read one file and run the detector; returns the result and the model-input points."""
    frame = read_point_file(path, fields)
    points, missing, factor = model_points(frame.points, frame.fields, det.point_features, scale)
    detections = det(points)
    return FileResult(path, len(points), frame.fields, factor, missing, detections, dict(det.last_timings)), points


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    err = lambda msg: print(f"sparsekd-detect: {msg}", file=sys.stderr)  # noqa: E731
    if args.intensity_scale != "auto":
        try:
            float(args.intensity_scale)
        except ValueError:
            err(f"error: --intensity-scale must be auto or a number such as 0.00392 (1/255), "
                f"got {args.intensity_scale!r}")
            return 2
    try:
        fields = parse_fields(args.fields) if args.fields else None
        files = expand_files(args.files)
    except ValueError as exc:
        err(f"error: {exc}")
        return 2
    if args.show:
        from sparsekd_core.viz.scene3d import has_display

        if not has_display():
            err("error: --show needs a display (DISPLAY / WAYLAND_DISPLAY is not set, e.g. over SSH): "
                "use --png DIR for bird's-eye-view pictures instead")
            return 2

    from sparsekd_core.checkpoint import CheckpointError
    from sparsekd_core.inference import load_detector
    from sparsekd_core.thresholds import class_thresholds_for

    try:
        setting = class_setting_from(args)
        det = load_detector(args.model, device=args.device)
    except (CheckpointError, ValueError) as exc:
        err(f"error: {exc}")
        return 2
    try:
        if args.score_threshold is not None:
            det.score_threshold = float(args.score_threshold)
        det.class_score_thresholds = class_thresholds_for(setting, det.operating_thresholds)
        if args.min_points is not None:
            det.min_points = args.min_points
        det.own_vehicle = own_vehicle_from(args)
        apply_square_footprint(det, args.square_footprint)
        apply_clear_overhead(det, args.clear_overhead)
        apply_tta_flip(det, args.tta_flip)
    except ValueError as exc:
        err(f"error: {exc}")
        return 2
    untrained = bool(det.meta.get("untrained"))
    if untrained:
        print(untrained_banner(det.name), file=sys.stderr)

    from tqdm import tqdm

    results: list[FileResult] = []
    failed = 0
    used_png: set[str] = set()
    for path in tqdm(files, desc="sparsekd-detect", unit="file", disable=len(files) < 3 or not sys.stderr.isatty()):
        try:
            result, points = detect_file(det, path, fields, args.intensity_scale)
        except (ValueError, FileNotFoundError) as exc:
            err(f"skipping {path}: {exc}")
            failed += 1
            continue
        results.append(result)
        if not args.json:
            print(format_table(result, f"{det.name} on {det.device}"), flush=True)
        if args.png is not None:
            from sparsekd_core.viz.bev import BevView, save_bev_png

            title = f"{path.name} | {det.name}{' (UNTRAINED)' if untrained else ''} | {len(result.detections)} boxes"
            save_bev_png(args.png / png_name(path, used_png), points, result.detections,
                         view=BevView.from_range(det.point_cloud_range), title=title, scores=True)
        if args.show:
            from sparsekd_core.viz.scene3d import show

            show(points, result.detections, title=f"sparsekd-detect: {path.name}")
    if args.json:
        doc = {"model": det.name, "device": str(det.device), "untrained": untrained,
               "class_names": list(det.class_names), "point_features": list(det.point_features),
               "score_threshold": det.score_threshold, "class_score_thresholds": det.class_score_thresholds,
               "min_points": det.min_points, "square_footprint": list(det.square_footprint),
               "clear_overhead": list(det.clear_overhead),
               "tta_flip": det.tta_flip,
               "own_vehicle": None if det.own_vehicle is None else det.own_vehicle.as_list(),
               "box_convention": BOX_CONVENTION,
               "files": [r.to_json() for r in results]}
        print(json.dumps(doc, indent=1))
    if args.png is not None and results:
        print(f"wrote {len(results)} bird's-eye view(s) to {args.png}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
