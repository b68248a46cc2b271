"""BatchNorm statistics recomputed for the finished weights ("precise BN").

During training a BatchNorm layer normalises with each batch's own statistics and keeps an exponential
average of them (momentum 0.01: roughly the last hundred batches) for inference. With small batches, a high
learning rate or BEV windows (each batch a different part of the map), that average lags behind the weights
or describes windows rather than the whole maps a robot feeds the model. Running the finished model over
some training frames once more, in training mode and without gradients, with a cumulative average instead
of the exponential one, gives statistics that belong to the final weights and to whole frames (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, call it precise BN).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def recompute_batchnorm_statistics(model: nn.Module, batches: Iterable, forward: Callable[[object], object]) -> int:
    """Reset every BatchNorm's running statistics of ``model`` and average them over ``batches``.

    forward: runs the model on one batch (its output is ignored). Returns the number of batches used; the
    model is left in eval mode. Layers keep their momentum afterwards.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    used = 0
    with torch.no_grad():
        for batch in batches:
            forward(batch)
            used += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return used
