#!/usr/bin/env python3
"""Lay out labelled real KITTI frames that public repositories redistribute as one KITTI val split, to MEASURE on.

Real labelled LiDAR frames are what tells whether models trained on simulated streets work on a real sensor; the
nine of ``../shared/data/kitti_real`` are too few and have been looked at. Some public repositories carry a few
KITTI object-benchmark training frames (point files, labels, calibration, camera images) as test data. This script
gathers them from local clones into one KITTI tree, leaving out every frame whose point file is byte for byte one
of an excluded tree (``../shared``'s) or one already taken from an earlier source:

    git clone --depth 1 https://github.com/kujason/avod /tmp/avod
    git clone --depth 1 https://github.com/WenyiZhang0311/kitti_tiny_3d /tmp/kitti_tiny_3d
    git clone --depth 1 https://github.com/zhulf0804/PointPillars /tmp/PointPillars
    # PointPillars keeps one labelled frame (000134, its cloud cropped to the camera's view) in a flat folder:
    D=/tmp/PointPillars/pointpillars/dataset/demo_data/val; mkdir -p /tmp/pp/velodyne /tmp/pp/label_2 /tmp/pp/calib \\
        /tmp/pp/image_2 && cp $D/000134.bin /tmp/pp/velodyne/ && cp $D/000134_gt.txt /tmp/pp/label_2/000134.txt && \\
        cp $D/000134.txt /tmp/pp/calib/ && cp $D/000134.png /tmp/pp/image_2/
    python scripts/real_kitti_frames.py --out /tmp/kitti_heldout --exclude ../shared/data/kitti_real \\
        --source avod=/tmp/avod/avod/tests/datasets/Kitti/object/training --source tiny=/tmp/kitti_tiny_3d \\
        --source pp=/tmp/pp
    sparsekd-data kitti --root /tmp/kitti_heldout --splits val
    python scripts/real_results.py --real /tmp/kitti_heldout --sim data/sim28/kitti --out runs/heldout cp_voxel_s

(docs/results.md lists what these hold: 24 sweeps from the first two, 2019-2023 commits, and one crowded street
from the third, 2025; 25 beyond ``../shared``.) A source is a
folder holding ``velodyne/``, ``label_2/`` and ``calib/`` (``image_2/`` too when present, for ``sparsekd-gap
--images``), or one whose ``training/`` does; ``scripts/kitti_tracking_frames.py`` writes sweeps of a labelled
tracking sequence as such a folder. Frames become ``<source name>_<KITTI id>``; files are copied unchanged.

KITTI is CC BY-NC-SA 3.0 (non-commercial): keep the frames out of anything you ship, and never train or tune on
frames you measure with.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

#: KITTI object-benchmark folders a frame needs, and the optional camera image.
NEEDED = (("velodyne", ".bin"), ("label_2", ".txt"), ("calib", ".txt"))
IMAGE = ("image_2", ".png")


def kitti_folder(path: Path) -> Path:
    """``path`` or its ``training/`` folder, whichever holds ``velodyne/``."""
    for candidate in (path, path / "training"):
        if (candidate / "velodyne").is_dir():
            return candidate
    raise SystemExit(f"error: {path} holds no velodyne/ folder (nor training/velodyne/): give the folder of a "
                     "KITTI object-benchmark tree that holds velodyne/, label_2/ and calib/")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gather(out: Path, sources: list[tuple[str, Path]], exclude: list[Path]) -> list[str]:
    """Copy every complete frame of ``sources`` (name, folder) into ``out`` (training/..., ImageSets/val.txt),
    except those whose point file is one of ``exclude``'s or of an earlier frame. Returns the frame names."""
    seen = {digest(p) for root in exclude for p in (kitti_folder(root) / "velodyne").glob("*.bin")}
    taken: list[str] = []
    for name, folder in sources:
        folder = kitti_folder(folder)
        for bin_path in sorted((folder / "velodyne").glob("*.bin")):
            frame = bin_path.stem
            missing = [f"{sub}/{frame}{ext}" for sub, ext in NEEDED if not (folder / sub / f"{frame}{ext}").is_file()]
            if missing:
                print(f"skipped {name} {frame}: no {', '.join(missing)}", file=sys.stderr)
                continue
            key = digest(bin_path)
            if key in seen:
                continue
            seen.add(key)
            new = f"{name}_{frame}"
            for sub, ext in NEEDED + (IMAGE,):
                src = folder / sub / f"{frame}{ext}"
                if src.is_file():
                    (out / "training" / sub).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out / "training" / sub / f"{new}{ext}")
            taken.append(new)
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "val.txt").write_text("".join(f"{f}\n" for f in taken))
    return taken


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="new KITTI root to write (must not exist yet)")
    p.add_argument("--source", action="append", required=True, metavar="NAME=DIR",
                   help="a local clone's KITTI folder, named NAME in the frame names; repeat for more sources")
    p.add_argument("--exclude", action="append", default=[], type=Path, metavar="KITTI_ROOT",
                   help="leave out frames whose point file is one of this tree's (e.g. ../shared/data/kitti_real)")
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"--out {args.out} exists: give a new folder, so that no old frame is measured by mistake")
    sources = []
    for spec in args.source:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            p.error(f"--source {spec!r}: write NAME=DIR, e.g. tiny=/tmp/kitti_tiny_3d")
        sources.append((name, Path(folder)))
    taken = gather(args.out, sources, args.exclude)
    print(f"{len(taken)} frames in {args.out} (ImageSets/val.txt); next: sparsekd-data kitti --root {args.out} "
          "--splits val")
    return 0 if taken else 1


if __name__ == "__main__":
    sys.exit(main())
