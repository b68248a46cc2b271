"""``sparsekd-import``: an OpenPCDet or SparseKD checkpoint + its YAML config -> a sparsekd checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsekd_core.openpcdet.spconv_layout import LAYOUTS

DESCRIPTION = """\
Convert a CenterPoint, SECOND or PointPillars trained with OpenPCDet (>= 0.5, or earlier with spconv 1.x) or
SparseKD into one self-contained sparsekd checkpoint. The result runs in the ROS node (-p checkpoint:=OUT.pth),
sparsekd-detect and sparsekd-eval, and serves as a teacher for sparsekd-train --teacher OUT.pth (KD and TGI).

Supported: voxel models (MeanVFE + VoxelResBackBone8x or VoxelBackBone8x + HeightCompression) and pillar models
(PillarVFE + PointPillarScatter), each with BaseBEVBackbone and either a CenterHead of one or more class groups,
with or without velocity (CenterPoint), or an AnchorHeadSingle (SECOND, PointPillars: OpenPCDet's
kitti_models/second.yaml, pointpillar.yaml, waymo_models/second.yaml, pointpillar_1x.yaml), as OpenPCDet's
Waymo, KITTI and nuScenes configs and SparseKD's cp-voxel / cp-pillar configs define them. Anything else is
refused by name.

Carried over from the config: class names and their grouping into heads, point features (and the dataset's
intensity scale), voxel size, range, points per voxel, voxel caps, sweeps, target, loss and post-processing
settings (score threshold, centre range, NMS type and settings; for anchor heads the anchors, assignment
thresholds and direction classifier) and the training schedule."""

EPILOG = f"""\
the config:
  Pass the YAML the checkpoint was trained with. Its _BASE_CONFIG_ includes (e.g. cfgs/dataset_configs/
  waymo_dataset.yaml) are resolved as OpenPCDet does, against the working directory (OpenPCDet's tools/), and
  also against the config's own folder and its parents, so a config inside an OpenPCDet checkout works from
  anywhere. A SparseKD *_sparsekd.yaml imports its student (MODEL).

the checkpoint:
  OpenPCDet's files hold model_state, epoch, it, optimizer_state and version; they are read on the CPU without
  running any code from the file. A 'module.' prefix is removed; SparseKD's distillation-only keys
  (kd_adapt_block.*, dense_head_aux.*) and global_step are left out and listed. The residual blocks' sparse-conv
  biases are folded exactly into the following BatchNorm.

--spconv-layout:
  {'; '.join(f'{k} = {v}' for k, v in LAYOUTS.items())}.
  auto (default) decides from the checkpoint's version and from the shapes of all its sparse convs together,
  and stops with a message when they leave a choice; it never guesses.

examples:
  sparsekd-import cp-voxel_6429.pth --config tools/cfgs/waymo_models/cp-voxel/cp-voxel.yaml --out cp_voxel.pth
  sparsekd-import checkpoint_epoch_20.pth --config tools/cfgs/nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml \\
      --out nus_centerpoint.pth
  sparsekd-detect ../shared/data/nuscenes/lidar_top.bin --model nus_centerpoint.pth
  sparsekd-train --model cp_voxel_s --teacher cp_voxel.pth --kd sparsekd --data /data/waymo --out runs/s
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparsekd-import", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, metavar="CKPT", help="OpenPCDet / SparseKD checkpoint (.pth)")
    p.add_argument("--config", type=Path, metavar="CFG.yaml",
                   help="the OpenPCDet / SparseKD model config the checkpoint was trained with (required)")
    p.add_argument("--out", type=Path, metavar="OUT.pth", help="where to write the sparsekd checkpoint (required)")
    p.add_argument("--name", default=None, help="model name stored in the checkpoint (default: the config's file name)")
    p.add_argument("--spconv-layout", default="auto", choices=("auto", *LAYOUTS),
                   help="sparse-conv weight layout of the checkpoint (default auto: see below)")
    p.add_argument("--intensity-max", type=float, default=None, metavar="N",
                   help="largest intensity the model was trained on (1 for 0..1, 255 for raw 8-bit); default from "
                        "the config's DATASET (KITTI and Waymo 1, nuScenes 255)")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the file size)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("--config CFG.yaml is required: the OpenPCDet YAML the checkpoint was trained with (an "
                     "OpenPCDet checkpoint holds only weights; the config says which network they belong to)")
    if args.out is None:
        parser.error("--out OUT.pth is required: where to write the converted checkpoint")
    from sparsekd_core.openpcdet.importer import import_checkpoint

    try:
        report = import_checkpoint(args.checkpoint, args.config, args.out, spconv_layout=args.spconv_layout,
                                   intensity_max=args.intensity_max, name=args.name, fp16=args.fp16)
    except ValueError as e:
        print(f"sparsekd-import: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
