"""From a collated Batch to what the detector takes: one point tensor per sample, on the device."""
from __future__ import annotations

import torch

from ..data.dataset import Batch


def split_points(points: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """(sum N, 1 + F) points with the sample index in column 0 -> ``batch_size`` tensors (N_i, F).

    collate_samples concatenates samples in order, so the rows of each sample are contiguous; a sample
    with no points gives an empty (0, F) tensor.
    """
    if points.ndim != 2 or points.shape[1] < 4:
        raise ValueError(f"batched points must be (sum N, 1 + F) with F >= 3, got shape {tuple(points.shape)}")
    idx = points[:, 0].long()
    if idx.numel() and bool((idx[1:] < idx[:-1]).any()):
        raise ValueError("batched points are not grouped by sample (column 0 must be non-decreasing)")
    counts = torch.bincount(idx, minlength=batch_size)
    if counts.numel() != batch_size:
        raise ValueError(f"points name sample {int(idx.max())} but the batch holds {batch_size} samples")
    return list(torch.split(points[:, 1:].contiguous(), counts.tolist()))


def batch_inputs(batch: Batch, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(points list, gt_boxes (B, M, 7), gt_labels (B, M)) on ``device``."""
    non_blocking = device.type == "cuda"
    points = batch.points.to(device, non_blocking=non_blocking)
    return (split_points(points, batch.batch_size), batch.gt_boxes.to(device, non_blocking=non_blocking),
            batch.gt_labels.to(device, non_blocking=non_blocking))
