"""Training-step cost: how long one optimiser step takes and how much memory it needs, for a detector trained
alone and for a student distilled from a teacher, measured the same way in one process so the ratio holds.

Inputs are synthetic scenes (train/synthetic.py) sized to each model's range, so no dataset is needed; the
figure is the model's cost, not the data loader's (``measure_loader_rate`` in bench/loader_rate.py measures that).
A model that trains on BEV windows (``train.bev_window``, the 360-degree ones) is timed as it trains: on one such
window, the synthetic scene laid out inside it.
Teachers get random weights: KD's cost does not depend on what the teacher has learnt.
"""
from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

from ..config import load_model_config
from ..inference import resolve_device
from ..data.window import BevWindow
from ..models.detector import bev_windows, build_detector
from .objective import build_objective, freeze, kd_requested, recipe_uses_tgi
from .optim import build_optimizer, build_scheduler, trainable_parameters
from .precision import autocast_dtype, needs_grad_scaler, precision_name
from .step import train_step
from .synthetic import synthetic_batch
from .trainer import training_window


def _synthetic_batch(cfg, batch_size: int, n_points: int, device: torch.device, seed: int,
                     window: BevWindow | None = None):
    """Synthetic samples over the model's range or, with ``window``, inside one window (drawn as training draws
    them): points in the sensor frame, boxes in the window's (as data/window.py crops). Returns (points, boxes,
    labels, window offsets (B, 2) or None)."""
    rng = np.random.default_rng(seed)
    area, offset = list(cfg.voxelization.point_cloud_range), None
    if window is not None:
        offset = window.draw(rng)
        area[:2] = [area[0] + offset[0], area[1] + offset[1]]
        area[3:5] = [area[0] + window.size[0], area[1] + window.size[1]]
    points, boxes, labels = synthetic_batch(rng, area, cfg.class_names, batch_size, len(cfg.point_features),
                                            n_ground=n_points, n_boxes=4)
    offsets = None
    if offset is not None:
        boxes[labels >= 0, :2] -= torch.from_numpy(offset)  # into the window's coordinates (padding stays zero)
        offsets = torch.from_numpy(np.tile(offset, (batch_size, 1))).to(device)
    return [p.to(device) for p in points], boxes.to(device), labels.to(device), offsets


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure_train_step(model_name: str, teacher_name: str | None = None, kd: str | None = None,
                       batch_size: int = 2, steps: int = 5, warmup: int = 1, n_points: int = 60000,
                       device: str | torch.device = "auto", amp: bool = True, seed: int = 0) -> dict[str, Any]:
    """Time ``steps`` full training steps (forward, loss, backward, clip, AdamW + one-cycle step) of
    ``model_name``, distilled from a randomly initialised ``teacher_name`` with recipe ``kd`` when both are
    given, after ``warmup`` untimed steps. n_points: ground points per synthetic sample (60k is about what a
    simulated HDL-64 frame leaves inside the KITTI range).

    Returns {model, teacher, kd, batch_size, points_per_sample, bev_window_m, device, amp, precision, steps,
    step_s_median, step_s_all, peak_memory_bytes, memory_kind}. bev_window_m: the (x, y) window trained on, or
    None. memory_kind is "cuda_max_allocated" (peak tensor memory of these steps) or, on CPU, "process_peak_rss"
    (the process's peak resident memory so far: it only grows, so measure the largest configuration last or in
    its own process).
    """
    dev = resolve_device(device)
    torch.manual_seed(seed)
    cfg = load_model_config(model_name)
    student = build_detector(cfg).to(dev).train()
    teacher = None
    use_kd = kd_requested(kd)
    if use_kd:
        if not teacher_name:
            raise ValueError(f"kd={kd!r} needs a teacher_name")
        teacher = freeze(build_detector(load_model_config(teacher_name)).to(dev).eval())
    objective, recipe = build_objective(student, teacher, kd if use_kd else None)
    objective.to(dev)
    if recipe is not None and recipe_uses_tgi(recipe):
        objective.init_student_from_teacher()
    params = trainable_parameters(objective)
    optimizer = build_optimizer(params, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, total_steps=warmup + steps + 1)
    amp_dtype = autocast_dtype(dev, amp)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(amp_dtype))
    window = training_window(cfg, student, teacher) if cfg.train.bev_window else None
    points, boxes, labels, offsets = _synthetic_batch(cfg, batch_size, n_points, dev, seed, window)

    def step():
        with bev_windows([student, teacher], offsets, window.size if window else None):
            train_step(objective, points, boxes, labels, optimizer, scheduler, scaler, params, cfg.train.grad_clip,
                       amp_dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak, kind = int(torch.cuda.max_memory_allocated(dev)), "cuda_max_allocated"
    else:
        peak, kind = _peak_rss_bytes(), "process_peak_rss"
    result = {
        "model": model_name, "teacher": teacher_name if use_kd else None, "kd": kd if use_kd else None,
        "batch_size": batch_size, "points_per_sample": int(np.mean([len(p) for p in points])),
        "bev_window_m": list(window.size) if window else None,
        "device": str(dev), "amp": amp_dtype is not None,
        "precision": precision_name(amp_dtype), "steps": steps,
        "step_s_median": statistics.median(times), "step_s_all": times,
        "peak_memory_bytes": peak, "memory_kind": kind,
    }
    del objective, student, teacher, optimizer, scheduler
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return result


_CHILD = """
import json, sys
from sparsekd_core.train.bench import measure_train_step
args, kwargs = json.loads(sys.stdin.read())
print("@@RESULT@@" + json.dumps(measure_train_step(*args, **kwargs)))
"""


def _measure_in_fresh_process(*args, **kwargs) -> dict[str, Any]:
    """measure_train_step in a new interpreter, so its peak RSS is this configuration's alone. (A subprocess
    rather than multiprocessing: no fork after torch's thread pools exist, no __main__ re-import.)"""
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps([args, {**kwargs, "device": str(
        kwargs.get("device", "auto"))}]), capture_output=True, text=True)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    if proc.returncode != 0 or not marker:
        raise RuntimeError(f"measuring {args} in a subprocess failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(marker[-1][len("@@RESULT@@"):])


def compare_kd_cost(teacher_name: str, student_name: str, kd: str = "sparsekd", batch_size: int = 2,
                    steps: int = 5, isolate: bool | None = None, **kwargs) -> dict[str, Any]:
    """Teacher alone, student alone and student + KD, measured back to back on one machine.

    isolate: run each measurement in its own process (default on CPU, where memory is the process's peak RSS
    and would otherwise carry over from the previous, larger configuration).
    Returns {"teacher": ..., "student": ..., "student_kd": ... (measure_train_step dicts),
    "kd_over_plain": student_kd median / student median, "teacher_over_student": teacher / student}.
    """
    if isolate is None:
        isolate = resolve_device(kwargs.get("device", "auto")).type == "cpu"
    measure = _measure_in_fresh_process if isolate else measure_train_step
    teacher = measure(teacher_name, batch_size=batch_size, steps=steps, **kwargs)
    plain = measure(student_name, batch_size=batch_size, steps=steps, **kwargs)
    distilled = measure(student_name, teacher_name, kd, batch_size=batch_size, steps=steps, **kwargs)
    return {"teacher": teacher, "student": plain, "student_kd": distilled,
            "kd_over_plain": distilled["step_s_median"] / plain["step_s_median"],
            "teacher_over_student": teacher["step_s_median"] / plain["step_s_median"]}
