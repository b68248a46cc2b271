"""The reference optimiser (adam_onecycle): schedule shape, decoupled weight decay, clipping, and that a
detector's loss actually goes down under it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsekd_core.config import TrainConfig, load_model_config
from sparsekd_core.models.detector import build_detector
from sparsekd_core.train.objective import DetectorObjective, freeze
from sparsekd_core.train.optim import (
    ADAM_BETA2, build_optimizer, build_scheduler, clip_gradients, current_lr_and_beta1, trainable_parameters,
)
from sparsekd_core.train.step import train_step
from sparsekd_core.train.synthetic import synthetic_batch
from tiny_models import TINY_VOXEL


def _schedule(total: int, cfg: TrainConfig | None = None) -> tuple[list[float], list[float]]:
    cfg = cfg or TrainConfig()
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], cfg)
    sched = build_scheduler(opt, cfg, total)
    lrs, betas = [], []
    for _ in range(total):
        lr, b1 = current_lr_and_beta1(opt)
        lrs.append(lr)
        betas.append(b1)
        opt.step()
        sched.step()
    return lrs, betas


def test_one_cycle_matches_the_reference_shape():
    cfg = TrainConfig()  # lr 0.003, div 10, pct 0.4, moms 0.95/0.85
    total = 100  # phase boundary at step pct * total - 1 = 39 exactly
    lrs, betas = _schedule(total, cfg)
    peak = int(np.argmax(lrs))
    up_end = cfg.pct_start * total - 1  # torch's phase boundary (step index of the peak)
    assert peak == round(up_end)
    assert lrs[0] == pytest.approx(cfg.lr / cfg.div_factor, rel=1e-9)
    assert lrs[peak] == pytest.approx(cfg.lr, rel=1e-9)
    # Cosine warm-up, checked at a step by the closed form lo + (hi - lo) (1 - cos(pi t)) / 2.
    s = 13
    lo, hi = cfg.lr / cfg.div_factor, cfg.lr
    expected = lo + (hi - lo) * (1 - math.cos(math.pi * s / up_end)) / 2
    assert lrs[s] == pytest.approx(expected, rel=1e-9)
    # Annealed to lr / div / 1e4 at the last step.
    assert lrs[-1] == pytest.approx(cfg.lr / cfg.div_factor / 1e4, rel=1e-6)
    # beta1 runs the other way: 0.95 -> 0.85 at the lr peak -> 0.95.
    assert betas[0] == pytest.approx(0.95)
    assert betas[peak] == pytest.approx(0.85, abs=1e-6)
    assert betas[-1] == pytest.approx(0.95, abs=1e-6)
    assert int(np.argmin(betas)) == peak


def test_adam_is_decoupled_weight_decay_on_every_parameter():
    cfg = TrainConfig()
    w = torch.nn.Parameter(torch.full((4,), 2.0))
    bn_gamma = torch.nn.Parameter(torch.full((2,), 3.0))
    opt = build_optimizer([w, bn_gamma], cfg)
    assert opt.param_groups[0]["betas"][1] == ADAM_BETA2 == 0.99
    sched = build_scheduler(opt, cfg, 10)
    lr = current_lr_and_beta1(opt)[0]
    # Zero gradients: Adam's own update is 0, so only the decoupled decay p *= 1 - lr * wd remains
    # (L2-in-the-gradient Adam would not move p at all here).
    w.grad = torch.zeros_like(w)
    bn_gamma.grad = torch.zeros_like(bn_gamma)
    opt.step()
    sched.step()
    assert torch.allclose(w.detach(), torch.full((4,), 2.0 * (1 - lr * cfg.weight_decay)), rtol=0, atol=1e-7)
    assert torch.allclose(bn_gamma.detach(), torch.full((2,), 3.0 * (1 - lr * cfg.weight_decay)), rtol=0, atol=1e-7)


def test_trainable_parameters_leave_out_a_frozen_teacher():
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    teacher = freeze(torch.nn.Linear(3, 4))
    both = torch.nn.ModuleDict({"student": student, "teacher": teacher})
    params = trainable_parameters(both)
    assert len(params) == 4  # linear weight, bias, BN weight, BN bias (BN decays too, as bn_wd in the reference)
    assert all(any(p is q for q in student.parameters()) for p in params)


def test_clip_gradients_to_norm_10():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad = torch.tensor([60.0, 0.0])
    b.grad = torch.tensor([80.0])  # global norm 100
    norm = clip_gradients([a, b], 10.0)
    assert float(norm) == pytest.approx(100.0)
    assert float(torch.linalg.vector_norm(torch.cat([a.grad, b.grad]))) == pytest.approx(10.0, rel=1e-5)
    assert a.grad[0] == pytest.approx(6.0, rel=1e-5)


def test_bad_schedules_are_refused_with_the_fix():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], TrainConfig())
    with pytest.raises(ValueError, match="at least 2 optimiser steps"):
        build_scheduler(opt, TrainConfig(), 1)
    with pytest.raises(ValueError, match="pct_start"):
        build_scheduler(opt, TrainConfig(pct_start=1.5), 10)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([], TrainConfig())


def test_detector_loss_goes_down_under_the_reference_optimiser(tmp_path):
    # spconv's multi-threaded CPU sparse conv is racy (see test_train_resume); one thread keeps this exact.
    torch.set_num_threads(1)
    (tmp_path / "tiny.yaml").write_text(TINY_VOXEL)
    cfg = load_model_config(tmp_path / "tiny.yaml")
    torch.manual_seed(0)
    model = build_detector(cfg).train()
    objective = DetectorObjective(model)
    points, boxes, labels = synthetic_batch(np.random.default_rng(1), cfg.voxelization.point_cloud_range,
                                            cfg.class_names)
    params = trainable_parameters(objective)
    opt = build_optimizer(params, cfg.train)
    steps = 25
    sched = build_scheduler(opt, cfg.train, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    totals = []
    for _ in range(steps):
        r = train_step(objective, points, boxes, labels, opt, sched, scaler, params, cfg.train.grad_clip)
        totals.append(r.losses["total"])
        assert set(r.losses) >= {"hm", "loc", "total"}
    assert np.mean(totals[-5:]) < 0.6 * np.mean(totals[:3]), totals


def test_measure_train_step_reports_time_and_memory(tmp_path):
    from sparsekd_core.train.bench import measure_train_step

    torch.set_num_threads(1)
    (tmp_path / "tiny.yaml").write_text(TINY_VOXEL)
    r = measure_train_step(str(tmp_path / "tiny.yaml"), batch_size=2, steps=2, warmup=1, n_points=500,
                           device="cpu")
    assert len(r["step_s_all"]) == 2 and all(t > 0 for t in r["step_s_all"])
    assert r["step_s_median"] == pytest.approx(float(np.median(r["step_s_all"])))
    assert r["memory_kind"] == "process_peak_rss" and r["peak_memory_bytes"] > 50 * 2**20
    assert 500 < r["points_per_sample"] <= 500 + 4 * 60  # ground plus up to 4 objects of 60 points
    assert r["teacher"] is None and r["kd"] is None and r["device"] == "cpu"
    with pytest.raises(ValueError, match="needs a teacher_name"):
        measure_train_step(str(tmp_path / "tiny.yaml"), kd="sparsekd", steps=1, n_points=100, device="cpu")
