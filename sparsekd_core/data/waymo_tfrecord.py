"""Waymo Open Dataset tfrecords, as users download them, converted to the processed layout of waymo_format.py.

``sparsekd-data waymo-convert --tfrecords DIR --out ROOT`` runs :func:`convert_tfrecords` in a Python that
has the official ``waymo-open-dataset`` package (see waymo_env.py for where that Python comes from). The
package decodes the frames and turns range images into points; this module decides what to keep and
writes it. What is kept is what OpenPCDet's converter (v0.6, the one SparseKD's data comes from) keeps,
so a root converted here and one converted by OpenPCDet hold the same data:

- Points: for every LiDAR, in calibration order (TOP first, then FRONT, SIDE_LEFT, SIDE_RIGHT, REAR),
  the first return and then the second, each in range-image row-major order, only pixels with
  range > 0. Columns x y z (vehicle frame; the TOP LiDAR with its per-pixel pose, as the package's
  ``frame_utils.convert_range_image_to_cartesian`` computes it), intensity and elongation (raw, range
  image channels 1 and 2), and the NLZ flag (channel 3: -1 outside any no-label zone). ``--lidars top``
  keeps the TOP LiDAR only (both returns). ``num_points_of_each_lidar`` counts rows per LiDAR.
- Labels (``frame.laser_labels``): class by label type (unknown dropped; Vehicle, Pedestrian, Sign,
  Cyclist kept, as OpenPCDet keeps them), the box (centre, length/width/height, heading) as
  ``gt_boxes_lidar``, ``detection_difficulty_level`` as difficulty, ``num_lidar_points_in_box`` as the
  points per box, ids and tracking difficulty. Unlabelled (test) segments get no ``annos``.
- Per segment ``<segment>/NNNN.npy`` and ``<segment>/<segment>.pkl``; per split ``ImageSets/<split>.txt``
  and ``waymo_infos_<split>.pkl`` over every converted segment of the split.

Splits: a tfrecord's split comes from ``--split``, else from its folder (``training``, ``validation``,
``testing`` as Waymo ships them, or ``train``/``val``/``test``), else from ``ROOT/ImageSets/*.txt``
(OpenPCDet's lists, when the tfrecords lie in one folder as in OpenPCDet's ``raw_data``).

Resuming: every file is written to a temporary name and renamed when complete. A segment whose ``.pkl``
exists is done and skipped; in a segment that was cut short, frames whose ``.npy`` exists keep it (only
their labels are read again), so a rerun of the same command continues where the last one stopped.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from sparsekd_core.data import waymo_format as wf

log = logging.getLogger(__name__)

#: Waymo's label types, indexed by ``Label.Type`` (OpenPCDet's names).
LABEL_TYPES: tuple[str, ...] = ("unknown", "Vehicle", "Pedestrian", "Sign", "Cyclist")
#: Folder names of the download (and their short forms) -> split.
SPLIT_FOLDERS = {"training": "train", "train": "train", "validation": "val", "val": "val",
                 "testing": "test", "test": "test"}
LIDAR_CHOICES = ("all", "top")
TOP_LIDAR = 1  # dataset_pb2.LaserName.TOP


@dataclass(frozen=True)
class Segment:
    """One downloaded tfrecord: a 20 s drive of about 200 frames."""

    path: Path
    split: str

    @property
    def name(self) -> str:
        return wf.segment_name(self.path.name)


@dataclass
class SegmentResult:
    name: str
    split: str
    frames: int = 0
    reused_frames: int = 0  # frames whose .npy a previous run had written
    skipped: bool = False  # the whole segment was done before


def _listed_splits(layout: wf.WaymoLayout) -> dict[str, str]:
    """Segment name -> split, from ``ROOT/ImageSets/*.txt`` where they exist."""
    out: dict[str, str] = {}
    folder = layout.root / "ImageSets"
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        for seg in wf.read_image_set(path):
            out.setdefault(seg, path.stem)
    return out


def find_segments(tfrecords: str | Path, out_root: str | Path, split: str | None = None) -> list[Segment]:
    """Every ``*.tfrecord`` under ``tfrecords`` with its split (see the module docstring)."""
    tfrecords = Path(tfrecords)
    if not tfrecords.is_dir():
        raise FileNotFoundError(f"--tfrecords {tfrecords} is not a folder: point it at the folder that holds the "
                                "downloaded segment-*.tfrecord files (or their training/ validation/ folders)")
    files = sorted(tfrecords.rglob("*.tfrecord"))
    if not files:
        raise FileNotFoundError(f"no *.tfrecord under {tfrecords}: extract the downloaded archives "
                                "(training_0000.tar, ...) there first")
    listed = _listed_splits(wf.WaymoLayout(out_root))
    segments, unknown = [], []
    for path in files:
        found = split or SPLIT_FOLDERS.get(path.parent.name.lower()) or listed.get(wf.segment_name(path.name))
        if found is None:
            unknown.append(path)
        else:
            segments.append(Segment(path, found))
    if unknown:
        raise ValueError(
            f"{len(unknown)} tfrecord(s) with no split, e.g. {unknown[0]}: put them in training/ validation/ "
            f"testing/ folders as Waymo ships them, list them in {Path(out_root) / 'ImageSets'}/<split>.txt, "
            "or pass --split")
    names = [s.name for s in segments]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"segment(s) found twice under {tfrecords}: {dup[:3]}; keep one copy of each")
    return segments


# --------------------------------------------------------------------------------------------- one frame
def _matrix(cls, compressed: bytes):
    message = cls()
    message.ParseFromString(zlib.decompress(compressed))
    return message


def parse_range_images(frame) -> tuple[dict, object]:
    """{laser name: [first return, second return]} range images (MatrixFloat) and the TOP LiDAR's pixel poses.

    What the package's ``frame_utils.parse_range_image_and_camera_projection`` returns, without the camera
    projections (not needed here). That function cannot be used as is: it passes a ``bytearray`` to
    ``ParseFromString``, which the protobuf 4.x that its own TensorFlow pulls in rejects ("expected bytes,
    bytearray found"; waymo-open-dataset issue 885), and pure-Python protobuf instead is seconds per frame.
    """
    from waymo_open_dataset import dataset_pb2

    range_images, top_pose = {}, dataset_pb2.MatrixFloat()
    for laser in frame.lasers:
        returns = [r for r in (laser.ri_return1, laser.ri_return2) if len(r.range_image_compressed)]
        if not returns:
            continue
        range_images[laser.name] = [_matrix(dataset_pb2.MatrixFloat, r.range_image_compressed) for r in returns]
        if laser.name == dataset_pb2.LaserName.TOP:
            top_pose = _matrix(dataset_pb2.MatrixFloat, laser.ri_return1.range_image_pose_compressed)
    return range_images, top_pose


def _range_image_array(matrix) -> np.ndarray:
    return np.asarray(matrix.data, np.float32).reshape(list(matrix.shape.dims))


def _kept_lasers(frame, range_images: dict, lidars: str) -> tuple[list[int], int]:
    """Laser names in calibration order (TOP first), and how many returns every one of them has (2)."""
    lasers = [c.name for c in sorted(frame.context.laser_calibrations, key=lambda c: c.name)]
    if lidars == "top":
        lasers = [n for n in lasers if n == TOP_LIDAR]
    missing = [n for n in lasers if n not in range_images]
    if missing:
        raise ValueError(f"frame {frame.context.name} @ {frame.timestamp_micros}: LiDAR(s) {missing} have a "
                         "calibration but no range image; the tfrecord looks damaged")
    return lasers, min((len(range_images[n]) for n in lasers), default=0)


def frame_points(frame, lidars: str = "all") -> tuple[np.ndarray, list[int]]:
    """(N, 6) float32 x y z intensity elongation NLZ_flag of one ``dataset_pb2.Frame``, and the row count
    per LiDAR (see the module docstring for the order)."""
    from waymo_open_dataset.utils import frame_utils

    range_images, top_pose = parse_range_images(frame)
    lasers, n_returns = _kept_lasers(frame, range_images, lidars)
    # (H, W, 3) vehicle-frame x y z of every LiDAR's range image, one call per return.
    cartesian = [frame_utils.convert_range_image_to_cartesian(frame, range_images, top_pose, ri_index=r)
                 for r in range(n_returns)]
    parts, counts = [], []
    for laser in lasers:
        count = 0
        for r, image in enumerate(range_images[laser][:n_returns]):
            channels = _range_image_array(image)  # (H, W, 4) range intensity elongation NLZ
            keep = channels[..., 0] > 0
            parts.append(np.column_stack([np.asarray(cartesian[r][laser])[keep], channels[keep][:, 1:4]]))
            count += int(keep.sum())
        counts.append(count)
    points = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 6), np.float32)
    return points, counts


def frame_point_counts(frame, lidars: str = "all") -> list[int]:
    """Rows per LiDAR that :func:`frame_points` gives, from the range images alone (no geometry)."""
    range_images, _ = parse_range_images(frame)
    lasers, n_returns = _kept_lasers(frame, range_images, lidars)
    return [sum(int((_range_image_array(im)[..., 0] > 0).sum()) for im in range_images[n][:n_returns])
            for n in lasers]


def frame_annos(frame) -> dict:
    """The ``annos`` of one frame from its ``laser_labels`` (unknown-type objects dropped)."""
    labels = [lb for lb in frame.laser_labels if 0 < lb.type < len(LABEL_TYPES)]
    boxes = np.array([[lb.box.center_x, lb.box.center_y, lb.box.center_z, lb.box.length, lb.box.width,
                       lb.box.height, lb.box.heading] for lb in labels], np.float64).reshape(-1, 7)
    return wf.make_annos(
        [LABEL_TYPES[lb.type] for lb in labels], boxes, [lb.num_lidar_points_in_box for lb in labels],
        difficulty=[lb.detection_difficulty_level for lb in labels], obj_ids=[lb.id for lb in labels],
        tracking_difficulty=[lb.tracking_difficulty_level for lb in labels])


# --------------------------------------------------------------------------------------------- one segment
def _read_frames(path: Path):
    import tensorflow as tf
    from waymo_open_dataset import dataset_pb2

    for record in tf.data.TFRecordDataset(str(path), compression_type=""):
        frame = dataset_pb2.Frame()
        frame.ParseFromString(bytes(record.numpy()))
        yield frame


def convert_segment(segment: Segment, out_root: str | Path, lidars: str = "all",
                    progress: bool = False) -> SegmentResult:
    """Write one segment's frames and ``.pkl`` (skipped when the ``.pkl`` exists)."""
    layout = wf.WaymoLayout(out_root)
    result = SegmentResult(segment.name, segment.split)
    if layout.segment_infos_path(segment.name).is_file():
        result.skipped = True
        return result
    infos = []
    frames = tqdm(_read_frames(segment.path), desc=segment.name[:40], unit="frame", leave=False,
                  disable=not progress)
    for index, frame in enumerate(frames):
        npy = layout.frame_path(segment.name, index)
        if npy.is_file():
            counts = frame_point_counts(frame, lidars)
            result.reused_frames += 1
        else:
            points, counts = frame_points(frame, lidars)
            wf.write_frame_points(npy, points)
        annos = None if segment.split == "test" else frame_annos(frame)
        pose = np.asarray(frame.pose.transform, np.float32).reshape(4, 4)
        infos.append(wf.make_frame_info(segment.name, index, pose, annos, num_points=counts))
        result.frames += 1
    if not infos:
        raise ValueError(f"{segment.path} holds no frames: the download is probably truncated; fetch it again")
    wf.write_segment_infos(layout, segment.name, infos)
    return result


def _convert_in_worker(job: tuple[Segment, str, str]) -> SegmentResult:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    segment, out_root, lidars = job
    return convert_segment(segment, out_root, lidars)


def update_split_infos(out_root: str | Path, segments: Sequence[Segment]) -> dict[str, int]:
    """Add the segments to ``ImageSets/<split>.txt`` and rewrite ``waymo_infos_<split>.pkl`` from every segment
    listed there that has its ``.pkl``. Returns frames per split."""
    layout = wf.WaymoLayout(out_root)
    frames: dict[str, int] = {}
    for split in sorted({s.split for s in segments}):
        listed = wf.read_image_set(layout.image_set_path(split)) if layout.image_set_path(split).is_file() else []
        names = sorted(set(listed) | {s.name for s in segments if s.split == split})
        wf.write_image_set(layout.image_set_path(split), names)
        infos = wf.read_infos(layout, split, from_segments=True, drop_other_classes=False)
        wf.write_infos(layout, split, infos)
        frames[split] = len(infos)
    return frames


def convert_tfrecords(tfrecords: str | Path, out_root: str | Path, workers: int = 1, split: str | None = None,
                      lidars: str = "all", progress: bool = True) -> list[SegmentResult]:
    """Convert every tfrecord under ``tfrecords`` into ``out_root`` (module docstring), ``workers`` segments at a
    time. Segments converted before are skipped, half-done ones resumed."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if lidars not in LIDAR_CHOICES:
        raise ValueError(f"lidars must be one of {LIDAR_CHOICES}, got {lidars!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    segments = find_segments(tfrecords, out_root, split)
    results: list[SegmentResult] = []
    bar = tqdm(total=len(segments), desc="waymo-convert", unit="segment", disable=not progress)
    if workers == 1:
        for seg in segments:
            results.append(convert_segment(seg, out_root, lidars, progress))
            bar.update()
    else:
        # spawn: TensorFlow must not be forked once initialised.
        with multiprocessing.get_context("spawn").Pool(min(workers, len(segments))) as pool:
            for result in pool.imap_unordered(_convert_in_worker, [(s, str(out_root), lidars) for s in segments]):
                results.append(result)
                bar.update()
    bar.close()
    per_split = update_split_infos(out_root, segments)
    for split, n in per_split.items():
        log.info("%s: %d frames in %s", split, n, wf.WaymoLayout(out_root).infos_path(split))
    return results


def summary_lines(results: Sequence[SegmentResult]) -> list[str]:
    """What a run did, for the terminal."""
    done = [r for r in results if not r.skipped]
    lines = [f"converted {len(done)} segment(s), {sum(r.frames for r in done)} frames "
             f"({sum(r.reused_frames for r in done)} frames kept from an earlier run); "
             f"{len(results) - len(done)} segment(s) already done"]
    for split in sorted({r.split for r in results}):
        lines.append(f"  {split}: {sum(1 for r in results if r.split == split)} segment(s)")
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the conversion, shared by ``sparsekd-data waymo-convert`` and ``python -m`` of this module."""
    p = argparse.ArgumentParser(prog="python -m sparsekd_core.data.waymo_tfrecord", add_help=True)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tfrecords", required=True, metavar="DIR",
                   help="folder with the downloaded segment-*.tfrecord files (searched recursively)")
    p.add_argument("--out", required=True, metavar="ROOT",
                   help=f"dataset root to write ({wf.PROCESSED_DATA_TAG}/, ImageSets/, waymo_infos_<split>.pkl)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="segments converted in parallel, one process each (default: 1)")
    p.add_argument("--split", default=None,
                   help="split of every tfrecord found (default: from the folder names training/validation/"
                        "testing, else from ROOT/ImageSets/*.txt)")
    p.add_argument("--lidars", choices=LIDAR_CHOICES, default="all",
                   help="all: the five LiDARs as OpenPCDet keeps them (default); top: the TOP LiDAR only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = convert_tfrecords(args.tfrecords, args.out, args.workers, args.split, args.lidars,
                                    progress=not args.quiet)
    except (FileNotFoundError, ValueError) as err:
        print(f"sparsekd-data waymo-convert: {err}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
