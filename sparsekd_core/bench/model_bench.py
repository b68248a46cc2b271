"""Benchmark one zoo model on one frame: parameters, MACs, latency, peak memory.

Run in its own process (``python -m sparsekd_core.bench.model_bench``) so that peak memory belongs to
that model alone; ``sparsekd-bench`` does this for every model and prints the table.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import load_model_config
from ..data.point_files import model_points, read_point_file
from ..inference import SAMPLE_DATA_DIR, Detector, resolve_device
from ..models.detector import build_detector
from .flops import count_macs

#: The packaged 198,130-point Waymo-style sweep (assets/sample_data/README.md), so `make bench` works from any clone.
DEFAULT_FRAME = SAMPLE_DATA_DIR / "waymo_like" / "benchmark_pc.npy"


def load_frame(path: str | Path, features: Sequence[str]) -> np.ndarray:
    """A point file (any format data/point_files.py reads: .npy, KITTI or nuScenes .bin, .pcd, .ply) as the
    model's ``features`` columns; features the file lacks are zeros, intensity scaled to 0..1 (model_points)."""
    cloud = read_point_file(path)
    points, _, _ = model_points(cloud.points, cloud.fields, features)
    return points


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _time_calls(det: Detector, points: np.ndarray, warmup: int, runs: int) -> tuple[list[float], list[dict]]:
    """Seconds of each of ``runs`` whole Detector calls after ``warmup`` untimed ones, and their stage timings."""
    for _ in range(warmup):
        det(points)
    times, stages = [], []
    for _ in range(runs):
        t = time.perf_counter()
        det(points)
        times.append(time.perf_counter() - t)
        stages.append(det.last_timings)
    return times, stages


def bench_model(name: str, frame: str | Path = DEFAULT_FRAME, device: str = "auto", runs: int = 10,
                warmup: int = 2, seed: int = 0, fp16: bool = False, tta_flip: bool = False) -> dict:
    """Figures for one model (random weights: speed and MACs don't depend on the weights' values).
    fp16: the dense layers under fp16 autocast, as the node's ``fp16`` parameter (CUDA only).
    tta_flip: then also time the same Detector with the test-time flip (models/tta_flip.py), in the same process,
    and give the ratio of the two medians."""
    torch.manual_seed(seed)
    cfg = load_model_config(name)
    dev = resolve_device(device)
    points = load_frame(frame, cfg.point_features)
    model = build_detector(cfg).eval()
    params = sum(p.numel() for p in model.parameters())

    # MACs on the CPU, where spconv reports native pair counts (see flops.py).
    cpu_tensor = torch.from_numpy(points)
    macs = count_macs(model, lambda: model([cpu_tensor]))

    base_rss = _rss_mb()
    det = Detector(model.to(dev), {"class_names": cfg.class_names, "point_features": cfg.point_features}, dev, fp16)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, stages = _time_calls(det, points, warmup, runs)
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak_mb = _rss_mb()
    result = {
        "model": name,
        "device": str(dev),
        "fp16": det.fp16,
        "points": int(len(points)),
        "params": int(params),
        "gflops": macs.total / 1e9,
        "gmacs_all_pairs": macs.total_all_pairs / 1e9,
        "gflops_per_stage": {k: v / 1e9 for k, v in macs.per_stage.items()},
        "latency_ms_median": 1000 * float(np.median(times)),
        "latency_ms_p90": 1000 * float(np.percentile(times, 90)),
        "stage_ms_median": {k: 1000 * float(np.median([s[k] for s in stages])) for k in stages[0]},
        "runs": runs,
        "peak_memory_mb": float(peak_mb),
        "peak_memory_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS",
        "baseline_rss_mb": float(base_rss),
    }
    if tta_flip:
        det.tta_flip = True  # ValueError for a model that cannot flip, saying why
        flip_times, _ = _time_calls(det, points, warmup, runs)
        result["tta_flip_latency_ms_median"] = 1000 * float(np.median(flip_times))
        result["tta_flip_ratio"] = float(np.median(flip_times) / np.median(times))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark one model (used by sparsekd-bench; prints JSON).")
    ap.add_argument("--model", required=True)
    ap.add_argument("--frame", default=str(DEFAULT_FRAME))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--tta-flip", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(bench_model(args.model, args.frame, args.device, args.runs, args.warmup, fp16=args.fp16,
                                 tta_flip=args.tta_flip)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
