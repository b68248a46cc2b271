"""Time one model on one frame and one backend, stage by stage (run in its own process by sparsekd-bench).

Stages, in the Detector's order (CUDA synchronised after each, so a stage's time is its own):
  prepare   crop to the model's range, copy to the device
  voxelise  spconv's PointToVoxel
  sparse    voxel models: mean VFE, sparse 3D backbone, height compression (torch in every backend)
  dense     what the exported graph holds: pillar models VFE + scatter + 2D backbone + head, voxel models
            2D backbone + head (torch modules, or one onnxruntime / TensorRT call)
  decode    top-K centres to boxes
  nms       score/range filter and rotated NMS (postprocess time minus decode time)
  to_host   boxes to numpy
``total`` is the median of whole Detector calls (points in, Detections out), timed apart from the stages.
With ``breakdown`` the dense part is split by module (vfe, to_bev, backbone2d, head): torch with CUDA-synced
forward hooks, onnxruntime from its profiler (its node names carry the module path); TensorRT has none.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..backends import BackendError
from ..backends.inputs import graph_inputs
from ..config import load_model_config
from ..inference import Detector, resolve_device
from ..models.decode import decode_maps
from ..models.detector import build_detector
from .model_bench import DEFAULT_FRAME, load_frame

STAGES = ("prepare", "voxelise", "sparse", "dense", "decode", "nms", "to_host")
DENSE_MODULES = ("vfe", "to_bev", "backbone2d", "head")


def _clock(device: torch.device):
    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
    return now


@torch.no_grad()
def time_stages(det: Detector, points: np.ndarray) -> dict[str, float]:
    """One pass of the Detector's path with a clock between stages: seconds per stage."""
    now = _clock(det.device)
    model = det.model
    t0 = now()
    tensor = det._prepare(points)
    t1 = now()
    vb = model.voxelize([tensor])
    t2 = now()
    if det.dense is None:
        bev = model.bev_input(vb) if model.backbone3d is not None else None
        t3 = now()
        heads = model.head(model.backbone2d(model.bev_input(vb) if bev is None else bev))
    else:
        inputs = graph_inputs(model, vb, det.dense.takes_voxels)
        t3 = now()
        heads = det.dense.run(inputs)
    t4 = now()
    vox, post = model.cfg.voxelization, model.cfg.head.post
    for head in heads:
        decode_maps(head, post.max_per_sample, vox.voxel_size, vox.point_cloud_range, model.cfg.head.feature_stride)
    t5 = now()
    preds = model.decode(heads, det.score_threshold)
    t6 = now()
    for p in preds:
        p.boxes.float().cpu().numpy(), p.scores.float().cpu().numpy(), p.labels.cpu().numpy()
    t7 = now()
    return {"prepare": t1 - t0, "voxelise": t2 - t1, "sparse": t3 - t2, "dense": t4 - t3, "decode": t5 - t4,
            "nms": max(0.0, (t6 - t5) - (t5 - t4)), "to_host": t7 - t6}


@torch.no_grad()
def torch_breakdown(det: Detector, points: np.ndarray, runs: int) -> dict[str, float]:
    """Median seconds per dense module of the torch model (forward hooks, synced)."""
    now, model = _clock(det.device), det.model
    spans: dict[str, list[float]] = collections.defaultdict(list)
    start: dict[str, float] = {}
    handles = []
    for name in DENSE_MODULES:
        if name in ("vfe", "to_bev") and not model.cfg.is_pillar:
            continue  # voxel models: VFE and height compression belong to the sparse part
        module = getattr(model, name)
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: start.__setitem__(n, now())))
        handles.append(module.register_forward_hook(lambda m, a, o, n=name: spans[n].append(now() - start[n])))
    try:
        for _ in range(runs):
            model.forward_voxels(model.voxelize([det._prepare(points)]))
    finally:
        for h in handles:
            h.remove()
    return {n: float(np.median(v)) for n, v in spans.items()}


@torch.no_grad()
def ort_breakdown(det: Detector, points: np.ndarray, runs: int) -> dict[str, float]:
    """Median seconds per dense module inside onnxruntime's graph, from its profiler."""
    from ..backends.ort_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(det.model, det.device, profile=True)
    inputs = graph_inputs(det.model, det.model.voxelize([det._prepare(points)]), runner.takes_voxels)
    for _ in range(runs + 1):  # the first run warms up and is not counted
        runner.run(inputs)
    path = Path(runner.end_profiling())
    events = json.loads(path.read_text())
    path.unlink()
    starts = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    per_run: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * len(starts))
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = bisect.bisect_right([s for s, _ in starts], e["ts"]) - 1
        if i < 0 or e["ts"] > starts[i][1]:
            continue
        first = e["name"].strip("/").split("/")[0]
        per_run[first if first in DENSE_MODULES else "other"][i] += e["dur"] * 1e-6
    return {m: float(np.median(v[1:])) for m, v in per_run.items()}


def bench_stages(name: str, frame: str | Path = DEFAULT_FRAME, device: str = "auto", backend: str = "torch",
                 runs: int = 10, warmup: int = 2, seed: int = 0, fp16: bool = False,
                 breakdown: bool = False) -> dict:
    """Per-stage and whole-call medians of one zoo model (random weights) on one backend."""
    torch.manual_seed(seed)
    cfg = load_model_config(name)
    dev = resolve_device(device)
    points = load_frame(frame, cfg.point_features)
    model = build_detector(cfg).eval().to(dev)
    t = time.perf_counter()
    det = Detector(model, {"class_names": cfg.class_names, "point_features": cfg.point_features}, dev, fp16,
                   backend=backend)
    load_s = time.perf_counter() - t
    now = _clock(dev)
    for _ in range(warmup):
        det(points)
    totals = []
    for _ in range(runs):
        t = now()
        det(points)
        totals.append(now() - t)
    stages = [time_stages(det, points) for _ in range(runs)]
    row = {
        "model": name, "backend": backend, "device": str(dev), "fp16": det.fp16, "points": int(len(points)),
        "voxels": int(model.voxelize([det._prepare(points)]).voxels.shape[0]), "runs": runs,
        "threads": torch.get_num_threads(), "load_s": load_s,
        "total_ms_median": 1000 * float(np.median(totals)),
        "stage_ms_median": {s: 1000 * float(np.median([st[s] for st in stages])) for s in STAGES},
    }
    if breakdown and backend == "torch":
        row["dense_ms_by_module"] = {k: 1000 * v for k, v in torch_breakdown(det, points, runs).items()}
    elif breakdown and backend == "onnxruntime":
        row["dense_ms_by_module"] = {k: 1000 * v for k, v in ort_breakdown(det, points, runs).items()}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Time one model per stage on one backend (used by sparsekd-bench; "
                                             "prints JSON).")
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--frame", default=str(DEFAULT_FRAME))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args(argv)
    try:
        row = bench_stages(args.model, args.frame, args.device, args.backend, args.runs, args.warmup,
                           fp16=args.fp16, breakdown=args.breakdown)
    except BackendError as e:  # a backend this machine cannot run: a row that says why, not a failed bench
        row = {"model": args.model, "backend": args.backend, "device": args.device, "error": str(e)}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
