"""Decode CenterHead maps into boxes: top-K centres per head, score threshold, range filter, rotated BEV NMS.

As the reference (OpenPCDet's CenterHead.generate_predicted_boxes): each task head is decoded and suppressed on
its own, so boxes of different heads never suppress each other; the heads' survivors are then merged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..config import PostProcessConfig
from ..geometry.nms import multiclass_nms
from .center_head import HeadOutput
from .heading import to_cos_sin


@dataclass
class BoxPredictions:
    """Boxes of one sample: boxes (M, 7), scores (M,), labels (M,) long 0..C-1 (model class indices), and
    velocities (M, 2) (vx, vy in m/s) for a model that regresses them, else None; all on the model's device."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    velocities: Optional[torch.Tensor] = None

    def select(self, keep: torch.Tensor) -> "BoxPredictions":
        """The boxes that ``keep`` (a (M,) bool mask or indices) picks, every field alike."""
        return BoxPredictions(self.boxes[keep], self.scores[keep], self.labels[keep],
                              None if self.velocities is None else self.velocities[keep])


def decode_maps(out: HeadOutput, k: int, voxel_size, point_cloud_range, feature_stride: int):
    """Top-K cells of every sample's heatmap (over the head's classes) -> boxes (B, K, 7), scores (B, K),
    labels (B, K) (indices into the head's classes) and velocities (B, K, 2), or None without a vel map."""
    heat = torch.sigmoid(out.heatmap.float())
    b, c, h, w = heat.shape
    k = min(k, c * h * w)
    scores, idx = heat.reshape(b, -1).topk(k)
    labels = idx // (h * w)
    cell = idx % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()

    def at(m):  # (B, n, H, W) -> (B, K, n)
        return (m.float().reshape(b, m.shape[1], h * w)
                .gather(2, cell.unsqueeze(1).expand(-1, m.shape[1], -1)).permute(0, 2, 1))

    center, cz, dim, rot = at(out.center), at(out.center_z), at(out.dim), at(out.rot)
    x = (xs + center[..., 0]) * feature_stride * voxel_size[0] + point_cloud_range[0]
    y = (ys + center[..., 1]) * feature_stride * voxel_size[1] + point_cloud_range[1]
    cos_t, sin_t = to_cos_sin(rot, at(out.direction) if out.direction is not None else None)
    yaw = torch.atan2(sin_t, cos_t)
    # log extents capped at 10 (e^10 m = 22 km) only so exp() cannot overflow to inf; the reference has no cap,
    # and no box a real head predicts comes near it
    boxes = torch.cat([x[..., None], y[..., None], cz, dim.clamp(max=10).exp(), yaw[..., None]], dim=-1)
    velocities = at(out.vel) if out.vel is not None else None
    return boxes, scores, labels, velocities


def nms_boxes(boxes: torch.Tensor, nms_type: str) -> torch.Tensor:
    """The boxes NMS compares: as they are, or with the heading dropped (OpenPCDet's nms_normal)."""
    if nms_type == "axis_aligned":
        boxes = boxes.clone()
        boxes[:, 6] = 0.0
    return boxes


def kept(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, post: PostProcessConfig,
         score_threshold: float, class_thresholds: torch.Tensor | None) -> torch.Tensor:
    """Mask of one sample's boxes (N, 7+) worth keeping: score at or above the threshold (each class's own
    when ``class_thresholds`` is given), centre inside ``post.center_range``, every value finite."""
    if class_thresholds is not None:
        keep = scores >= class_thresholds.to(scores.device)[labels]
    else:
        keep = scores >= score_threshold
    lo, hi = boxes.new_tensor(post.center_range[:3]), boxes.new_tensor(post.center_range[3:])
    keep &= ((boxes[:, :3] >= lo) & (boxes[:, :3] <= hi)).all(dim=1)
    return keep & torch.isfinite(boxes).all(dim=1)


def suppress(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, post: PostProcessConfig) -> torch.Tensor:
    """Indices of the boxes NMS keeps, by descending score, with the config's NMS type, IoU, pre/post sizes and
    class-agnostic setting."""
    return multiclass_nms(nms_boxes(boxes, post.nms_type), scores, labels, post.nms_iou_threshold,
                          post.nms_pre_max_size, post.nms_post_max_size, class_agnostic=post.class_agnostic_nms)


def postprocess(outs: Sequence[HeadOutput], class_groups: Sequence[Sequence[int]], post: PostProcessConfig,
                voxel_size, point_cloud_range, feature_stride: int, score_threshold: float | None = None,
                class_thresholds: torch.Tensor | None = None, nms: bool = True) -> list[BoxPredictions]:
    """Decode each head, filter by score and centre range, NMS per head and sample, merge (``nms=False``: every
    top-K cell that passes is a box, as the reference's label KD decodes its teacher).

    outs: one HeadOutput per head; class_groups: the model class indices of each head's heatmap channels.
    ``class_thresholds`` (C,): each class's minimum score; when given it replaces ``score_threshold`` (a
    class threshold may be lower or higher than the global one). Without it, ``score_threshold`` (default:
    the config's) applies to every class. Each sample's boxes come back by descending score.
    """
    if len(outs) != len(class_groups):
        raise ValueError(f"postprocess: {len(outs)} head outputs for {len(class_groups)} class groups")
    thr = post.score_threshold if score_threshold is None else score_threshold
    per_sample: list[list[BoxPredictions]] = [[] for _ in range(outs[0].heatmap.shape[0])]
    for out, group in zip(outs, class_groups):
        boxes, scores, local, vel = decode_maps(out, post.max_per_sample, voxel_size, point_cloud_range,
                                                feature_stride)
        labels = torch.as_tensor(list(group), dtype=torch.long, device=local.device)[local]
        for i in range(boxes.shape[0]):
            keep = kept(boxes[i], scores[i], labels[i], post, thr, class_thresholds)
            bx, sc, lb = boxes[i][keep], scores[i][keep], labels[i][keep]
            if nms:
                sel = suppress(bx, sc, lb, post)
            else:
                sel = torch.arange(len(bx), device=bx.device)
            velocities = vel[i][keep][sel] if vel is not None else None
            per_sample[i].append(BoxPredictions(bx[sel], sc[sel], lb[sel], velocities))
    return [_merge(parts) for parts in per_sample]


def _merge(parts: list[BoxPredictions]) -> BoxPredictions:
    """One sample's per-head predictions -> one set, by descending score (stable: head order breaks ties)."""
    if len(parts) == 1:
        return parts[0]
    scores = torch.cat([p.scores for p in parts])
    order = torch.sort(scores, descending=True, stable=True).indices
    vel = torch.cat([p.velocities for p in parts])[order] if parts[0].velocities is not None else None
    return BoxPredictions(torch.cat([p.boxes for p in parts])[order], scores[order],
                          torch.cat([p.labels for p in parts])[order], vel)
