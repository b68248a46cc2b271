"""Generating a whole simulated dataset: scenes, splits, writers, previews, progress and rate.

Output layout (``--format both``)::

    OUT/kitti/   training/{velodyne,label_2,calib}, ImageSets/{train,val}.txt     (kitti_format.py)
    OUT/waymo/   waymo_processed_data_v0_5_0/<segment>/..., waymo_infos_{train,val}.pkl, ImageSets
    OUT/preview/ bird's-eye-view PNGs (``--preview N``)
    OUT/sim_meta.json  what was generated: the simulator's streets version (sim/version.py), preset,
                       seed, mode, options, splits, and per frame its KITTI id, Waymo segment/sample
                       index, split, scene, timestamp, sensor, mounting height and whether the sensor
                       rode on a vehicle body (ego_body.py)

Splits: snapshot scenes hold up to 10 frames each; whole scenes go to val (the last
``val_fraction`` of them, at least one when the fraction is > 0), so no street appears in both
splits. A drive is split in time: its first frames are train, the last ``val_fraction`` val (two
Waymo segments); ``val_fraction`` 1 puts the whole drive into val (for evaluation and the demo).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from sparsekd_core.data.kitti_format import frame_id as kitti_frame_id
from sparsekd_core.data.sim.scene import PEOPLE_OPTIONS, SimFrame, SimOptions, SnapshotScene, frame_rng
from sparsekd_core.data.sim.sensor import PRESETS, SensorMix
from sparsekd_core.data.sim.version import STREETS_VERSION

FRAMES_PER_SCENE = 10
FORMATS = ("kitti", "waymo", "both")


@dataclass(frozen=True)
class FramePlan:
    """Where one generated frame goes. index: global frame number (KITTI id); scene/frame: source."""

    index: int
    scene: int
    frame: int
    split: str
    segment: str
    sample_idx: int


def plan_frames(frames: int, seed: int, val_fraction: float, sequence: bool,
                frames_per_scene: int = FRAMES_PER_SCENE) -> list[FramePlan]:
    """Assign every frame a scene, a split and a Waymo segment (see the module docstring)."""
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"--val-fraction must be within [0, 1], got {val_fraction}")
    plans: list[FramePlan] = []
    if sequence:
        n_val = int(round(frames * val_fraction))
        for k in range(frames):
            split = "train" if k < frames - n_val else "val"
            start = 0 if split == "train" else frames - n_val
            plans.append(FramePlan(k, 0, k, split, f"segment-sim{seed}-drive-{split}", k - start))
        return plans
    scenes = max(1, math.ceil(frames / frames_per_scene))
    if 0 < val_fraction < 1 and frames >= 2:
        scenes = max(scenes, 2)
    n_val = int(round(scenes * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if val_fraction < 1:
        n_val = min(n_val, scenes - 1)
    sizes = [frames // scenes + (1 if s < frames % scenes else 0) for s in range(scenes)]
    index = 0
    for scene, size in enumerate(sizes):
        split = "val" if scene >= scenes - n_val else "train"
        for k in range(size):
            plans.append(FramePlan(index, scene, k, split, f"segment-sim{seed}-{scene:04d}", k))
            index += 1
    return plans


def with_frame_height(options: SimOptions, sensors: SensorMix) -> SimOptions:
    """``options`` with its frame height fixed: a dataset's frames share one frame (and one KITTI calib), so
    a mix of sensors is written in the nominal frame of its main preset unless a height is given."""
    if options.frame_height is not None:
        return options
    return replace(options, frame_height=sensors.primary.nominal_frame_height)


def iterate_frames(sensors: str | SensorMix, plans: list[FramePlan], seed: int, sequence: bool,
                   drive_frames: int | None = None, options: SimOptions = SimOptions()
                   ) -> Iterator[tuple[FramePlan, SimFrame]]:
    """Simulate the planned frames in order, building each scene's static world once.

    sensors: a preset name or mix (each scene draws its sensor from it); ``drive_frames``: length of the whole
    drive in sequence mode (when ``plans`` is only part of it).
    """
    from sparsekd_core.data.sim.sequence import DriveScene

    mix = sensors if isinstance(sensors, SensorMix) else SensorMix.parse(sensors)
    options = with_frame_height(options, mix)
    for plan in plans:
        key = (str(mix), seed, sequence, plan.scene, drive_frames or len(plans), options)
        if _SCENE_CACHE.get("key") != key:
            _SCENE_CACHE["key"] = key
            preset = mix.pick(frame_rng(seed, plan.scene, 0, 5))
            _SCENE_CACHE["scene"] = (DriveScene(preset, seed, plan.scene, drive_frames or len(plans), options=options)
                                     if sequence else SnapshotScene(preset, seed, plan.scene, options=options))
        yield plan, _SCENE_CACHE["scene"].frame(plan.frame)


# The scene a process is working on: consecutive chunks of one scene reuse its world.
_SCENE_CACHE: dict = {}


@dataclass(frozen=True)
class _Job:
    """What a worker needs to simulate and write a chunk of frames."""

    out: str
    preset: str
    fmt: str
    seed: int
    sequence: bool
    drive_frames: int
    plans: tuple[FramePlan, ...]
    preview: frozenset
    options: SimOptions
    labels: str


def _run_chunk(job: _Job) -> list[dict]:
    """Simulate and write a chunk; returns one record per frame (with its Waymo info, if any)."""
    from sparsekd_core.data.sim.preview import save_bev_png
    from sparsekd_core.data.sim.writer import KittiWriter, WaymoWriter

    out = Path(job.out)
    mix = SensorMix.parse(job.preset)
    kitti = (KittiWriter(out / "kitti", mix.primary, job.options.frame_height, job.labels)
             if job.fmt in ("kitti", "both") else None)
    waymo = WaymoWriter(out / "waymo") if job.fmt in ("waymo", "both") else None
    records = []
    for plan, frame in iterate_frames(mix, list(job.plans), job.seed, job.sequence, job.drive_frames,
                                      job.options):
        fid = kitti_frame_id(plan.index)
        record = {"kitti_id": fid, "segment": plan.segment, "sample_idx": plan.sample_idx, "split": plan.split,
                  "scene": plan.scene, "timestamp": frame.timestamp, "points": len(frame.points),
                  "kinds": [str(k) for k in frame.kinds], "sensor": frame.preset,
                  "mount_height": round(frame.meta["mount_height"], 3), "ego_body": frame.meta["ego_body"]}
        if kitti is not None:
            record["kitti_labels"] = kitti.write(fid, frame)
        if waymo is not None:
            record["waymo_info"] = waymo.write(plan.segment, plan.sample_idx, frame,
                                               obj_prefix=f"s{job.seed}-{plan.scene}-")
        if plan.index in job.preview:
            kinds = ", ".join(f"{n} {k}" for k, n in zip(*np.unique(frame.kinds, return_counts=True)))
            save_bev_png(out / "preview" / f"{fid}.png", frame.points, frame.boxes, frame.kinds,
                         title=f"{job.preset} frame {fid} ({plan.split}): {kinds}")
        records.append(record)
    return records


def _chunks(plans: list[FramePlan], size: int) -> list[list[FramePlan]]:
    """Consecutive runs of at most ``size`` frames that never span two scenes."""
    chunks: list[list[FramePlan]] = []
    for plan in plans:
        if chunks and len(chunks[-1]) < size and chunks[-1][-1].scene == plan.scene:
            chunks[-1].append(plan)
        else:
            chunks.append([plan])
    return chunks


@dataclass
class Summary:
    """What a run produced: frames, wall seconds, CPU seconds (all processes and threads), points,
    labelled objects per kind and frames per split."""

    frames: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    points: int = 0
    objects: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Frames per wall-clock second."""
        return self.frames / max(self.seconds, 1e-9)

    @property
    def cpu_ms_per_frame(self) -> float:
        """CPU time per frame: what the rate would cost on an idle core (machines shared with other
        jobs show a lower rate than this implies)."""
        return 1000.0 * self.cpu_seconds / max(self.frames, 1)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def default_workers(frames: int) -> int:
    """One simulation process per CPU core (at most 4) for runs of 100 frames or more: the Python half
    of a frame is single-threaded. Shorter runs stay in this process: a worker costs about 1.5 CPU
    seconds to start (imports), more than it saves."""
    return 1 if frames < 100 else max(1, min(4, os.cpu_count() or 1))


def generate(out: str | Path, frames: int = 200, preset: str = "hdl64", fmt: str = "both", seed: int = 0,
             val_fraction: float = 0.2, sequence: bool = False, preview: int = 0,
             progress: bool = True, workers: int | None = None, options: SimOptions = SimOptions(),
             labels: str = "all") -> Summary:
    """Simulate ``frames`` frames and write them under ``out``; returns counts and the achieved rate.

    preset: a sensor preset or a mix (``"hdl64:0.7,vlp16:0.3"``: each scene draws its sensor).
    options: label style, random mounting, frame height, ray caster, ego body (scene.SimOptions). labels: KITTI
    label region ("all" around the sensor, or "camera": writer.py).
    ``workers`` processes simulate chunks of frames in parallel (default: :func:`default_workers`); every frame
    depends only on (seed, scene, frame), so the output is the same for any number of workers.
    """
    from sparsekd_core.data.sim.writer import LABEL_REGIONS, KittiWriter, WaymoWriter

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if labels not in LABEL_REGIONS:
        raise ValueError(f"--labels must be one of {', '.join(LABEL_REGIONS)}, got {labels!r}")
    mix = SensorMix.parse(preset)
    sensor = mix.primary
    options = with_frame_height(replace(options, raycaster=options.raycaster.resolved()), mix)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_frames(frames, seed, val_fraction, sequence)
    preview_at = frozenset(np.linspace(0, frames - 1, preview).round().astype(int).tolist()) if preview > 0 \
        else frozenset()
    workers = default_workers(frames) if workers is None else max(1, int(workers))
    chunk = 10 if sequence else FRAMES_PER_SCENE
    jobs = [_Job(str(out), str(mix), fmt, seed, sequence, frames, tuple(c), preview_at, options, labels)
            for c in _chunks(plans, chunk)]
    workers = min(workers, len(jobs))

    summary = Summary()
    records: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=frames, unit="frame", desc=f"sparsekd-sim {mix}")
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    if workers == 1:
        results = map(_run_chunk, jobs)
    else:
        import multiprocessing as mp

        # spawn: open3d's thread pools and CUDA do not survive a fork.
        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap(_run_chunk, jobs)
    try:
        for chunk_records in results:
            records.extend(chunk_records)
            if bar is not None:
                bar.update(len(chunk_records))
    finally:
        if workers > 1:
            pool.close()
            pool.join()

    kitti = KittiWriter(out / "kitti", sensor, options.frame_height, labels) if fmt in ("kitti", "both") else None
    waymo = WaymoWriter(out / "waymo") if fmt in ("waymo", "both") else None
    for record in records:
        summary.frames += 1
        summary.points += record["points"]
        for kind in record.pop("kinds"):
            summary.objects[kind] = summary.objects.get(kind, 0) + 1
        summary.splits[record["split"]] = summary.splits.get(record["split"], 0) + 1
        info = record.pop("waymo_info", None)
        if waymo is not None:
            waymo.add(record["segment"], record["split"], info)
    if kitti is not None:
        kitti.finish({split: [r["kitti_id"] for r in records if r["split"] == split] for split in ("train", "val")})
    if waymo is not None:
        waymo.finish()
    summary.seconds = time.perf_counter() - start
    summary.cpu_seconds = _cpu_seconds() - cpu_start
    if bar is not None:
        bar.close()
    meta = {
        "generator": "sparsekd-sim", "streets_version": STREETS_VERSION, "preset": str(mix), "seed": seed,
        "sequence": sequence,
        "rate_hz": sensor.rate_hz if sequence else None, "format": fmt, "frames": frames,
        "val_fraction": val_fraction, "label_style": options.label_style, "random_mount": options.random_mount,
        "mount_heights": {name: list(PRESETS[name].mount_heights) for name in mix.names},
        "frame_height": options.frame_height, "labels": labels, "raycaster": str(options.raycaster),
        "ego_body": options.ego_body, "narrow_streets": options.narrow_streets, "vehicle_glass": options.vehicle_glass,
        "street_clutter": options.street_clutter, "people_brightness": options.people_brightness,
        "vehicle_clear_coat": options.vehicle_clear_coat,
        "road_furniture": options.road_furniture, "edge_returns": options.edge_returns,
        "pedalling_riders": options.pedalling_riders, "real_bicycles": options.real_bicycles,
        **{option: getattr(options, option) for option in PEOPLE_OPTIONS},
        # the frame everything is written in: on the road ("vehicle", z = 0 there) or above it (a sensor frame)
        "points_frame": "vehicle" if options.frame_height == 0 else "sensor",
        "splits": summary.splits, "frames_list": records,
    }
    (out / "sim_meta.json").write_text(json.dumps(meta, indent=1))
    return summary
