"""``sparsekd-data``: build the cached infos and the gt-sampling database of a KITTI or Waymo root."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from sparsekd_core.data.infos import INFOS_DIR

EPILOG = f"""\
what it writes (under ROOT/{INFOS_DIR}/):
  <dataset>_infos_<split>.pkl       one record per frame: LiDAR-frame boxes (x y z dx dy dz yaw), class
                                    names, points inside each box, difficulty (KITTI easy/moderate/hard,
                                    Waymo LEVEL_1/LEVEL_2), and for KITTI the 2D boxes, truncation,
                                    occlusion and calib. Training (DetectionDataset) and sparsekd-eval read these.
  <dataset>_dbinfos_train.pkl       the gt-sampling database (OpenPCDet's dbinfos layout) and
  <dataset>_gt_database_train.bin   its object points, relative to each box centre.

layouts it reads:
  kitti  ROOT/training/{{velodyne or velodyne_reduced, label_2, calib}}, ROOT/ImageSets/<split>.txt
         (without ImageSets every frame in training/ goes to each split, with a warning)
  waymo  OpenPCDet's processed layout: ROOT/waymo_processed_data_v0_5_0/<segment>/NNNN.npy and
         ROOT/waymo_infos_<split>.pkl (or the segment pickles listed in ROOT/ImageSets/<split>.txt)

examples:
  sparsekd-sim --out data/sim_kitti --format kitti && sparsekd-data kitti --root data/sim_kitti
  sparsekd-data waymo --root /data/waymo --interval 5 --workers 8    # 20 % of the frames, as in the paper
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsekd-data",
        description="Parse a KITTI or Waymo dataset once into cached infos and build the gt-sampling database "
                    "that training augmentation pastes objects from.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=("kitti", "waymo"), help="layout of ROOT")
    parser.add_argument("--root", required=True, help="dataset root (holds training/ for KITTI, "
                        "waymo_processed_data_v0_5_0/ for Waymo)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], metavar="SPLIT",
                        help="splits to build infos for (default: train val)")
    parser.add_argument("--workers", type=int, default=2, help="threads reading frames (default: 2)")
    parser.add_argument("--interval", type=int, default=1, metavar="K",
                        help="Waymo: keep every K-th frame of each split (default: 1, all frames)")
    parser.add_argument("--db-split", default="train", metavar="SPLIT",
                        help="split the gt database is built from (default: train)")
    parser.add_argument("--no-db", action="store_true", help="build infos only, no gt database")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workers < 1 or args.interval < 1:
        print("sparsekd-data: --workers and --interval must be >= 1", file=sys.stderr)
        return 2
    db_split = None if args.no_db else args.db_split
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
    for summary in summaries:
        for line in summary.lines():
            print(line)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
