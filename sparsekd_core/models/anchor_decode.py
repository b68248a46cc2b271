"""Decode an anchor head's maps into boxes: best class per anchor, score threshold, range filter, NMS.

As OpenPCDet's post-processing with MULTI_CLASSES_NMS False: every anchor's box is decoded from its residuals
and direction bin (AnchorHeadSingle.decode_boxes), scored by its most probable class; anchors at or above the
score threshold are kept, the ``nms_pre_max_size`` best of them go through rotated BEV NMS (class-agnostic, or
per class with ``class_agnostic_nms: false``), and at most ``nms_post_max_size`` survive.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..config import PostProcessConfig
from .anchor_head import AnchorHeadSingle, AnchorMaps
from .decode import BoxPredictions, kept, suppress


def postprocess_anchors(head: AnchorHeadSingle, outs: Sequence[AnchorMaps], post: PostProcessConfig,
                        score_threshold: float | None = None, class_thresholds: torch.Tensor | None = None,
                        nms: bool = True) -> list[BoxPredictions]:
    """outs: the head's maps ([AnchorMaps]) -> boxes per sample, by descending score.

    ``class_thresholds`` (C,): each class's minimum score, replacing ``score_threshold`` (default: the
    config's). ``nms=False``: the best ``nms_pre_max_size`` anchors that pass are all boxes (label KD's teacher).
    """
    (out,) = outs
    thr = post.score_threshold if score_threshold is None else score_threshold
    boxes, probs = head.decode_boxes(out)
    scores, labels = probs.max(dim=-1)
    results = []
    for i in range(boxes.shape[0]):
        keep = kept(boxes[i], scores[i], labels[i], post, thr, class_thresholds)
        bx, sc, lb = boxes[i][keep], scores[i][keep], labels[i][keep]
        if nms:
            sel = suppress(bx, sc, lb, post)
        else:
            sel = torch.sort(sc, descending=True, stable=True).indices[:post.nms_pre_max_size]
        results.append(BoxPredictions(bx[sel], sc[sel], lb[sel]))
    return results
