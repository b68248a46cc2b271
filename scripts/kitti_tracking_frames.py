#!/usr/bin/env python3
"""Turn sweeps of a labelled KITTI *tracking* sequence into object-benchmark frames, to MEASURE on.

A few public repositories carry sweeps of KITTI's tracking sequences, and xinshuoweng/AB3DMOT carries the official
labels of all 21 training sequences (``scripts/KITTI/label/SSSS.txt``). A tracking label line is an object label
line with the frame number and track id in front; the calibration spells three keys without the object suffix
(``R_rect``, ``Tr_velo_cam``, ``Tr_imu_velo``). This script writes every ``--every``-th sweep of one sequence as
``velodyne/SSSS_NNNNNN.bin``, ``label_2/`` (that frame's lines without the two leading fields, a frame without
objects as an empty file, as KITTI does), ``calib/`` (the object key names) and ``image_2/`` when given, into a
folder that ``scripts/real_kitti_frames.py --source NAME=DIR`` then gathers with the other real frames:

    git clone --depth 1 https://github.com/HengLan/Visualize-KITTI-Objects-in-Videos /tmp/henglan
    D=/tmp/henglan/data/KITTI
    python scripts/kitti_tracking_frames.py --sequence 0001 --label $D/label_2/0001.txt --calib $D/calib/0001.txt \\
        --velodyne $D/velodyne/0001 --image $D/image_2/0001 --every 5 --out /tmp/trk1
    python scripts/real_kitti_frames.py --out /tmp/kitti_more --exclude ../shared/data/kitti_real \\
        --exclude /tmp/kitti_heldout --source trk1=/tmp/trk1
    sparsekd-data kitti --root /tmp/kitti_more --splits val

Consecutive sweeps of a sequence are near copies of one another, hence ``--every`` (5 by default: half a second
apart at 10 Hz). The tracking labels give truncation as 0, 1 or 2 rather than a fraction, so boxes marked 1 or 2
fall outside every KITTI difficulty and count neither as found nor as missed. KITTI is CC BY-NC-SA 3.0
(non-commercial): keep these frames out of anything you ship, and never train or tune on frames you measure with.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from sparsekd_core.data.kitti_format import read_calib, write_calib

#: A tracking label line: frame, track id, then the 15 fields of an object label line.
TRACKING_FIELDS = 17


def labels_by_frame(path: Path) -> dict[int, list[str]]:
    """The object label lines of each frame of a tracking label file (field text kept as written)."""
    frames: dict[int, list[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != TRACKING_FIELDS or not fields[0].isdigit():
            raise SystemExit(f"error: {path}:{n} is not a KITTI tracking label line (frame, track id and 15 object "
                             f"fields, {TRACKING_FIELDS} in all; got {len(fields)}): {line.strip()!r}")
        frames.setdefault(int(fields[0]), []).append(" ".join(fields[2:]))
    return frames


def convert(sequence: str, label: Path, calib: Path, velodyne: Path, image: Path | None, every: int,
            max_frames: int, out: Path) -> list[str]:
    """Write every ``every``-th sweep of ``velodyne`` (at most ``max_frames``) as object frames in ``out``."""
    if not velodyne.is_dir():
        raise SystemExit(f"error: --velodyne {velodyne} is not a folder: give the sequence's folder of NNNNNN.bin")
    labels = labels_by_frame(label)
    calibration = read_calib(calib)
    sweeps = sorted((int(p.stem), p) for p in velodyne.glob("*.bin") if p.stem.isdigit())
    chosen = [(number, p) for number, p in sweeps if number % every == 0][:max_frames]
    for sub in ("velodyne", "label_2", "calib"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for number, points in chosen:
        name = f"{sequence}_{number:06d}"
        shutil.copyfile(points, out / "velodyne" / f"{name}.bin")
        (out / "label_2" / f"{name}.txt").write_text("".join(f"{line}\n" for line in labels.get(number, [])))
        write_calib(out / "calib" / f"{name}.txt", calibration)
        picture = image / f"{number:06d}.png" if image else None
        if picture and picture.is_file():
            (out / "image_2").mkdir(exist_ok=True)
            shutil.copyfile(picture, out / "image_2" / f"{name}.png")
        names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequence", required=True, help="the sequence's number as KITTI writes it, e.g. 0001")
    p.add_argument("--label", required=True, type=Path, help="its tracking label file (label_02/SSSS.txt)")
    p.add_argument("--calib", required=True, type=Path, help="its calibration (calib/SSSS.txt)")
    p.add_argument("--velodyne", required=True, type=Path, help="its folder of sweeps (velodyne/SSSS/NNNNNN.bin)")
    p.add_argument("--image", type=Path, help="its folder of camera images (image_02/SSSS/NNNNNN.png), optional")
    p.add_argument("--every", type=int, default=5, help="take sweeps whose number is a multiple of this (default 5)")
    p.add_argument("--max-frames", type=int, default=100, help="take at most this many sweeps (default 100)")
    p.add_argument("--out", required=True, type=Path, help="folder to write velodyne/, label_2/, calib/ (and "
                   "image_2/) into; several sequences may share it")
    args = p.parse_args(argv)
    if args.every < 1 or args.max_frames < 1:
        p.error("--every and --max-frames take whole numbers of 1 or more")
    names = convert(args.sequence, args.label, args.calib, args.velodyne, args.image, args.every, args.max_frames,
                    args.out)
    print(f"{len(names)} frames of sequence {args.sequence} in {args.out}; next: scripts/real_kitti_frames.py "
          f"--source NAME={args.out}")
    return 0 if names else 1


if __name__ == "__main__":
    sys.exit(main())
