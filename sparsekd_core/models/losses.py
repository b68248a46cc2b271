"""CenterPoint losses: focal loss on heatmaps, weighted L1 on regression at object centres."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clamped_sigmoid(logits: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    return torch.sigmoid(logits.float()).clamp(eps, 1 - eps)


def focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss.

    pred: (B, C, H, W) probabilities (already sigmoid, clamped away from 0 and 1); target: same shape, gaussians.
    Normalised by the number of peaks (cells where target == 1).
    """
    pos = target.eq(1).float()
    neg_weight = torch.pow(1 - target, beta)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, alpha) * pos
    neg_loss = torch.log(1 - pred) * torch.pow(pred, alpha) * neg_weight * (1 - pos)
    num_pos = pos.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos.clamp(min=1)


def gather_at(feature_map: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map, (B, K) flat indices -> (B, K, C) values at those cells."""
    b, c, h, w = feature_map.shape
    flat = feature_map.reshape(b, c, h * w)
    return flat.gather(2, indices.unsqueeze(1).expand(b, c, indices.shape[1])).permute(0, 2, 1)


def reg_l1_loss(pred_map: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
    """L1 between the regression map at object centres and the targets, per code dimension.

    pred_map: (B, 8, H, W); indices, mask: (B, K); target: (B, K, 8) -> (8,) mean loss per code.
    Normalised by max(number of objects, 1), as the reference (no object: 0).
    """
    pred = gather_at(pred_map, indices)
    m = mask.unsqueeze(-1).float()
    num = mask.float().sum()
    loss = (torch.abs(pred - target) * m).sum(dim=(0, 1))
    return loss / num.clamp(min=1.0)


def direction_loss(logit_map: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor,
                   target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a (B, 1, H, W) logit map at object centres against (B, K) 0/1 targets, averaged
    over max(number of objects, 1) like :func:`reg_l1_loss`."""
    logits = gather_at(logit_map.float().contiguous(), indices)[..., 0]
    per_object = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    return (per_object * mask.float()).sum() / mask.float().sum().clamp(min=1.0)
