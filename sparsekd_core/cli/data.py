"""``sparsekd-data``: turn a dataset as users download it into cached infos and the gt-sampling database."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from sparsekd_core.data.infos import INFOS_DIR, infos_path
from sparsekd_core.data.nuscenes_format import VERSIONS

EPILOG = f"""\
commands:
  kitti          infos and gt database of a KITTI root
  waymo          infos and gt database of a Waymo root in OpenPCDet's processed layout
  waymo-convert  Waymo's downloaded tfrecords -> that processed layout (needs the official waymo package)
  nuscenes       infos (with sweeps and velocities) and gt database of a nuScenes root, through the devkit

what kitti/waymo write (under ROOT/{INFOS_DIR}/):
  <dataset>_infos_<split>.pkl       one record per frame: LiDAR-frame boxes (x y z dx dy dz yaw), class
                                    names, points inside each box, difficulty (KITTI easy/moderate/hard,
                                    Waymo LEVEL_1/LEVEL_2), and for KITTI the 2D boxes, truncation,
                                    occlusion and calib. Training (DetectionDataset) and sparsekd-eval read these.
  <dataset>_dbinfos_train.pkl       the gt-sampling database (OpenPCDet's dbinfos layout) and
  <dataset>_gt_database_train.bin   its object points, relative to each box centre.

layouts they read:
  kitti  ROOT/training/{{velodyne or velodyne_reduced, label_2, calib}}, ROOT/ImageSets/<split>.txt
         (without ImageSets every frame in training/ goes to each split, with a warning)
  waymo  OpenPCDet's processed layout: ROOT/waymo_processed_data_v0_5_0/<segment>/NNNN.npy and
         ROOT/waymo_infos_<split>.pkl (or the segment pickles listed in ROOT/ImageSets/<split>.txt),
         as OpenPCDet's converter or `sparsekd-data waymo-convert` writes it
  nuscenes  the download as extracted: ROOT/<version>/*.json (the devkit's tables), ROOT/samples/LIDAR_TOP,
         ROOT/sweeps/LIDAR_TOP, ROOT/maps; splits are the devkit's (mini_train/mini_val for v1.0-mini,
         train/val for v1.0-trainval), written as train and val

examples:
  sparsekd-sim --out data/sim_kitti --format kitti && sparsekd-data kitti --root data/sim_kitti
  sparsekd-data waymo-convert --tfrecords /data/waymo_download --out /data/waymo --workers 4
  sparsekd-data waymo --root /data/waymo --interval 5 --workers 8    # 20 % of the frames, as in the paper
  sparsekd-data nuscenes --root /data/sets/nuscenes --version v1.0-mini

`sparsekd-data COMMAND --help` explains each command.
"""

CONVERT_EPILOG = """\
what it reads: the tfrecords as Waymo ships them (v1.4.x individual files, or the training_XXXX.tar archives
extracted), searched recursively under --tfrecords. Splits come from the folders training/ validation/
testing/, else from ROOT/ImageSets/<split>.txt (OpenPCDet's lists), else --split.

what it writes under --out (OpenPCDet's processed layout, which `sparsekd-data waymo` reads):
  waymo_processed_data_v0_5_0/<segment>/NNNN.npy   float32 x y z intensity elongation NLZ_flag, every LiDAR's
                                                   first and second return (TOP first), vehicle frame
  waymo_processed_data_v0_5_0/<segment>/<segment>.pkl   frame infos: pose, boxes, classes, difficulty,
                                                   points per box, points per LiDAR
  ImageSets/<split>.txt, waymo_infos_<split>.pkl

It resumes: run the same command again after an interruption and finished segments are skipped,
finished frames of a half-done segment kept.

the official package: waymo-open-dataset-tf-2-12-0==1.6.7 (TensorFlow 2.13, Python 3.11) pins numpy and
TensorFlow versions that clash with this package's, so it lives in a virtualenv of its own: `make waymo-env`
in the source checkout builds .venv-waymo (about 2.5 min, 2.8 GB), which is found automatically. Any other
Python with the package: --waymo-python PATH or $SPARSEKD_WAYMO_PYTHON.

example:
  make waymo-env
  sparsekd-data waymo-convert --tfrecords /data/waymo_v1_4_3/individual_files --out /data/waymo --workers 4
  sparsekd-data waymo --root /data/waymo --interval 5
"""


def _dataset_arguments(p: argparse.ArgumentParser, nuscenes: bool = False) -> None:
    p.add_argument("--root", required=True, help="dataset root (holds training/ for KITTI, "
                   "waymo_processed_data_v0_5_0/ for Waymo, v1.0-*/ samples/ sweeps/ for nuScenes)")
    p.add_argument("--splits", nargs="+", default=None if nuscenes else ["train", "val"], metavar="SPLIT",
                   help="splits to build infos for (default: " + ("every split of the version" if nuscenes else
                                                                  "train val") + ")")
    p.add_argument("--workers", type=int, default=2, help="threads reading frames (default: 2)")
    p.add_argument("--interval", type=int, default=1, metavar="K",
                   help="Waymo: keep every K-th frame of each split (default: 1, all frames)")
    p.add_argument("--db-split", default="train", metavar="SPLIT",
                   help="split the gt database is built from (default: train)")
    p.add_argument("--no-db", action="store_true", help="build infos only, no gt database")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsekd-data",
        description="Prepare a dataset as users download it for training and evaluation: convert Waymo's "
                    "tfrecords, then parse a KITTI or Waymo root once into cached infos and build the "
                    "gt-sampling database that training augmentation pastes objects from.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="dataset", required=True, metavar="COMMAND")
    for name, what in (("kitti", "a KITTI root"), ("waymo", "a Waymo root in OpenPCDet's processed layout")):
        _dataset_arguments(commands.add_parser(
            name, help=f"infos and gt database of {what}", description=f"Infos and gt database of {what}.",
            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter))
    nuscenes = commands.add_parser(
        "nuscenes", help="infos and gt database of a nuScenes root, through the official devkit",
        description="Infos (key frames with their earlier sweeps, boxes and velocities in the LiDAR frame, the 10 "
                    "detection classes, the official splits) and gt database of nuScenes as downloaded, read "
                    "with the official nuscenes-devkit.",
        epilog=NUSCENES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _dataset_arguments(nuscenes, nuscenes=True)
    nuscenes.add_argument("--version", required=True, choices=VERSIONS,
                          help="table version under ROOT: v1.0-mini (10 scenes), v1.0-trainval (850), v1.0-test")
    nuscenes.add_argument("--max-sweeps", type=int, default=10, metavar="N",
                          help="sweeps listed per key frame, itself included (default: 10, as OpenPCDet)")
    from sparsekd_core.data.waymo_tfrecord import add_arguments

    convert = commands.add_parser(
        "waymo-convert", help="Waymo's downloaded tfrecords -> OpenPCDet's processed layout",
        description="Convert the Waymo Open Dataset tfrecords as downloaded into the processed layout that "
                    "`sparsekd-data waymo` reads, with Waymo's official package.",
        epilog=CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(convert)
    convert.add_argument("--waymo-python", metavar="PATH",
                         help="Python with waymo-open-dataset installed (default: found as described below)")
    return parser


NUSCENES_EPILOG = """\
what it reads: nuScenes as extracted from the download: ROOT/<version>/*.json, ROOT/samples/LIDAR_TOP,
ROOT/sweeps/LIDAR_TOP and ROOT/maps (v1.0-mini is one archive; trainval needs its metadata and the LiDAR
blobs of samples/ and sweeps/).

what it writes under ROOT/sparsekd_infos/: nuscenes_infos_<split>.pkl (OpenPCDet's nuScenes info layout: the
key frame's LIDAR_TOP file, up to --max-sweeps - 1 earlier sweeps with their transform into the key frame
and time lag, boxes x y z dx dy dz yaw with velocity vx vy in the LiDAR frame, the 10 detection classes,
LiDAR points per box), the gt database of train. Splits train/val are the devkit's mini_train/mini_val
(v1.0-mini) or train/val (v1.0-trainval).

Points read from it: x y z, intensity / 255, and time_lag (0 for the key frame; earlier sweeps, when a
model merges them, carry their age in seconds).

examples:
  sparsekd-data nuscenes --root /data/sets/nuscenes --version v1.0-mini
  sparsekd-eval --dataset /data/sets/nuscenes --checkpoint C --metric nuscenes     # mAP, NDS, TP errors
"""


def waymo_convert(args: argparse.Namespace) -> int:
    """Run the conversion where the official package is: here, or in its own virtualenv."""
    from sparsekd_core.data import waymo_env, waymo_tfrecord

    try:
        python = waymo_env.find_waymo_python(args.waymo_python)
    except FileNotFoundError as err:
        print(f"sparsekd-data waymo-convert: {err}", file=sys.stderr)
        return 1
    argv = ["--tfrecords", args.tfrecords, "--out", args.out, "--workers", str(args.workers),
            "--lidars", args.lidars] + (["--split", args.split] if args.split else []) + (
        ["--quiet"] if args.quiet else [])
    if python == sys.executable:
        status = waymo_tfrecord.main(argv)
    else:
        status = waymo_env.run_in_waymo_python(python, waymo_tfrecord.__name__, argv)
    if status == 0:
        print(f"next: sparsekd-data waymo --root {args.out}")
    return status


def _print_summaries(summaries, start: float) -> None:
    for summary in summaries:
        for line in summary.lines():
            print(line)
    print(f"done in {time.perf_counter() - start:.1f} s")


def nuscenes_infos(args: argparse.Namespace) -> int:
    from sparsekd_core.data.nuscenes_infos import create_nuscenes_infos

    if args.interval != 1:
        print("sparsekd-data: --interval applies to Waymo only", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        summaries = create_nuscenes_infos(args.root, args.version, args.splits, args.max_sweeps, args.workers,
                                          None if args.no_db else args.db_split, progress=not args.quiet)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"sparsekd-data: {err}", file=sys.stderr)
        return 1
    _print_summaries(summaries, start)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workers < 1 or getattr(args, "interval", 1) < 1:
        print("sparsekd-data: --workers and --interval must be >= 1", file=sys.stderr)
        return 2
    if args.dataset == "waymo-convert":
        return waymo_convert(args)
    if args.dataset == "nuscenes":
        return nuscenes_infos(args)
    db_split = None if args.no_db else args.db_split
    if (db_split is not None and db_split not in args.splits
            and not infos_path(args.root, args.dataset, db_split).is_file()):
        # e.g. `--splits val` on frames kept for measuring: the database is built from a split's infos
        print(f"sparsekd-data: no gt database: its split '{db_split}' has no infos here and is not in --splits "
              f"(add it to --splits to build one)", file=sys.stderr)
        db_split = None
    start = time.perf_counter()
    try:
        if args.dataset == "kitti":
            if args.interval != 1:
                print("sparsekd-data: --interval applies to Waymo only; KITTI splits come from ImageSets",
                      file=sys.stderr)
                return 2
            from sparsekd_core.data.kitti_infos import create_kitti_infos

            summaries = create_kitti_infos(args.root, args.splits, args.workers, db_split, progress=not args.quiet)
        else:
            from sparsekd_core.data.waymo_infos import create_waymo_infos

            summaries = create_waymo_infos(args.root, args.splits, args.interval, args.workers, db_split,
                                           progress=not args.quiet)
    except (FileNotFoundError, ValueError) as err:
        print(f"sparsekd-data: {err}", file=sys.stderr)
        return 1
    _print_summaries(summaries, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
