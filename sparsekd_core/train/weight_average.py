"""The weights of a run's last stretch averaged into one model (stochastic weight averaging).

A detector trained on simulated streets and run on a real sensor is tested outside the distribution it was
trained on. Two checkpoints of one run that score alike on simulated frames can then differ a lot on real
ones (docs/results.md, "A second run, not bundled": real pedestrians 25.1 and 6.7 after two more epochs
whose simulated figures held). The equal-weight average of the weights along the end of a run lies in a
flatter part of the loss surface than any one of them, and such weights carry better to a shifted domain
(Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018; Cha et al.,
"SWAD: Domain Generalization by Seeking Flat Minima", NeurIPS 2021, which averages densely, every step).

``train.average_last`` (``sparsekd-train --average-last FRACTION``) averages the student's parameters after
every optimiser step of the last FRACTION of the schedule; the finished run's final.pth holds the average,
with BatchNorm statistics recomputed for it over whole training frames (train/precise_bn.py), since running
statistics of the individual weights do not describe their average. The training checkpoints keep the raw
weights (the last one is the run's endpoint) and the running average, so a resumed run averages exactly as an
uninterrupted one. The averaging itself is torch's ``torch.optim.swa_utils.AveragedModel``.

Measured here (docs/results.md, "Averaged weights against the swing of real pedestrians"): averaging the second
half of a two-epoch one-cycle fine-tune of cp_pillar_s scored 0.5-2.3 points of 3D AP below the same run's endpoint
(both with precise BN) on three simulated sets, 3.4 more Pedestrian BEV on 24 real sweeps but 6.8 less Car 3D. A
one-cycle schedule's second half starts at a high learning rate, so its average takes in coarse weights; SWA's own
recipe holds the learning rate flat while averaging.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

#: BatchNorm batches recomputed for averaged weights when the model config asks for none (precise BN).
AVERAGE_BATCHNORM_BATCHES = 32


def first_averaged_step(total_steps: int, fraction: float) -> int:
    """The global step (1-based, counted after the optimiser step) from which the weights are averaged: the last
    ``fraction`` of ``total_steps``, at least the final step. ``fraction`` in (0, 1]."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train.average_last must be in (0, 1] (a share of the schedule), got {fraction}")
    return max(1, total_steps - math.ceil(total_steps * fraction) + 1)


class WeightAverage:
    """Equal-weight running average of a model's parameters from global step ``start`` on.

    The averaged copy is made at the first averaged step, so a run holds (and checkpoints) no second model before
    its tail. Every optimiser step counts, one that a GradScaler skipped too (its unchanged weights then count twice).
    """

    def __init__(self, start: int):
        self.start = int(start)
        self.averaged: AveragedModel | None = None

    def update(self, model: nn.Module, global_step: int) -> None:
        """Fold ``model``'s current parameters in if ``global_step`` (the step just taken) is in the averaged tail."""
        if global_step < self.start:
            return
        if self.averaged is None:
            # a deep copy on the model's device; its buffers follow the model's (use_buffers=False): BatchNorm's
            # statistics are recomputed for the average at the end instead of averaged
            self.averaged = AveragedModel(model)
        self.averaged.update_parameters(model)

    @property
    def count(self) -> int:
        """How many steps' weights the average holds."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged.item())

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged parameters into ``model`` (its buffers are left for the BatchNorm recompute)."""
        if self.averaged is None:
            raise RuntimeError("no weights were averaged yet: the run has not reached its averaged tail")
        with torch.no_grad():
            for mine, avg in zip(model.parameters(), self.averaged.module.parameters(), strict=True):
                mine.copy_(avg)

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start, "averaged": None if self.averaged is None else self.averaged.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore from :meth:`state_dict`; ``model`` (the run's student) gives the averaged copy its shape."""
        if int(state["start"]) != self.start:
            raise ValueError(f"the checkpoint averages weights from step {state['start']}, this run from {self.start}")
        if state["averaged"] is None:
            self.averaged = None
            return
        self.averaged = AveragedModel(model)
        self.averaged.load_state_dict(state["averaged"])
