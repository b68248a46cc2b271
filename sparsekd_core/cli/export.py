"""sparsekd-export: a model to ONNX (its dense part), or a pillar model to Autoware's lidar_centerpoint files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..backends import BackendError
from ..checkpoint import CheckpointError
from ..config import ConfigError
from ..export import FORMATS, ExportError, export
from ..export.autoware import AUTOWARE_REF, PATCH_MARK
from ..export.exporter import DEFAULT_FRAME, DEFAULT_TOLERANCE

EPILOG = f"""formats:
  onnx      <out>/<name>.onnx: the dense part of any zoo model. Pillar models: voxels (V, P, F), num_points (V,),
            coords (V, 4) of one cloud -> heatmap, center, center_z, dim, rot maps (pillar encoder, scatter, 2D
            backbone, head). Voxel models: the BEV map (B, C, H, W) -> the same maps; the sparse 3D backbone
            before it stays spconv.
  autoware  the files Autoware's lidar_centerpoint loads (pillar models; checked against {AUTOWARE_REF}):
            pts_voxel_encoder_<name>.onnx, pts_backbone_neck_head_<name>.onnx, <name>.param.yaml,
            <name>_ml_package.param.yaml, detection_class_remapper.param.yaml. Stock Autoware scatters 32
            pillar channels; the zoo's pillar models have 64, so their files need an Autoware build with
            encoder_out_feature_size_ set to 64: the export warns and says where (--stock-autoware refuses).

Every ONNX passes onnx's full checker and is run with onnxruntime against torch on --frame; the largest
difference per output map (divided by the map's largest value where that exceeds 1) goes to
<out>/export_report.json, and the command fails above --tolerance.

examples:
  sparsekd-export cp_voxel_s --format onnx --out export/
  sparsekd-export runs/student/final.pth --format autoware --out aw/ --name my_student
  sparsekd-export cp_pillar_v0.64 --format autoware --out aw/      # warns: 64 channels need a patched Autoware
  sparsekd-export cp_pillar_v0.4 --untrained --format onnx --out /tmp/x    # a zoo config, random weights
  ros2 launch autoware_lidar_centerpoint lidar_centerpoint.launch.xml model_name:=<name> model_path:=$PWD/aw \\
      model_param_path:=$PWD/aw/<name>.param.yaml
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sparsekd-export", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", metavar="MODEL_OR_CKPT",
                    help="a .pth checkpoint, or a zoo name with bundled weights (cp_voxel_s, cp_pillar_v0.64)")
    ap.add_argument("--format", required=True, choices=FORMATS, help="onnx | autoware (see below)")
    ap.add_argument("--out", required=True, type=Path, help="output directory (created)")
    ap.add_argument("--name", help="model name in file names (Autoware's model_name); default: the model's")
    ap.add_argument("--untrained", action="store_true",
                    help="MODEL is a zoo config name or YAML: export it with random weights (for trying the pipeline)")
    ap.add_argument("--frame", type=Path, default=DEFAULT_FRAME,
                    help="point file for the numerical check (.bin/.npy/.pcd/.ply); default: a bundled KITTI frame")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="largest difference onnxruntime vs torch allowed per map, relative where its values exceed 1 "
                         "(default %(default)g)")
    aw = ap.add_argument_group("autoware")
    aw.add_argument("--stock-autoware", action="store_true",
                    help="refuse a model that stock Autoware cannot load as it is (a pillar encoder wider than the "
                         "32 channels it scatters) instead of writing its files with a warning that says which "
                         "constant to rebuild Autoware with")
    aw.add_argument("--class-names", help="Autoware class names, one per model class, comma-separated "
                                          "(default: mapped from the model's, e.g. Vehicle -> CAR, Cyclist -> BICYCLE)")
    aw.add_argument("--max-voxels", type=int, help="model_params.max_voxel_size (default: the model's test maximum)")
    aw.add_argument("--score-threshold", type=float, default=0.35,
                    help="post_process_params.score_threshold (default %(default)s, Autoware's)")
    aw.add_argument("--trt-precision", choices=("fp16", "fp32"), default="fp16",
                    help="trt_precision of the engines Autoware builds (default %(default)s)")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    options = {"frame": args.frame, "tolerance": args.tolerance}
    if args.format == "autoware":
        options.update(allow_patch=not args.stock_autoware, max_voxels=args.max_voxels,
                       score_threshold=args.score_threshold, trt_precision=args.trt_precision,
                       class_names=[c.strip() for c in args.class_names.split(",")] if args.class_names else None)
    elif args.stock_autoware or args.class_names or args.max_voxels:
        ap.error("--stock-autoware, --class-names and --max-voxels apply to --format autoware only")
    try:
        report = export(args.model, args.format, args.out, name=args.name, untrained=args.untrained, **options)
    except (ExportError, CheckpointError, ConfigError, BackendError) as e:
        print(f"sparsekd-export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} export of {report.model} to {args.out}/:")
    for f in report.files:
        print(f"  {f}")
    for kind, tensors in (("in ", report.inputs), ("out", report.outputs)):
        for name, t in tensors.items():
            print(f"  {kind} {name}: ({', '.join(str(d) for d in t['shape'])}) {t['dtype']}")
    print(f"onnxruntime vs torch on {report.frame}, largest difference per map, relative above 1 "
          f"(tolerance {report.tolerance:g}):")
    for name, diff in report.max_diff.items():
        print(f"  {name}: {diff:.2e}{'' if diff <= report.tolerance else '  TOO LARGE'}")
    for note in report.notes:
        if PATCH_MARK in note:  # files that stock Autoware cannot load must not pass unnoticed
            print(f"sparsekd-export: WARNING: {note}", file=sys.stderr)
        else:
            print(f"note: {note}")
    if args.format == "autoware":
        out = args.out.resolve()
        print(f"\nrun it ({report.autoware}):\n  ros2 launch autoware_lidar_centerpoint lidar_centerpoint.launch.xml "
              f"model_name:={report.model} model_path:={out} model_param_path:={out}/{report.model}.param.yaml")
    if not report.ok:
        print("sparsekd-export: error: onnxruntime and torch disagree beyond the tolerance", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
