"""The training loop behind ``sparsekd-train``: a detector alone, or a student distilled from a teacher.

    options = TrainOptions(model="cp_voxel_s_sim", data="data/sim_kitti", teacher="runs/t/final.pth",
                           kd="sparsekd", out="runs/s_kd")
    summary = Trainer(options).run()

A run directory (``options.out``) ends up with:
    ckpt_e{epoch}_s{step}.pth   training checkpoints (the last ``keep_last``), each resumable
    final.pth                   the trained model alone (what sparsekd-eval / the ROS node load); with
                                train.average_last, the average of the run's last weights (train/weight_average.py)
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

import copy
import itertools
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

from ..checkpoint import (CheckpointError, load_model, load_state_strict, model_from_payload, read_checkpoint,
                          save_checkpoint)
from ..config import ConfigError, ModelConfig, load_model_config, model_config_from_dict
from ..data.dataset import DetectionDataset, collate_samples
from ..data.ground import dataset_ground_z
from ..data.window import BevWindow, common_alignment
from ..eval.report import to_jsonable
from ..inference import resolve_checkpoint, resolve_device
from ..kd.tgi import TGIError
from ..kd.widen import widen
from ..models.detector import BEVDetector, bev_windows, build_detector
from .batches import batch_inputs
from .checkpointing import CheckpointManager, capture_rng_state, read_training_checkpoint, restore_rng_state
from .data import DataSource, build_datasets, detect_layout, ensure_infos
from .distributed import (
    DistContext, EpochSampler, barrier, broadcast_buffers, cleanup_distributed, init_distributed,
    maybe_sync_batchnorm, wrap_ddp,
)
from .monitor import TrainMonitor
from .objective import build_objective, extra_state, freeze, load_extra_state, recipe_to_dict, recipe_uses_tgi
from .optim import build_optimizer, build_scheduler, current_lr_and_beta1, trainable_parameters
from .precision import autocast_dtype, needs_grad_scaler, precision_name
from .precise_bn import recompute_batchnorm_statistics
from .step import train_step
from .weight_average import AVERAGE_BATCHNORM_BATCHES, WeightAverage, first_averaged_step

log = logging.getLogger(__name__)

#: Settings that must match for a resume to continue the same run.
RESUME_KEYS = ("model_config", "teacher", "kd", "epochs", "batch_size", "seed", "world_size")


@dataclass
class TrainOptions:
    """Everything a run needs. ``None`` for epochs/batch_size/lr means the model config's ``train`` values.

    model: zoo name, YAML or a ModelConfig (a checkpoint's embedded one). data: dataset root (KITTI, Waymo or
    nuScenes layout). out: run directory.
    teacher: teacher checkpoint (.pth or a bundled model name) for KD. kd: KD recipe ("none", "sparsekd",
    "logit,label", path.yaml). pretrained: weights (.pth or a bundled model name) a new run starts from instead of
    a random or TGI initialisation: fine-tuning, or more training for a model of an earlier run under a fresh
    schedule; a resumed run takes its weights from its checkpoint instead. pretrained_parts: load only these
    top-level parts of ``pretrained`` (e.g. ("backbone3d",): a 360-degree teacher's sparse backbone warm-started
    from a student whose 3D layers are the same); the other parts keep their random initialisation.
    widen_pretrained: ``pretrained`` is a narrower model of the same structure (a student of ``model``), widened
    into it (kd/widen.py) so that the run starts out computing exactly what ``pretrained`` computes.
    batch_size: per process (per GPU). workers: DataLoader processes. resume: True = newest checkpoint in
    ``out`` (a fresh start when there is none), or a checkpoint path. eval_every: evaluate every N epochs
    (0 = only at the end); evaluate: evaluate at the end at all. keep_last: training checkpoints kept.
    ckpt_every_steps: also checkpoint every N steps (0 = per epoch only). max_steps: stop after this many
    steps in total (smoke runs; the schedule still spans all epochs). device: auto | cpu | cuda.
    sync_bn: SyncBatchNorm across GPUs. amp: mixed precision (train/precision.py): fp16 autocast + GradScaler on
    CUDA, bf16 autocast on a CPU with native bf16, fp32 elsewhere.
    augment: "default" (the reference pipeline), None (none) or an AugmentConfig dict.
    waymo_interval: keep every k-th Waymo frame when infos are built here (the paper trains on 20%: 5).
    average_last: average the weights over this last share of the schedule (train/weight_average.py); None: the
    model config's train.average_last (0 = off). precise_bn_batches: recompute the final weights' BatchNorm statistics
    over this many batches of whole training frames (train/precise_bn.py; 0 = keep training's running statistics);
    None: the model config's train.precise_bn_batches.
    """

    model: str | ModelConfig
    data: str | None = None
    out: str = "runs/train"
    teacher: str | None = None
    kd: str = "none"
    pretrained: str | None = None
    pretrained_parts: tuple[str, ...] = ()
    widen_pretrained: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    average_last: float | None = None
    precise_bn_batches: int | None = None
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


def training_window(cfg: ModelConfig, student: BEVDetector, teacher: BEVDetector | None) -> BevWindow:
    """The BEV window a run of ``cfg`` trains on (``train.bev_window``): its offset a whole number of the coarsest
    cells of the student and of the teacher (whose maps must cover the same ground), with that much context kept
    around it. The window's size and the range must then be multiples of that step (BevWindow says so if not)."""
    if any(m is not None and m.cfg.is_anchor for m in (student, teacher)):
        raise ValueError("train.bev_window works with CenterPoint heads only: an anchor head's anchors are laid "
                         "on the whole map; train anchor models on whole frames (no bev_window)")
    align = common_alignment([m.bev_alignment for m in (student, teacher) if m is not None])
    size = tuple(float(v) for v in cfg.train.bev_window)
    if len(size) != 2:
        raise ValueError(f"train.bev_window must be [x, y] metres, got {cfg.train.bev_window}")
    return BevWindow(size, align, tuple(cfg.voxelization.point_cloud_range), margin=align)


def load_pretrained(model: BEVDetector, cfg: ModelConfig, source: str, parts: tuple[str, ...] = (),
                    widen_narrow: bool = False) -> None:
    """Weights of ``source`` (a .pth file or a bundled model name) into ``model`` of config ``cfg``: the same
    classes in the same order and tensors of the same shapes, else a CheckpointError that says which differ.
    ``parts``: only the tensors of these top-level modules (e.g. "backbone3d"), which must fit exactly; the rest
    of ``model`` is left as it is, and the classes need not match unless the head is loaded.
    ``widen_narrow``: ``source`` is a narrower model of ``model``'s structure, widened into it (kd/widen.py).
    fp16 weights (bundled models) become the model's fp32."""
    path = resolve_checkpoint(source)
    payload = read_checkpoint(path)
    theirs, ours = list(payload["class_names"]), list(cfg.class_names)
    if theirs != ours and (not parts or "head" in parts):
        raise CheckpointError(f"--pretrained {source} detects {theirs}, the model being trained {ours}: "
                              "start from weights of a model with the same classes in the same order.")
    if widen_narrow:
        if parts:
            raise CheckpointError("--widen loads the whole of --pretrained into the wider model: drop "
                                  "--pretrained-parts")
        narrow = model_from_payload(payload, str(path))
        try:
            widen(model, narrow)
        except TGIError as e:
            raise CheckpointError(f"--pretrained {source} --widen: {e}. --widen needs a narrower model of "
                                  f"{cfg.name}'s structure (one of its students)") from e
        return
    if not parts:
        load_state_strict(model, payload["state_dict"], f"--pretrained {source}")
        return
    modules = [name for name, _ in model.named_children()]
    unknown = [p for p in parts if p not in modules]
    if unknown:
        raise CheckpointError(f"--pretrained-parts {','.join(unknown)}: not a part of {cfg.name} (its parts: "
                              f"{', '.join(modules)})")
    prefixes = tuple(f"{p}." for p in parts)
    theirs_sd = {k: v for k, v in payload["state_dict"].items() if k.startswith(prefixes)}
    if not theirs_sd:
        raise CheckpointError(f"--pretrained {source} holds no weights of {', '.join(parts)}")
    part_model = _Parts({p: getattr(model, p) for p in parts})
    load_state_strict(part_model, theirs_sd, f"--pretrained {source} ({', '.join(parts)})")


class _Parts(torch.nn.Module):
    """Some top-level modules of a model under their own names, so their weights load by the model's keys."""

    def __init__(self, parts: dict[str, torch.nn.Module]):
        super().__init__()
        for name, module in parts.items():
            self.add_module(name, module)


class Trainer:
    """Builds the run from TrainOptions and trains it; see the module docstring.

    train_dataset / val_dataset: inject datasets instead of reading ``options.data`` (tests, notebooks);
    ``val_metric`` then says how to score val_dataset ("kitti", "waymo" or "nuscenes").
    """

    def __init__(self, options: TrainOptions, train_dataset: DetectionDataset | None = None,
                 val_dataset: DetectionDataset | None = None, val_metric: str | None = None):
        self.opts = options
        self._train_ds = train_dataset
        self._val_ds = val_dataset
        self._val_metric = val_metric
        self.out = Path(options.out)
        #: The trained model after ``run()`` (this process's replica), for callers that continue in Python.
        self.student: BEVDetector | None = None

    # ------------------------------------------------------------------------------------------ setup
    def _model_config(self) -> ModelConfig:
        model = self.opts.model
        cfg = copy.deepcopy(model) if isinstance(model, ModelConfig) else load_model_config(model)
        t = cfg.train
        if self.opts.epochs is not None:
            t.epochs = int(self.opts.epochs)
        if self.opts.batch_size is not None:
            t.batch_size = int(self.opts.batch_size)
        if self.opts.lr is not None:
            t.lr = float(self.opts.lr)
        if self.opts.average_last is not None:
            t.average_last = float(self.opts.average_last)
        if self.opts.precise_bn_batches is not None:
            t.precise_bn_batches = int(self.opts.precise_bn_batches)
        if t.epochs < 1 or t.batch_size < 1:
            raise ValueError(f"epochs and batch size must be >= 1 (got {t.epochs}, {t.batch_size})")
        if not 0.0 <= t.average_last <= 1.0:
            raise ValueError(f"--average-last must be a share of the schedule in [0, 1] (0 = off), got "
                             f"{t.average_last}")
        if t.precise_bn_batches < 0:
            raise ValueError(f"--precise-bn-batches must be 0 (keep training's statistics) or more, got "
                             f"{t.precise_bn_batches}")
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

    def _teacher(self, device: torch.device) -> BEVDetector | None:
        if not self.opts.teacher:
            return None
        teacher, _ = load_model(resolve_checkpoint(self.opts.teacher), device)
        return freeze(teacher)

    def _run_settings(self, cfg: ModelConfig, ctx: DistContext, layout: str, n_train: int) -> dict[str, Any]:
        return {
            "model": cfg.name if isinstance(self.opts.model, ModelConfig) else self.opts.model,
            "model_config": cfg.to_dict(), "teacher": self.opts.teacher,
            "pretrained": self.opts.pretrained, "pretrained_parts": list(self.opts.pretrained_parts),
            "widen_pretrained": self.opts.widen_pretrained, "kd": self.opts.kd, "epochs": cfg.train.epochs,
            "batch_size": cfg.train.batch_size,
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
        run = self._build(ctx)
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run.json").write_text(json.dumps(to_jsonable(
                {**run.settings, "kd_recipe": recipe_to_dict(run.recipe), "total_steps": run.total_steps,
                 "iters_per_epoch": run.iters_per_epoch}), indent=2))
        monitor = TrainMonitor(self.out, run.last_step, run.state.global_step, enabled=ctx.is_main,
                               progress=self.opts.progress, log_every=self.opts.log_every)
        train_start = time.perf_counter()
        try:
            stats = self._loop(run, ctx, stop, monitor)
        except BaseException:
            monitor.close()
            raise
        train_time = time.perf_counter() - train_start
        if stop.requested:
            status = "interrupted"
        elif run.state.epoch < run.cfg.train.epochs:
            status = "stopped_at_max_steps"
        else:
            status = "completed"
        if status == "completed" and run.average is not None:
            run.average.copy_to(run.student)
            log.info("final weights: the average of the weights after each of the last %d steps "
                     "(train.average_last %g)",
                     run.average.count, run.cfg.train.average_last)
        if status == "completed" and (run.cfg.train.precise_bn_batches > 0 or run.average is not None):
            self._precise_bn(run, ctx)
        broadcast_buffers(run.student, ctx)
        final_metrics = None
        if status == "completed" and self.opts.evaluate:
            final_metrics = self._evaluate(run, ctx, monitor)
            if final_metrics is not None:
                stats.evaluations.append(final_metrics)
        monitor.close()
        summary = self._summary(run, ctx, stats, status, final_metrics, start_wall, train_time)
        if ctx.is_main:
            summary["checkpoint"] = self._write_final(run, summary, status)
            (self.out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2))
        barrier(ctx)
        return summary

    def _build(self, ctx: DistContext) -> "_Run":
        """Model, teacher, objective, data, optimiser and schedule; restored from a checkpoint when resuming."""
        opts, device = self.opts, ctx.device
        seed_everything(opts.seed)
        cfg = self._model_config()
        student = build_detector(cfg).to(device)
        self.student = student
        teacher = self._teacher(device)
        objective, recipe = build_objective(student, teacher, opts.kd)
        objective.to(device)
        train_ds, val_ds, layout = self._datasets(cfg, ctx)
        if cfg.train.bev_window:
            train_ds.window = training_window(cfg, student, teacher)
        sampler = EpochSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=opts.seed)
        iters_per_epoch = math.ceil(sampler.num_samples / cfg.train.batch_size)
        total_steps = cfg.train.epochs * iters_per_epoch
        settings = self._run_settings(cfg, ctx, layout, len(train_ds))

        payload, resume_path = None, self._resume_path()
        if resume_path is not None:
            payload = read_training_checkpoint(resume_path)
            self._check_resume(payload["training"].get("run", {}), settings, resume_path)
            load_state_strict(student, payload["state_dict"], str(resume_path))
        elif opts.pretrained:
            load_pretrained(student, cfg, opts.pretrained, opts.pretrained_parts, opts.widen_pretrained)
            log.info("student initialised from --pretrained %s%s%s%s", opts.pretrained,
                     f" ({', '.join(opts.pretrained_parts)} only)" if opts.pretrained_parts else "",
                     " (widened)" if opts.widen_pretrained else "",
                     " (instead of TGI)" if recipe is not None and recipe_uses_tgi(recipe) else "")
        elif recipe is not None and recipe_uses_tgi(recipe):
            tgi = objective.init_student_from_teacher()
            log.info("student initialised from the teacher (TGI)"
                     + (f"; the teacher has nothing for {', '.join(tgi.fresh)}, left as initialised"
                        if tgi.fresh else ""))

        maybe_sync_batchnorm(student, ctx, opts.sync_bn)
        params = trainable_parameters(objective)
        optimizer = build_optimizer(params, cfg.train)
        scheduler = build_scheduler(optimizer, cfg.train, total_steps)
        amp_dtype = autocast_dtype(device, opts.amp)
        scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(amp_dtype))
        log.info("training precision: %s%s", precision_name(amp_dtype),
                 " (mixed: autocast, fp32 weights)" if amp_dtype is not None else "")
        state = RunState()
        if payload is not None:
            tr = payload["training"]
            optimizer.load_state_dict(tr["optimizer"])
            scheduler.load_state_dict(tr["scheduler"])
            if tr.get("grad_scaler"):
                scaler.load_state_dict(tr["grad_scaler"])
            load_extra_state(objective, extra_state(objective, student, teacher).keys(), tr.get("extra_state", {}))
            state = RunState(int(tr["epoch"]), int(tr["batch_in_epoch"]), int(tr["global_step"]))
            restore_rng_state(tr["rng"])  # last: everything above may draw random numbers
            log.info("resumed from %s at epoch %d, batch %d (step %d)", resume_path, state.epoch + 1,
                     state.batch_in_epoch, state.global_step)
        # KD adapters (FitNet, mimic) can sit out a step (e.g. no ROI in the batch); DDP must then not wait for them.
        has_adapters = bool(extra_state(objective, student, teacher))
        model = wrap_ddp(objective, ctx, opts.find_unused_parameters or has_adapters)
        last_step = total_steps if opts.max_steps is None else min(total_steps, int(opts.max_steps))
        average = None
        if cfg.train.average_last > 0:
            average = WeightAverage(first_averaged_step(total_steps, cfg.train.average_last))
            if payload is not None:  # same train.average_last: _check_resume compared the model configs
                average.load_state_dict(payload["training"]["weight_average"], student)
        return _Run(cfg, student, teacher, objective, model, recipe, train_ds, val_ds, layout, sampler, params,
                    optimizer, scheduler, scaler, amp_dtype, iters_per_epoch, total_steps, last_step, settings,
                    resume_path, state, CheckpointManager(self.out, opts.keep_last), average)

    def _save(self, run: "_Run", ctx: DistContext, tag: str) -> Path | None:
        """A resumable checkpoint of the current state (rank 0 only)."""
        if not ctx.is_main:
            return None
        st = run.state
        training = {
            "epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch, "global_step": st.global_step,
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "grad_scaler": run.scaler.state_dict() if run.scaler.is_enabled() else {},
            "extra_state": extra_state(run.objective, run.student, run.teacher), "rng": capture_rng_state(),
            "run": to_jsonable(run.settings),
        }
        if run.average is not None:
            training["weight_average"] = run.average.state_dict()
        meta = {"trained_by": "sparsekd-train", "tag": tag, "kd": self.opts.kd, "teacher": self.opts.teacher,
                "epoch": st.epoch, "global_step": st.global_step, **self._ground_meta(run), **self.opts.extra_meta}
        return run.ckpts.save(run.student, training, meta)

    def _precise_bn(self, run: "_Run", ctx: DistContext) -> None:
        """BatchNorm statistics of the final weights over whole training frames (train/precise_bn.py): the
        config's precise_bn_batches, or AVERAGE_BATCHNORM_BATCHES for averaged weights when it asks for none."""
        used = self._batchnorm_pass(run, ctx, run.cfg.train.precise_bn_batches or AVERAGE_BATCHNORM_BATCHES,
                                    windows=False)
        log.info("BatchNorm statistics recomputed over %d batches of whole frames (precise BN)", used)

    def _batchnorm_pass(self, run: "_Run", ctx: DistContext, batches: int, windows: bool) -> int:
        """Recompute the student's BatchNorm statistics over ``batches`` shuffled training batches: whole frames, or
        (``windows``) the train.bev_window windows the training loop feeds. Returns the batches used."""
        window = run.train_ds.window
        if not windows:
            run.train_ds.window = None
        loader = DataLoader(run.train_ds, batch_size=run.cfg.train.batch_size, shuffle=True,
                            num_workers=self.opts.workers,
                            collate_fn=collate_samples, generator=torch.Generator().manual_seed(self.opts.seed + 17))

        def forward(batch) -> None:
            offset = None if batch.window_offset is None else batch.window_offset.to(ctx.device)
            with bev_windows([run.student], offset, run.cfg.train.bev_window):
                run.student(batch_inputs(batch, ctx.device)[0])
        try:
            return recompute_batchnorm_statistics(run.student, itertools.islice(loader, batches), forward)
        finally:
            run.train_ds.window = window

    def training_batchnorm(self, batches: int, out: str | Path, meta: dict[str, Any],
                           windows: bool = True) -> Path:
        """Write ``opts.pretrained``'s weights to ``out`` with BatchNorm statistics recomputed over ``batches`` batches
        of the training split: the statistics weights made outside a training run need (train/soup.py). ``windows``:
        over train.bev_window's windows, as the training loop feeds them (when the config trains on windows), or
        over whole frames (a voxel soup over whole frames put much worse boxes on real cars than over windows:
        docs/results.md "Car paint that glints"). ``meta`` is saved with the batches used (``batchnorm``) and
        the training data's ground height (``ground_z``)."""
        if batches < 1:
            raise ValueError(f"BatchNorm statistics need at least one batch, got {batches}")
        ctx = init_distributed(resolve_device(self.opts.device))
        try:
            run = self._build(ctx)
            used = self._batchnorm_pass(run, ctx, batches, windows=windows)
        finally:
            cleanup_distributed()
        inputs = "training windows" if windows and run.train_ds.window is not None else "whole training frames"
        log.info("BatchNorm statistics recomputed over %d batches of %s", used, inputs)
        meta = {**meta, **self._ground_meta(run), "batchnorm": f"recomputed over {used} batches of {inputs} of "
                                                             f"{self.opts.data}"}
        return save_checkpoint(out, run.student, meta=meta)

    def _loader(self, run: "_Run", epoch: int) -> DataLoader:
        """This rank's batches of ``epoch``, from the position the run stands at (exact after a resume)."""
        bs = run.cfg.train.batch_size
        run.train_ds.set_epoch(epoch)
        run.sampler.set_epoch(epoch, skip=run.state.batch_in_epoch * bs)
        return DataLoader(run.train_ds, batch_size=bs, sampler=run.sampler, num_workers=self.opts.workers,
                          collate_fn=collate_samples, pin_memory=run.student_device.type == "cuda", drop_last=False,
                          # a per-epoch generator keeps the global RNG untouched by the loader (exact resume)
                          generator=torch.Generator().manual_seed(self.opts.seed * 1_000_003 + epoch))

    def _loop(self, run: "_Run", ctx: DistContext, stop: _StopFlag, monitor: TrainMonitor) -> "_LoopStats":
        """Train until the last epoch, ``max_steps`` or a stop request; checkpoint per epoch / N steps / at the stop."""
        opts, state, device = self.opts, run.state, ctx.device
        stats = _LoopStats()
        epochs = run.cfg.train.epochs
        while state.epoch < epochs and state.global_step < run.last_step:
            epoch = state.epoch
            monitor.set_epoch(epoch, epochs)
            t_data = time.perf_counter()
            for batch in self._loader(run, epoch):
                points, gt_boxes, gt_labels = batch_inputs(batch, device)
                t0 = time.perf_counter()
                window = None if batch.window_offset is None else batch.window_offset.to(device)
                with bev_windows([run.student, run.teacher], window, run.cfg.train.bev_window):
                    result = train_step(run.model, points, gt_boxes, gt_labels, run.optimizer, run.scheduler,
                                        run.scaler, run.params, run.cfg.train.grad_clip, run.amp_dtype)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t1 = time.perf_counter()
                state.global_step += 1
                state.batch_in_epoch += 1
                if run.average is not None:
                    run.average.update(run.student, state.global_step)
                stats.step_times.append(t1 - t0)
                stats.recent = (stats.recent + [result.losses])[-run.iters_per_epoch:]
                lr, beta1 = current_lr_and_beta1(run.optimizer)
                monitor.step(state.global_step, result.losses, lr, beta1, result.grad_norm, t1 - t0, t0 - t_data,
                             epoch)
                epoch_done = state.batch_in_epoch >= run.iters_per_epoch
                if self._agree(stop.requested, ctx) or state.global_step >= run.last_step:
                    stop.requested = stop.requested or state.global_step < run.last_step
                    if epoch_done:
                        state.epoch, state.batch_in_epoch = epoch + 1, 0
                    self._save(run, ctx, "stop" if stop.requested else "end")
                    break
                if opts.ckpt_every_steps and state.global_step % opts.ckpt_every_steps == 0 and not epoch_done:
                    self._save(run, ctx, "step")
                t_data = time.perf_counter()
            if state.epoch == epoch and state.batch_in_epoch >= run.iters_per_epoch:
                state.epoch, state.batch_in_epoch = epoch + 1, 0
                self._save(run, ctx, "epoch")
                if opts.eval_every > 0 and state.epoch % opts.eval_every == 0 and state.epoch < epochs:
                    result = self._evaluate(run, ctx, monitor)
                    if result is not None:
                        stats.evaluations.append(result)
            if stop.requested or state.global_step >= run.last_step:
                break
        return stats

    def _summary(self, run: "_Run", ctx: DistContext, stats: "_LoopStats", status: str,
                 final_metrics: dict | None, start_wall: float, train_time: float) -> dict[str, Any]:
        opts, state, times = self.opts, run.state, stats.step_times
        final_losses = {k: float(np.mean([r[k] for r in stats.recent]))
                        for k in (stats.recent[0] if stats.recent else {})}
        return {
            "status": status, "model": opts.model, "teacher": opts.teacher, "kd": opts.kd,
            "pretrained": opts.pretrained, "pretrained_parts": list(opts.pretrained_parts),
            "widen_pretrained": opts.widen_pretrained,
            "kd_recipe": recipe_to_dict(run.recipe), "data": opts.data, "layout": run.layout,
            "train_frames": len(run.train_ds), "val_frames": len(run.val_ds) if run.val_ds is not None else 0,
            "epochs": run.cfg.train.epochs, "epochs_completed": state.epoch, "batch_size": run.cfg.train.batch_size,
            "world_size": ctx.world_size, "global_batch_size": run.cfg.train.batch_size * ctx.world_size,
            "iters_per_epoch": run.iters_per_epoch, "total_steps": run.total_steps, "steps": state.global_step,
            "averaged_steps": run.average.count if run.average is not None else 0,
            "steps_this_session": len(times), "resumed_from": str(run.resume_path) if run.resume_path else None,
            "device": str(ctx.device), "amp": run.amp_dtype is not None,
            "precision": precision_name(run.amp_dtype), "seed": opts.seed,
            "wall_time_s": time.time() - start_wall, "train_time_s": train_time,
            "step_time_s": {"median": statistics.median(times) if times else None,
                            "mean": statistics.fmean(times) if times else None},
            # mean over this session's steps of the last epoch (at most one epoch of steps)
            "final_losses": final_losses,
            "metrics": final_metrics["headline"] if final_metrics else None,
            "evaluations": [{k: e[k] for k in ("epoch", "step", "headline")} for e in stats.evaluations],
            "final_metrics": {k: final_metrics[k] for k in ("metric", "num_frames", "result", "recall")}
            if final_metrics else None,
            "config": run.settings,
        }

    def _write_final(self, run: "_Run", summary: dict[str, Any], status: str) -> str | None:
        """final.pth (the model alone) for a completed run; else the newest training checkpoint to resume from."""
        if status != "completed":
            latest = run.ckpts.latest()
            return str(latest) if latest else None
        meta = {"trained_by": "sparsekd-train", "kd": self.opts.kd, "teacher": self.opts.teacher,
                "pretrained": self.opts.pretrained, "pretrained_parts": list(self.opts.pretrained_parts),
                "widen_pretrained": self.opts.widen_pretrained,
                "epochs": run.state.epoch, "global_step": run.state.global_step, "status": status,
                "averaged_steps": summary["averaged_steps"],
                "metrics": to_jsonable(summary["metrics"]), **self._ground_meta(run), **self.opts.extra_meta}
        return str(save_checkpoint(self.out / "final.pth", run.student, meta=meta))

    @staticmethod
    def _ground_meta(run: "_Run") -> dict[str, float]:
        """meta["ground_z"]: the training data's ground height in the model frame (m), for the node's
        mounting check; measured once per run on the training frames."""
        if run.ground_z is None and not run.ground_z_measured:
            run.ground_z = dataset_ground_z(getattr(run.train_ds, "infos", []), getattr(run.train_ds, "root", "."))
            run.ground_z_measured = True
        return {} if run.ground_z is None else {"ground_z": round(run.ground_z, 3)}

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
        saved = dict(saved)
        if isinstance(saved.get("model_config"), dict):
            # Through today's schema: a setting added since the run started (with its default, so the same model)
            # is no difference; a config that no longer loads is compared as written and so differs.
            try:
                saved["model_config"] = to_jsonable(model_config_from_dict(saved["model_config"]).to_dict())
            except ConfigError:
                pass
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

    def _evaluate(self, run: "_Run", ctx: DistContext, monitor: TrainMonitor) -> dict[str, Any] | None:
        """Evaluate on rank 0 (the others wait); None without a validation set."""
        if run.val_ds is None or len(run.val_ds) == 0:
            return None
        result = None
        if ctx.is_main:
            from .evaluation import evaluate

            bs = self.opts.eval_batch_size or run.cfg.train.batch_size
            result = evaluate(run.student, run.val_ds, run.layout, batch_size=bs, workers=min(self.opts.workers, 2),
                              progress=self.opts.progress, amp=run.amp_dtype == torch.float16)
            result.update(epoch=run.state.epoch, step=run.state.global_step)
            monitor.evaluation(run.state.global_step, run.state.epoch, result["headline"])
            monitor.write_line(result["table"])
        barrier(ctx)
        return result


@dataclass
class _Run:
    """Everything one run trains with (built by Trainer._build)."""

    cfg: ModelConfig
    student: BEVDetector
    teacher: BEVDetector | None
    objective: torch.nn.Module
    model: torch.nn.Module  # the objective, DDP-wrapped when distributed
    recipe: Any
    train_ds: DetectionDataset
    val_ds: DetectionDataset | None
    layout: str
    sampler: EpochSampler
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None  # the autocast dtype (precision.autocast_dtype); None = fp32
    iters_per_epoch: int
    total_steps: int
    last_step: int
    settings: dict[str, Any]
    resume_path: Path | None
    state: RunState
    ckpts: CheckpointManager
    average: WeightAverage | None = None  # train.average_last's running average of the weights
    ground_z: float | None = None  # the training frames' ground height (meta "ground_z"), measured once
    ground_z_measured: bool = False

    @property
    def student_device(self) -> torch.device:
        return next(self.student.parameters()).device


@dataclass
class _LoopStats:
    step_times: list[float] = field(default_factory=list)
    recent: list[dict[str, float]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def _short(value: Any, n: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= n else text[: n - 3] + "..."


def train(options: TrainOptions, **kwargs) -> dict[str, Any]:
    """Shorthand for ``Trainer(options, **kwargs).run()``."""
    return Trainer(options, **kwargs).run()
