"""Precise BN (train/precise_bn.py): running statistics recomputed as the plain average over the batches."""
from __future__ import annotations

import torch
from torch import nn

from sparsekd_core.train.precise_bn import recompute_batchnorm_statistics


def test_statistics_become_the_average_over_the_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3, momentum=0.01))
    model[1].running_mean.fill_(5.0)  # stale statistics from "training"
    model[1].running_var.fill_(9.0)
    batches = [torch.randn(2, 2, 4, 4) * (k + 1) + k for k in range(3)]
    used = recompute_batchnorm_statistics(model, batches, lambda x: model(x))
    assert used == 3 and not model.training and model[1].momentum == 0.01
    with torch.no_grad():
        feats = [model[0](x) for x in batches]
    # cumulative average of each batch's per-channel mean and unbiased variance
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, means)
    torch.testing.assert_close(model[1].running_var, variances)
    assert int(model[1].num_batches_tracked) == 3
