"""The training loop behind ``sparsekd-train``: a detector alone, or a student distilled from a teacher.

    options = TrainOptions(model="cp_voxel_s_sim", data="data/sim_kitti", teacher="runs/t/final.pth",
                           kd="sparsekd", out="runs/s_kd")
    summary = Trainer(options).run()

A run directory (``options.out``) ends up with:
    ckpt_e{epoch}_s{step}.pth   training checkpoints (the last ``keep_last``), each resumable
    final.pth                   the trained model alone (what sparsekd-eval / the ROS node load)
    run.json                    the settings the run started with
    summary.json                settings, KD recipe, epochs, steps, wall/step time, final losses, metrics
    log.jsonl, tensorboard/     scalars per logged step and per evaluation

Exact resume: a checkpoint holds the model, the optimiser, the schedule, the GradScaler, KD state outside the
model, every RNG and the position in the epoch (epoch, batches done); the sampler's order is a function of
(seed, epoch) and augmentation of (seed, epoch, frame), so a resumed run sees the same batches in the same
order and, on CPU, ends with bit-identical weights. SIGINT/SIGTERM finish the current step, write a
checkpoint and stop; a hard kill loses at most the steps since the last checkpoint (``ckpt_every_steps``,
else one epoch).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, load_model, load_state_strict, save_checkpoint
from ..config import ModelConfig, load_model_config
from ..data.dataset import DetectionDataset, collate_samples
from ..eval.report import to_jsonable
from ..inference import resolve_device
from ..models.detector import CenterPointDetector, build_detector
from .batches import batch_inputs
from .checkpointing import CheckpointManager, capture_rng_state, read_training_checkpoint, restore_rng_state
from .data import DataSource, build_datasets, detect_layout, ensure_infos
from .distributed import (
    DistContext, EpochSampler, all_reduce_mean, barrier, broadcast_buffers, cleanup_distributed, init_distributed,
    maybe_sync_batchnorm, wrap_ddp,
)
from .monitor import TrainMonitor
from .objective import build_objective, extra_state, freeze, kd_requested, load_extra_state, recipe_to_dict, recipe_uses_tgi
from .optim import build_optimizer, build_scheduler, current_lr_and_beta1, trainable_parameters
from .step import train_step

log = logging.getLogger(__name__)

#: Settings that must match for a resume to continue the same run.
RESUME_KEYS = ("model_config", "teacher", "kd", "epochs", "batch_size", "seed", "world_size")


@dataclass
class TrainOptions:
    """Everything a run needs. ``None`` for epochs/batch_size/lr means the model config's ``train`` values.

    model: zoo name or YAML. data: dataset root (KITTI or Waymo layout). out: run directory.
    teacher: teacher checkpoint (.pth) for KD. kd: KD recipe ("none", "sparsekd", "logit,label", path.yaml).
    batch_size: per process (per GPU). workers: DataLoader processes. resume: True = newest checkpoint in
    ``out`` (a fresh start when there is none), or a checkpoint path. eval_every: evaluate every N epochs
    (0 = only at the end); evaluate: evaluate at the end at all. keep_last: training checkpoints kept.
    ckpt_every_steps: also checkpoint every N steps (0 = per epoch only). max_steps: stop after this many
    steps in total (smoke runs; the schedule still spans all epochs). device: auto | cpu | cuda.
    sync_bn: SyncBatchNorm across GPUs. amp: fp16 autocast + GradScaler (CUDA only).
    augment: "default" (the reference pipeline), None (none) or an AugmentConfig dict.
    waymo_interval: keep every k-th Waymo frame when infos are built here (the paper trains on 20%: 5).
    """

    model: str
    data: str | None = None
    out: str = "runs/train"
    teacher: str | None = None
    kd: str = "none"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    workers: int = 2
    seed: int = 0
    resume: bool | str = False
    eval_every: int = 0
    evaluate: bool = True
    eval_batch_size: int | None = None
    keep_last: int = 3
    ckpt_every_steps: int = 0
    max_steps: int | None = None
    device: str = "auto"
    sync_bn: bool = False
    amp: bool = True
    augment: Any = "default"
    waymo_interval: int = 1
    log_every: int = 10
    progress: bool = True
    find_unused_parameters: bool = False
    extra_meta: dict = field(default_factory=dict)


@dataclass
class RunState:
    """Where the run stands: the next batch to train on is batch ``batch_in_epoch`` of epoch ``epoch``."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes its step, checkpoints and stops. A second signal aborts."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %d: finishing this step, writing a checkpoint, then stopping (again to abort)", signum)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Builds the run from TrainOptions and trains it; see the module docstring.

    train_dataset / val_dataset: inject datasets instead of reading ``options.data`` (tests, notebooks);
    ``val_metric`` then says how to score val_dataset ("kitti" or "waymo").
    """

    def __init__(self, options: TrainOptions, train_dataset: DetectionDataset | None = None,
                 val_dataset: DetectionDataset | None = None, val_metric: str | None = None):
        self.opts = options
        self._train_ds = train_dataset
        self._val_ds = val_dataset
        self._val_metric = val_metric
        self.out = Path(options.out)
        #: The trained model after ``run()`` (this process's replica), for callers that continue in Python.
        self.student: CenterPointDetector | None = None

    # ------------------------------------------------------------------------------------------ setup
    def _model_config(self) -> ModelConfig:
        cfg = load_model_config(self.opts.model)
        t = cfg.train
        if self.opts.epochs is not None:
            t.epochs = int(self.opts.epochs)
        if self.opts.batch_size is not None:
            t.batch_size = int(self.opts.batch_size)
        if self.opts.lr is not None:
            t.lr = float(self.opts.lr)
        if t.epochs < 1 or t.batch_size < 1:
            raise ValueError(f"epochs and batch size must be >= 1 (got {t.epochs}, {t.batch_size})")
        return cfg

    def _datasets(self, cfg: ModelConfig, ctx: DistContext) -> tuple[DetectionDataset, DetectionDataset | None, str]:
        if self._train_ds is not None:
            return self._train_ds, self._val_ds, self._val_metric or "kitti"
        if not self.opts.data:
            raise ValueError("no training data: pass --data DATASET_ROOT (sparsekd-sim --out DIR writes one)")
        root = Path(self.opts.data)
        source = DataSource(root, detect_layout(root))
        if ctx.is_main:
            ensure_infos(source, workers=max(1, self.opts.workers), progress=self.opts.progress,
                         waymo_interval=self.opts.waymo_interval)
        barrier(ctx)
        need_val = self.opts.evaluate or self.opts.eval_every > 0
        train, val = build_datasets(source, cfg, seed=self.opts.seed, augment=self.opts.augment, need_val=need_val)
        return train, val, source.layout

    def _teacher(self, device: torch.device) -> CenterPointDetector | None:
        if not self.opts.teacher:
            return None
        teacher, _ = load_model(self.opts.teacher, device)
        return freeze(teacher)

    def _run_settings(self, cfg: ModelConfig, ctx: DistContext, layout: str, n_train: int) -> dict[str, Any]:
        return {
            "model": self.opts.model, "model_config": cfg.to_dict(), "teacher": self.opts.teacher,
            "kd": self.opts.kd, "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
            "seed": self.opts.seed, "world_size": ctx.world_size, "data": self.opts.data, "layout": layout,
            "train_frames": n_train, "lr": cfg.train.lr, "augment": self.opts.augment,
        }

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Train (or continue training) and return the summary (also written to OUT/summary.json on rank 0)."""
        start_wall = time.time()
        device = resolve_device(self.opts.device)
        ctx = init_distributed(device)
        stop = _StopFlag()
        try:
            stop.install()
            return self._run(ctx, stop, start_wall)
        finally:
            stop.uninstall()
            cleanup_distributed()

    def _run(self, ctx: DistContext, stop: _StopFlag, start_wall: float) -> dict[str, Any]:
        opts, device = self.opts, ctx.device
        seed_everything(opts.seed)
        cfg = self._model_config()
        student = build_detector(cfg).to(device)
        self.student = student
        teacher = self._teacher(device)
        objective, recipe = build_objective(student, teacher, opts.kd)
        objective.to(device)
        train_ds, val_ds, layout = self._datasets(cfg, ctx)

        batch_size = cfg.train.batch_size
        sampler = EpochSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=opts.seed)
        iters_per_epoch = math.ceil(sampler.num_samples / batch_size)
        total_steps = cfg.train.epochs * iters_per_epoch
        settings = self._run_settings(cfg, ctx, layout, len(train_ds))

        # Resume point (or a fresh start, with TGI when the recipe asks for it).
        state, payload = RunState(), None
        resume_path = self._resume_path()
        if resume_path is not None:
            payload = read_training_checkpoint(resume_path)
            self._check_resume(payload["training"].get("run", {}), settings, resume_path)
            load_state_strict(student, payload["state_dict"], str(resume_path))
        elif recipe is not None and recipe_uses_tgi(recipe):
            objective.init_student_from_teacher()
            log.info("student initialised from the teacher (TGI)")

        maybe_sync_batchnorm(student, ctx, opts.sync_bn)
        params = trainable_parameters(objective)
        optimizer = build_optimizer(params, cfg.train)
        scheduler = build_scheduler(optimizer, cfg.train, total_steps)
        amp = bool(opts.amp and device.type == "cuda")
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        if payload is not None:
            tr = payload["training"]
            optimizer.load_state_dict(tr["optimizer"])
            scheduler.load_state_dict(tr["scheduler"])
            if tr.get("grad_scaler"):
                scaler.load_state_dict(tr["grad_scaler"])
            load_extra_state(objective, extra_state(objective, student, teacher).keys(), tr.get("extra_state", {}))
            state = RunState(int(tr["epoch"]), int(tr["batch_in_epoch"]), int(tr["global_step"]))
            restore_rng_state(tr["rng"])
            log.info("resumed from %s at epoch %d, batch %d (step %d)", resume_path, state.epoch + 1,
                     state.batch_in_epoch, state.global_step)
        model = wrap_ddp(objective, ctx, opts.find_unused_parameters)

        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run.json").write_text(json.dumps(to_jsonable(
                {**settings, "kd_recipe": recipe_to_dict(recipe), "total_steps": total_steps,
                 "iters_per_epoch": iters_per_epoch}), indent=2))
        ckpts = CheckpointManager(self.out, opts.keep_last)
        last_step = total_steps if opts.max_steps is None else min(total_steps, int(opts.max_steps))
        monitor = TrainMonitor(self.out, last_step, state.global_step, enabled=ctx.is_main, progress=opts.progress,
                               log_every=opts.log_every)

        def save(tag: str) -> Path | None:
            if not ctx.is_main:
                return None
            training = {
                "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch, "global_step": state.global_step,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "grad_scaler": scaler.state_dict() if amp else {},
                "extra_state": extra_state(objective, student, teacher), "rng": capture_rng_state(),
                "run": to_jsonable(settings),
            }
            meta = {"trained_by": "sparsekd-train", "tag": tag, "kd": opts.kd, "teacher": opts.teacher,
                    "epoch": state.epoch, "global_step": state.global_step, **opts.extra_meta}
            return ckpts.save(student, training, meta)

        step_times: list[float] = []
        recent: list[dict[str, float]] = []
        evaluations: list[dict[str, Any]] = []
        status = "completed"
        train_start = time.perf_counter()
        try:
            while state.epoch < cfg.train.epochs and state.global_step < last_step:
                epoch = state.epoch
                train_ds.set_epoch(epoch)
                sampler.set_epoch(epoch, skip=state.batch_in_epoch * batch_size)
                loader = DataLoader(
                    train_ds, batch_size=batch_size, sampler=sampler, num_workers=opts.workers,
                    collate_fn=collate_samples, pin_memory=device.type == "cuda", drop_last=False,
                    # A per-epoch generator keeps the global RNG untouched by the loader (exact resume).
                    generator=torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch))
                monitor.set_epoch(epoch, cfg.train.epochs)
                t_data = time.perf_counter()
                for batch in loader:
                    points, gt_boxes, gt_labels = batch_inputs(batch, device)
                    t0 = time.perf_counter()
                    result = train_step(model, points, gt_boxes, gt_labels, optimizer, scheduler, scaler, params,
                                        cfg.train.grad_clip, amp)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    t1 = time.perf_counter()
                    state.global_step += 1
                    state.batch_in_epoch += 1
                    step_times.append(t1 - t0)
                    recent.append(result.losses)
                    recent = recent[-iters_per_epoch:]
                    lr, beta1 = current_lr_and_beta1(optimizer)
                    monitor.step(state.global_step, result.losses, lr, beta1, result.grad_norm, t1 - t0,
                                 t0 - t_data, epoch)
                    epoch_done = state.batch_in_epoch >= iters_per_epoch
                    if self._agree(stop.requested, ctx) or state.global_step >= last_step:
                        stop.requested = stop.requested or state.global_step < last_step
                        if epoch_done:
                            state.epoch, state.batch_in_epoch = epoch + 1, 0
                        save("stop" if stop.requested else "end")
                        break
                    if opts.ckpt_every_steps and state.global_step % opts.ckpt_every_steps == 0 and not epoch_done:
                        save("step")
                    t_data = time.perf_counter()
                if state.epoch == epoch and state.batch_in_epoch >= iters_per_epoch:
                    state.epoch, state.batch_in_epoch = epoch + 1, 0
                    save("epoch")
                    if opts.eval_every > 0 and state.epoch % opts.eval_every == 0 and state.epoch < cfg.train.epochs:
                        evaluations.append(self._evaluate(student, val_ds, layout, ctx, monitor, state, amp))
                if stop.requested or state.global_step >= last_step:
                    break
        except BaseException:
            monitor.close()
            raise
        if stop.requested:
            status = "interrupted"
        elif state.epoch < cfg.train.epochs:
            status = "stopped_at_max_steps"
        train_time = time.perf_counter() - train_start

        broadcast_buffers(student, ctx)
        final_metrics = None
        if status == "completed" and opts.evaluate:
            final_metrics = self._evaluate(student, val_ds, layout, ctx, monitor, state, amp)
            if final_metrics is not None:
                evaluations.append(final_metrics)
        monitor.close()
        final_losses = {k: float(np.mean([r[k] for r in recent])) for k in (recent[0] if recent else {})}
        summary = {
            "status": status, "model": opts.model, "teacher": opts.teacher, "kd": opts.kd,
            "kd_recipe": recipe_to_dict(recipe), "data": opts.data, "layout": layout,
            "train_frames": len(train_ds), "val_frames": len(val_ds) if val_ds is not None else 0,
            "epochs": cfg.train.epochs, "epochs_completed": state.epoch, "batch_size": batch_size,
            "world_size": ctx.world_size, "global_batch_size": batch_size * ctx.world_size,
            "iters_per_epoch": iters_per_epoch, "total_steps": total_steps, "steps": state.global_step,
            "steps_this_session": len(step_times), "resumed_from": str(resume_path) if resume_path else None,
            "device": str(device), "amp": amp, "seed": opts.seed,
            "wall_time_s": time.time() - start_wall, "train_time_s": train_time,
            "step_time_s": {"median": statistics.median(step_times) if step_times else None,
                            "mean": statistics.fmean(step_times) if step_times else None},
            "final_losses": final_losses,
            "metrics": final_metrics["headline"] if final_metrics else None,
            "evaluations": [{k: e[k] for k in ("epoch", "step", "headline")} for e in evaluations if e],
            "final_metrics": {k: final_metrics[k] for k in ("metric", "num_frames", "result", "recall")}
            if final_metrics else None,
            "config": settings,
        }
        if ctx.is_main:
            meta = {"trained_by": "sparsekd-train", "kd": opts.kd, "teacher": opts.teacher, "epochs": state.epoch,
                    "global_step": state.global_step, "status": status,
                    "metrics": to_jsonable(summary["metrics"]), **opts.extra_meta}
            if status == "completed":
                summary["checkpoint"] = str(save_checkpoint(self.out / "final.pth", student, meta=meta))
            else:  # unfinished: the newest training checkpoint is where to resume
                latest = ckpts.latest()
                summary["checkpoint"] = str(latest) if latest else None
            (self.out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2))
        barrier(ctx)
        return summary

    # ------------------------------------------------------------------------------------------ helpers
    def _resume_path(self) -> Path | None:
        r = self.opts.resume
        if not r:
            return None
        if isinstance(r, str) and r not in ("auto", "latest"):
            path = Path(r)
            if not path.is_file():
                raise CheckpointError(f"--resume {r}: no such checkpoint file")
            return path
        latest = CheckpointManager(self.out).latest()
        if latest is None:
            log.info("--resume: no checkpoint in %s yet, starting a new run", self.out)
        return latest

    @staticmethod
    def _check_resume(saved: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
        now = to_jsonable(now)
        diffs = [k for k in RESUME_KEYS if k in saved and saved[k] != now.get(k)]
        if diffs:
            detail = "; ".join(f"{k}: checkpoint {_short(saved[k])} vs now {_short(now.get(k))}" for k in diffs)
            raise CheckpointError(
                f"cannot resume from {path}: the run was started with other settings ({detail}). Resume with the "
                "original settings, or start a new run in another --out directory.")

    @staticmethod
    def _agree(flag: bool, ctx: DistContext) -> bool:
        """Every rank stops at the same step: any rank's request stops all."""
        if not ctx.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=ctx.device if ctx.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _evaluate(self, student: CenterPointDetector, val_ds: DetectionDataset | None, layout: str,
                  ctx: DistContext, monitor: TrainMonitor, state: RunState, amp: bool) -> dict[str, Any] | None:
        """Evaluate on rank 0 (the others wait); None without a validation set."""
        if val_ds is None or len(val_ds) == 0:
            return None
        result = None
        if ctx.is_main:
            from .evaluation import evaluate

            bs = self.opts.eval_batch_size or student.cfg.train.batch_size
            result = evaluate(student, val_ds, layout, batch_size=bs, workers=min(self.opts.workers, 2),
                              progress=self.opts.progress, amp=amp)
            result.update(epoch=state.epoch, step=state.global_step)
            monitor.evaluation(state.global_step, state.epoch, result["headline"])
            monitor.write_line(result["table"])
        barrier(ctx)
        return result


def _short(value: Any, n: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= n else text[: n - 3] + "..."


def train(options: TrainOptions, **kwargs) -> dict[str, Any]:
    """Shorthand for ``Trainer(options, **kwargs).run()``."""
    return Trainer(options, **kwargs).run()
