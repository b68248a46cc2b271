"""What the demo leaves in its output folder: a BEV PNG per frame, a GIF and an MP4 of the drive, summary.json.

Pictures are drawn by sparsekd_core.viz.bev (the renderer of sparsekd-detect --png) in worker
processes, since a few hundred milliseconds per picture adds up over a 100-frame drive.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsekd_core.data.point_files import read_point_file
from sparsekd_core.detections import Detections

__all__ = ["BevJob", "render_jobs", "write_gif", "write_mp4", "write_summary", "OUT_MARKER", "prepare_out_dir"]

#: A file that marks a folder as the demo's own, so a re-run may replace it (and never anything else).
OUT_MARKER = ".sparsekd_demo"


def prepare_out_dir(out: Path) -> Path:
    """An empty ``out``: created if missing; a previous demo output (with OUT_MARKER) is replaced;
    any other non-empty folder is refused with a ValueError."""
    import shutil

    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {out} is a file: choose a folder")
        if any(out.iterdir()):
            if not (out / OUT_MARKER).is_file():
                raise ValueError(f"--out {out} is a non-empty folder the demo did not write: choose another "
                                 f"(the demo replaces only its own earlier output)")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / OUT_MARKER).write_text("written by python -m sparsekd_ros.demo; the next run replaces this folder\n")
    return out


@dataclass(frozen=True)
class BevJob:
    """One picture: the point file, the predicted boxes, the true boxes, where and how to draw it."""

    png: Path
    points: Path
    detections: Detections | None
    gt_boxes: np.ndarray
    gt_names: tuple[str, ...]
    view: tuple[float, float, float, float]
    title: str
    gif_px: int = 0  # > 0: also return the picture scaled to this size for the GIF


def _render(job: BevJob) -> np.ndarray | None:
    from PIL import Image

    from sparsekd_core.viz.bev import BevView, render_bev

    pts = read_point_file(job.points).points
    rgb = render_bev(pts, job.detections, job.gt_boxes, list(job.gt_names), view=BevView(*job.view), title=job.title)
    image = Image.fromarray(rgb)
    job.png.parent.mkdir(parents=True, exist_ok=True)
    image.save(job.png, compress_level=1)
    if job.gif_px > 0:
        return np.asarray(image.resize((job.gif_px, job.gif_px), Image.Resampling.BILINEAR))
    return None


def render_jobs(jobs: Sequence[BevJob], workers: int = 2, progress: bool = True) -> list[np.ndarray | None]:
    """Draw every job (in ``workers`` processes when there are many); returns the GIF-size pictures."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="bird's-eye views", unit="png", disable=not progress, leave=False)
    try:
        if workers <= 1 or len(jobs) < 8:
            out = []
            for job in jobs:
                out.append(_render(job))
                bar.update(1)
            return out
        import multiprocessing as mp

        # spawn: a fork would copy torch's and open3d's thread pools into the workers
        with mp.get_context("spawn").Pool(workers) as pool:
            out = []
            for result in pool.imap(_render, jobs, chunksize=max(1, math.ceil(len(jobs) / (8 * workers)))):
                out.append(result)
                bar.update(1)
            return out
    finally:
        bar.close()


def write_gif(path: Path, frames: Sequence[np.ndarray], rate_hz: float = 10.0) -> Path:
    """An endlessly looping GIF of equal-size RGB frames at the sensor's rate."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("no frames for the GIF")
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=int(round(1000 / rate_hz)), loop=0)
    return path


def write_mp4(path: Path, frames: Sequence[np.ndarray], rate_hz: float = 10.0) -> Path:
    """An H.264 MP4 (yuv420p, plays in browsers and players) of equal-size RGB frames at the sensor's rate,
    through the ffmpeg binary that imageio-ffmpeg ships (no system ffmpeg needed)."""
    import imageio.v2 as iio2

    if not frames:
        raise ValueError("no frames for the MP4")
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width} x {height}")
    with iio2.get_writer(path, format="FFMPEG", mode="I", fps=rate_hz, codec="libx264", pixelformat="yuv420p",
                         macro_block_size=2, output_params=["-movflags", "+faststart"]) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
    return path


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """summary.json (NaN written as null)."""
    def clean(obj: Any) -> Any:
        if isinstance(obj, float):
            return None if not math.isfinite(obj) else obj
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, (np.floating, np.integer)):
            return clean(obj.item())
        if isinstance(obj, Path):
            return str(obj)
        return obj

    path.write_text(json.dumps(clean(summary), indent=1))
    return path
