"""Greedy non-maximum suppression of rotated boxes in bird's-eye view (BEV), in torch.

Boxes follow the project convention (see ``boxes.py``): ``(x, y, z, dx, dy, dz, yaw)``.
Overlap is the rotated BEV IoU of ``iou.py``. A box is suppressed when its IoU with a
higher-scoring kept box is strictly greater than ``iou_threshold`` (as in OpenPCDet and
torchvision). Ties in score keep the earlier box first.

How: the IoU matrix of the ``pre_max_size`` best boxes is computed once (batched, CPU or CUDA);
the greedy pass then walks it on the CPU, one boolean row per kept box. For K candidate boxes
the matrix costs K^2 booleans (16 MiB at K = 4096), which is why ``pre_max_size`` exists.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from sparsekd_core.geometry.iou import iou_bev

ArrayLike = Union[torch.Tensor, np.ndarray]


def nms_bev(boxes: ArrayLike, scores: ArrayLike, iou_threshold: float,
            pre_max_size: Optional[int] = None, post_max_size: Optional[int] = None) -> torch.Tensor:
    """Greedy rotated NMS.

    Args:
        boxes: (N, 7) boxes.
        scores: (N,) confidences; higher is better.
        iou_threshold: suppress a box whose BEV IoU with a kept box exceeds this (0..1).
        pre_max_size: consider only the this many best-scoring boxes (None: all).
        post_max_size: keep at most this many boxes (None: all that survive).

    Returns:
        (K,) int64 indices into ``boxes``, by descending score, on the device of ``boxes``
        (CPU for numpy input).
    """
    boxes_t, scores_t = _check(boxes, scores, iou_threshold, pre_max_size, post_max_size)
    return _nms_sorted(boxes_t, scores_t, iou_threshold, pre_max_size, post_max_size)


def multiclass_nms(boxes: ArrayLike, scores: ArrayLike, labels: ArrayLike, iou_threshold: float,
                   pre_max_size: Optional[int] = None, post_max_size: Optional[int] = None,
                   class_agnostic: bool = False) -> torch.Tensor:
    """NMS per class (boxes of different classes never suppress each other) or across classes.

    Args:
        boxes: (N, 7) boxes.
        scores: (N,) confidences.
        labels: (N,) integer class indices.
        iou_threshold: suppress a box whose BEV IoU with a kept box exceeds this (0..1).
        pre_max_size: per class (or overall when class-agnostic), consider only this many
            best-scoring boxes (None: all).
        post_max_size: keep at most this many boxes in total, the best-scoring across classes
            (None: all that survive).
        class_agnostic: True runs one NMS over all boxes whatever their class.

    Returns:
        (K,) int64 indices into ``boxes``, by descending score.
    """
    boxes_t, scores_t = _check(boxes, scores, iou_threshold, pre_max_size, post_max_size)
    labels_t = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    labels_t = labels_t.to(boxes_t.device)
    if labels_t.shape != scores_t.shape or labels_t.dtype.is_floating_point:
        raise ValueError(
            f"labels has shape {tuple(labels_t.shape)} and dtype {labels_t.dtype}; expected ({len(scores_t)},) "
            "integer class indices, one per box."
        )
    if class_agnostic:
        return _nms_sorted(boxes_t, scores_t, iou_threshold, pre_max_size, post_max_size)
    # A loop over the (few) classes rather than offsetting each class far away: offsets of
    # hundreds of metres would cost float32 boxes their centimetres and change IoUs.
    kept = []
    for label in torch.unique(labels_t).tolist():
        members = torch.nonzero(labels_t == label, as_tuple=True)[0]
        keep = _nms_sorted(boxes_t[members], scores_t[members], iou_threshold, pre_max_size, None)
        kept.append(members[keep])
    keep = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64, device=boxes_t.device)
    order = torch.sort(scores_t[keep], descending=True, stable=True).indices
    keep = keep[order]
    return keep if post_max_size is None else keep[:post_max_size]


def _nms_sorted(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                pre_max_size: Optional[int], post_max_size: Optional[int]) -> torch.Tensor:
    """Greedy NMS on validated tensors; see nms_bev."""
    order = torch.sort(scores, descending=True, stable=True).indices
    if pre_max_size is not None:
        order = order[:pre_max_size]
    if len(order) == 0 or post_max_size == 0:
        return order[:0]
    overlaps = (iou_bev(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    # The greedy pass is inherently sequential; one numpy row OR per kept box is cheap
    # (microseconds at K = 4096) where a loop of torch ops would cost a kernel each.
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        if post_max_size is not None and len(kept) == post_max_size:
            break
        suppressed |= overlaps[i]
    return order[torch.as_tensor(kept, dtype=torch.int64, device=order.device)]


def _check(boxes: ArrayLike, scores: ArrayLike, iou_threshold: float,
           pre_max_size: Optional[int], post_max_size: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate NMS inputs; return them as torch tensors on the boxes' device."""
    boxes_t = boxes if isinstance(boxes, torch.Tensor) else torch.as_tensor(np.asarray(boxes))
    scores_t = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    if boxes_t.ndim != 2 or boxes_t.shape[1] != 7:
        raise ValueError(
            f"boxes has shape {tuple(boxes_t.shape)}; expected (N, 7) boxes (x, y, z, dx, dy, dz, yaw)."
        )
    if scores_t.shape != (len(boxes_t),):
        raise ValueError(f"scores has shape {tuple(scores_t.shape)}; expected ({len(boxes_t)},), one per box.")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold is {iou_threshold}; expected a value in [0, 1].")
    for name, value in (("pre_max_size", pre_max_size), ("post_max_size", post_max_size)):
        if value is not None and (int(value) != value or value < 0):
            raise ValueError(f"{name} is {value}; expected None (no limit) or an integer >= 0.")
    return boxes_t, scores_t.to(boxes_t.device)
