"""CenterPoint target assignment: gaussian heatmaps and regression targets at object centres."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class CenterTargets:
    """Training targets on a (H, W) BEV grid with C classes and at most K objects per sample.

    heatmap: (B, C, H, W) in [0, 1], gaussians peaking at 1 on object centres.
    indices: (B, K) long, flat cell index (y * W + x) of each object's centre.
    mask:    (B, K) bool, which of the K slots hold an object.
    boxes:   (B, K, 8) regression targets: centre offset (2), z (1), log dims (3), cos yaw, sin yaw;
             (B, K, 10) with velocity targets (vx, vy) appended, when the boxes carry velocities.
    """

    heatmap: torch.Tensor
    indices: torch.Tensor
    mask: torch.Tensor
    boxes: torch.Tensor


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.5) -> torch.Tensor:
    """Largest radius (cells) a corner may move so a box of (height, width) keeps IoU >= min_overlap.

    The three cases of CornerNet's radius (both corners in, both out, one of each); smallest wins.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """Max-blend a gaussian of the given radius (sigma = diameter / 6) centred at cell (cx, cy), in place."""
    h, w = heatmap.shape
    d = 2 * radius + 1
    sigma = d / 6
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return
    # only the part inside the map: a huge box (an untrained teacher's, in label KD) costs no more than the map
    xs = torch.arange(-left, right, dtype=heatmap.dtype, device=heatmap.device)
    ys = torch.arange(-top, bottom, dtype=heatmap.dtype, device=heatmap.device)
    patch = torch.exp(-(xs[None, :] ** 2 + ys[:, None] ** 2) / (2 * sigma * sigma))
    region = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    torch.maximum(region, patch, out=region)


def assign_targets(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    num_classes: int,
    grid_hw: tuple[int, int],
    voxel_size,
    point_cloud_range,
    feature_stride: int,
    gaussian_overlap: float = 0.1,
    min_radius: int = 2,
    max_objects: int = 500,
    outside: str = "drop",
) -> CenterTargets:
    """gt_boxes (B, M, 7) or (B, M, 9) with (vx, vy), and gt_labels (B, M) (0..C-1, -1 = padding) -> CenterTargets
    on the (H, W) map (10 regression codes when the boxes carry velocities, else 8).

    The first ``max_objects`` boxes of a sample (in their order) get targets. A box whose centre lies outside
    the map: ``outside="drop"`` gives it none (no cell holds its centre); ``"clamp"`` moves the centre into
    the border cell (offset up to 0.5), as the reference's CenterHead does.
    """
    if outside not in ("drop", "clamp"):
        raise ValueError(f"assign_targets: outside must be 'drop' or 'clamp' (got {outside!r})")
    bsz = gt_boxes.shape[0]
    with_velocity = gt_boxes.shape[-1] >= 9
    h, w = grid_hw
    device = gt_boxes.device
    heatmap = torch.zeros((bsz, num_classes, h, w), device=device)
    indices = torch.zeros((bsz, max_objects), dtype=torch.long, device=device)
    mask = torch.zeros((bsz, max_objects), dtype=torch.bool, device=device)
    boxes = torch.zeros((bsz, max_objects, 10 if with_velocity else 8), device=device)
    cell_x = voxel_size[0] * feature_stride
    cell_y = voxel_size[1] * feature_stride
    for b in range(bsz):
        valid = gt_labels[b] >= 0
        bx, lab = gt_boxes[b][valid][:max_objects].float(), gt_labels[b][valid][:max_objects].long()
        if len(bx) == 0:
            continue
        cx = (bx[:, 0] - point_cloud_range[0]) / cell_x
        cy = (bx[:, 1] - point_cloud_range[1]) / cell_y
        inside = (bx[:, 3] > 0) & (bx[:, 4] > 0)
        if outside == "drop":
            inside &= (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        cx, cy = cx.clamp(0, w - 0.5), cy.clamp(0, h - 0.5)
        ix, iy = cx.floor().long(), cy.floor().long()
        radius = gaussian_radius(bx[:, 3] / cell_x, bx[:, 4] / cell_y, gaussian_overlap)
        radius = radius.floor().long().clamp(min=min_radius)
        k = 0
        for j in torch.nonzero(inside).flatten().tolist():
            draw_gaussian(heatmap[b, lab[j]], int(ix[j]), int(iy[j]), int(radius[j]))
            indices[b, k] = iy[j] * w + ix[j]
            mask[b, k] = True
            boxes[b, k, 0] = cx[j] - ix[j]
            boxes[b, k, 1] = cy[j] - iy[j]
            boxes[b, k, 2] = bx[j, 2]
            boxes[b, k, 3:6] = bx[j, 3:6].log()
            boxes[b, k, 6] = math.cos(float(bx[j, 6]))
            boxes[b, k, 7] = math.sin(float(bx[j, 6]))
            if with_velocity:
                boxes[b, k, 8:10] = bx[j, 7:9]
            k += 1
    return CenterTargets(heatmap, indices, mask, boxes)


def labels_of_group(gt_labels: torch.Tensor, group: Sequence[int]) -> torch.Tensor:
    """gt_labels (B, M) with model class indices -> the same shape with ``group``'s classes renumbered 0..len-1
    in group order and every other label -1 (padding), ready for :func:`assign_targets` of that group's head."""
    local = torch.full_like(gt_labels, -1)
    for i, c in enumerate(group):
        local[gt_labels == c] = i
    return local
