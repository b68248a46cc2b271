"""Decode CenterHead maps into boxes: top-K centres, score threshold, range filter, rotated BEV NMS."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import PostProcessConfig
from ..geometry.nms import multiclass_nms
from .center_head import HeadOutput


@dataclass
class BoxPredictions:
    """Boxes of one sample: boxes (M, 7), scores (M,), labels (M,) long 0..C-1, all on the model's device."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def decode_maps(out: HeadOutput, k: int, voxel_size, point_cloud_range, feature_stride: int):
    """Top-K cells of every sample's heatmap (over all classes) -> boxes (B, K, 7), scores (B, K), labels (B, K)."""
    heat = torch.sigmoid(out.heatmap.float())
    b, c, h, w = heat.shape
    k = min(k, c * h * w)
    scores, idx = heat.reshape(b, -1).topk(k)
    labels = idx // (h * w)
    cell = idx % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()

    def at(m):  # (B, n, H, W) -> (B, K, n)
        return m.float().reshape(b, m.shape[1], h * w).gather(2, cell.unsqueeze(1).expand(-1, m.shape[1], -1)).permute(0, 2, 1)

    center, cz, dim, rot = at(out.center), at(out.center_z), at(out.dim), at(out.rot)
    x = (xs + center[..., 0]) * feature_stride * voxel_size[0] + point_cloud_range[0]
    y = (ys + center[..., 1]) * feature_stride * voxel_size[1] + point_cloud_range[1]
    yaw = torch.atan2(rot[..., 1], rot[..., 0])
    boxes = torch.cat([x[..., None], y[..., None], cz, dim.clamp(max=10).exp(), yaw[..., None]], dim=-1)
    return boxes, scores, labels


def postprocess(out: HeadOutput, post: PostProcessConfig, voxel_size, point_cloud_range, feature_stride: int,
                score_threshold: float | None = None, class_thresholds: torch.Tensor | None = None) -> list[BoxPredictions]:
    """Decode, filter by score and centre range, then NMS per sample.

    ``class_thresholds`` (C,): each class's minimum score; when given it replaces ``score_threshold`` (a
    class threshold may be lower or higher than the global one). Without it, ``score_threshold`` (default:
    the config's) applies to every class.
    """
    boxes, scores, labels = decode_maps(out, post.max_per_sample, voxel_size, point_cloud_range, feature_stride)
    thr = post.score_threshold if score_threshold is None else score_threshold
    lo = boxes.new_tensor(post.center_range[:3])
    hi = boxes.new_tensor(post.center_range[3:])
    results = []
    for i in range(boxes.shape[0]):
        if class_thresholds is not None:
            keep = scores[i] >= class_thresholds.to(scores.device)[labels[i]]
        else:
            keep = scores[i] >= thr
        keep &= ((boxes[i, :, :3] >= lo) & (boxes[i, :, :3] <= hi)).all(dim=1)
        keep &= torch.isfinite(boxes[i]).all(dim=1)
        bx, sc, lb = boxes[i][keep], scores[i][keep], labels[i][keep]
        sel = multiclass_nms(bx, sc, lb, post.nms_iou_threshold, post.nms_pre_max_size, post.nms_post_max_size,
                             class_agnostic=post.class_agnostic_nms)
        results.append(BoxPredictions(bx[sel], sc[sel], lb[sel]))
    return results
