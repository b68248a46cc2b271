"""Rotated box overlap: exact BEV intersection areas, BEV IoU and 3D IoU, batched in torch.

Boxes follow the project convention (see ``boxes.py``): ``(x, y, z, dx, dy, dz, yaw)``, gravity
centre, full extents, yaw about +z from +x, metres and radians.

Every function takes torch tensors (CPU or CUDA) or numpy arrays. Numpy in, numpy out: the
evaluation code works in numpy and calls these directly. The result has the floating dtype of
the inputs (float32 boxes give float32 overlaps).

How the area is computed: for every pair (a, b) box a's BEV rectangle is expressed in box b's own
frame, where b is the axis-aligned rectangle ``[-dx/2, dx/2] x [-dy/2, dy/2]``, and clipped by b's
four sides with Sutherland-Hodgman; the shoelace formula gives the area of what is left. Working
in b's frame keeps coordinates small (a few metres, whatever the range of the scene), so float32
on the GPU stays accurate; on the CPU the clipping runs in float64. This is hand-written because
neither torch nor spconv ships a rotated-rectangle intersection; shapely has one, but on the CPU
and outside torch (the tests compare against it).

Memory stays bounded for any N x M: pairs whose axis-aligned BEV bounds do not touch are skipped
(their intersection is 0), and the rest are clipped in chunks of ``chunk_pairs`` pairs.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]

#: Pairs clipped at once: bounds the scratch memory (about 80 MiB peak at 2**16 in float64) and,
#: measured on a 2-core CPU, about the fastest size too (larger chunks fall out of cache).
DEFAULT_CHUNK_PAIRS = 1 << 16

# Pairs per block of the cheap axis-aligned bounds test that decides which pairs to clip.
_BOUNDS_BLOCK = 1 << 20

# A union (m^2 or m^3) at or below this is treated as empty: IoU 0 rather than 0/0.
_EMPTY_UNION = 1e-12


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def intersection_bev(boxes_a: ArrayLike, boxes_b: ArrayLike,
                     chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> ArrayLike:
    """Exact BEV intersection areas of every pair.

    Args:
        boxes_a: (N, 7) boxes.
        boxes_b: (M, 7) boxes.
        chunk_pairs: how many pairs to clip at once (bounds the scratch memory).

    Returns:
        (N, M) areas in m^2: the overlap of box a's and box b's footprints in the x-y plane.
    """
    return _run_matrix(boxes_a, boxes_b, "bev_area", chunk_pairs)


def iou_bev(boxes_a: ArrayLike, boxes_b: ArrayLike,
            chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> ArrayLike:
    """Rotated IoU of the BEV footprints of every pair.

    Args:
        boxes_a: (N, 7) boxes.
        boxes_b: (M, 7) boxes.
        chunk_pairs: how many pairs to clip at once (bounds the scratch memory).

    Returns:
        (N, M) IoU in [0, 1]; 0 where the union is empty (both boxes of zero area).
    """
    return _run_matrix(boxes_a, boxes_b, "bev_iou", chunk_pairs)


def iou_3d(boxes_a: ArrayLike, boxes_b: ArrayLike,
           chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> ArrayLike:
    """3D IoU of every pair: BEV intersection area x overlap of the z intervals, over the union of volumes.

    Args:
        boxes_a: (N, 7) boxes.
        boxes_b: (M, 7) boxes.
        chunk_pairs: how many pairs to clip at once (bounds the scratch memory).

    Returns:
        (N, M) IoU in [0, 1]; 0 where the union is empty.
    """
    return _run_matrix(boxes_a, boxes_b, "3d_iou", chunk_pairs)


def iou_bev_aligned(boxes_a: ArrayLike, boxes_b: ArrayLike,
                    chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> ArrayLike:
    """BEV IoU of ``boxes_a[i]`` with ``boxes_b[i]`` (row by row, e.g. matched prediction/ground truth).

    Args:
        boxes_a: (N, 7) boxes.
        boxes_b: (N, 7) boxes.

    Returns:
        (N,) IoU in [0, 1].
    """
    return _run_aligned(boxes_a, boxes_b, "bev_iou", chunk_pairs)


def iou_3d_aligned(boxes_a: ArrayLike, boxes_b: ArrayLike,
                   chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> ArrayLike:
    """3D IoU of ``boxes_a[i]`` with ``boxes_b[i]`` (row by row).

    Args:
        boxes_a: (N, 7) boxes.
        boxes_b: (N, 7) boxes.

    Returns:
        (N,) IoU in [0, 1].
    """
    return _run_aligned(boxes_a, boxes_b, "3d_iou", chunk_pairs)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _prepare(boxes_a: ArrayLike, boxes_b: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate two box sets and bring them to torch on one device with one floating dtype.

    Returns (a, b, as_numpy): as_numpy is True when both inputs were numpy arrays.
    """
    as_numpy = not isinstance(boxes_a, torch.Tensor) and not isinstance(boxes_b, torch.Tensor)
    tensors = []
    for name, boxes in (("boxes_a", boxes_a), ("boxes_b", boxes_b)):
        if not isinstance(boxes, torch.Tensor):
            boxes = torch.as_tensor(np.asarray(boxes))
        if boxes.ndim != 2 or boxes.shape[1] != 7:
            raise ValueError(
                f"{name} has shape {tuple(boxes.shape)}; expected (N, 7) boxes "
                "(x, y, z, dx, dy, dz, yaw). Reshape with boxes.reshape(-1, 7)."
            )
        tensors.append(boxes)
    a, b = tensors
    if a.device != b.device:
        raise ValueError(f"boxes_a is on {a.device} and boxes_b on {b.device}; move both to one device.")
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    a, b = a.to(dtype), b.to(dtype)
    for name, boxes in (("boxes_a", a), ("boxes_b", b)):
        # One check per call (a device sync on CUDA): bad boxes would give silent garbage.
        if boxes.numel() and not bool((torch.isfinite(boxes).all() & (boxes[:, 3:6] >= 0).all()).item()):
            raise ValueError(
                f"{name} holds non-finite values or negative extents (dx, dy, dz); "
                "filter them out first, e.g. boxes[torch.isfinite(boxes).all(1) & (boxes[:, 3:6] >= 0).all(1)]."
            )
    return a, b, as_numpy


def _compute_dtype(boxes: torch.Tensor) -> torch.dtype:
    """float64 where it is cheap (CPU) or asked for; float32 on GPUs, where float64 is slow on
    most cards and the pairwise local frame keeps float32 accurate enough."""
    if boxes.device.type == "cpu" or boxes.dtype == torch.float64:
        return torch.float64
    return torch.float32


def _finish(result: torch.Tensor, dtype: torch.dtype, as_numpy: bool) -> ArrayLike:
    result = result.to(dtype)
    return result.numpy() if as_numpy else result


# --------------------------------------------------------------------------------------------
# Pair loops
# --------------------------------------------------------------------------------------------


def _run_matrix(boxes_a: ArrayLike, boxes_b: ArrayLike, what: str, chunk_pairs: int) -> ArrayLike:
    """Evaluate ``what`` for all N x M pairs, visiting only pairs whose BEV bounds touch."""
    a, b, as_numpy = _prepare(boxes_a, boxes_b)
    out_dtype = a.dtype
    work = _compute_dtype(a)
    a, b = a.to(work), b.to(work)
    n, m = len(a), len(b)
    out = torch.zeros((n, m), dtype=out_dtype, device=a.device)
    if n == 0 or m == 0:
        return _finish(out, out_dtype, as_numpy)
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    measure = _MEASURES[what]
    ax0, ax1, ay0, ay1 = _bev_bounds(a)
    bx0, bx1, by0, by1 = _bev_bounds(b)
    # The bounds test costs a few bytes per pair, so it runs on blocks of rows of about
    # _BOUNDS_BLOCK pairs; the pairs that pass are clipped chunk_pairs at a time.
    rows = max(1, _BOUNDS_BLOCK // m)
    for start in range(0, n, rows):
        rs = slice(start, min(n, start + rows))
        touch = ((ax0[rs, None] <= bx1) & (bx0 <= ax1[rs, None])
                 & (ay0[rs, None] <= by1) & (by0 <= ay1[rs, None]))
        ia, ib = torch.nonzero(touch, as_tuple=True)
        ia += start
        for c in range(0, len(ia), chunk_pairs):
            pa, pb = ia[c:c + chunk_pairs], ib[c:c + chunk_pairs]
            out[pa, pb] = measure(a[pa], b[pb]).to(out_dtype)
    return _finish(out, out_dtype, as_numpy)


def _run_aligned(boxes_a: ArrayLike, boxes_b: ArrayLike, what: str, chunk_pairs: int) -> ArrayLike:
    """Evaluate ``what`` for the pairs (a[i], b[i])."""
    a, b, as_numpy = _prepare(boxes_a, boxes_b)
    if len(a) != len(b):
        raise ValueError(
            f"aligned IoU pairs boxes_a[i] with boxes_b[i], but got {len(a)} and {len(b)} boxes; "
            "use iou_bev / iou_3d for all pairs."
        )
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    out_dtype = a.dtype
    work = _compute_dtype(a)
    a, b = a.to(work), b.to(work)
    measure = _MEASURES[what]
    out = torch.zeros(len(a), dtype=work, device=a.device)
    for c in range(0, len(a), chunk_pairs):
        out[c:c + chunk_pairs] = measure(a[c:c + chunk_pairs], b[c:c + chunk_pairs])
    return _finish(out, out_dtype, as_numpy)


def _bev_bounds(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, 7) boxes -> x_min, x_max, y_min, y_max (K,) of their axis-aligned BEV bounds.

    Widened by a few float32 ulps of the coordinates so that boxes touching only through
    rounding still reach the exact test (which then finds ~0 area).
    """
    c, s = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    half_x = 0.5 * (boxes[:, 3] * c + boxes[:, 4] * s)
    half_y = 0.5 * (boxes[:, 3] * s + boxes[:, 4] * c)
    x, y = boxes[:, 0], boxes[:, 1]
    half_x = half_x + 1e-6 * (x.abs() + half_x) + 1e-9
    half_y = half_y + 1e-6 * (y.abs() + half_y) + 1e-9
    return x - half_x, x + half_x, y - half_y, y + half_y


# --------------------------------------------------------------------------------------------
# Per-pair measures: (P, 7), (P, 7) -> (P,)
# --------------------------------------------------------------------------------------------


def _pair_bev_area(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """BEV intersection area of the pairs (a[p], b[p]); clipped to [0, min(area_a, area_b)]."""
    x, y = _a_corners_in_b_frame(a, b)  # (P, 5) each, counter-clockwise, closed
    half_x, half_y = 0.5 * b[:, 3:4], 0.5 * b[:, 4:5]  # (P, 1)
    # b's four sides as "inside" distances: x <= hx, x >= -hx, y <= hy, y >= -hy.
    x, y = _clip(x, y, half_x - x)
    x, y = _clip(x, y, half_x + x)
    x, y = _clip(x, y, half_y - y)
    x, y = _clip(x, y, half_y + y)
    area = _shoelace(x, y)
    cap = torch.minimum(a[:, 3] * a[:, 4], b[:, 3] * b[:, 4])
    return torch.minimum(area.clamp(min=0.0), cap)


def _pair_bev_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter = _pair_bev_area(a, b)
    union = a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter
    return _safe_ratio(inter, union)


def _pair_3d_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top = torch.minimum(a[:, 2] + 0.5 * a[:, 5], b[:, 2] + 0.5 * b[:, 5])
    bottom = torch.maximum(a[:, 2] - 0.5 * a[:, 5], b[:, 2] - 0.5 * b[:, 5])
    inter = _pair_bev_area(a, b) * (top - bottom).clamp(min=0.0)
    union = a[:, 3] * a[:, 4] * a[:, 5] + b[:, 3] * b[:, 4] * b[:, 5] - inter
    return _safe_ratio(inter, union)


def _safe_ratio(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """inter / union, 0 where the union is empty, clipped to [0, 1] against rounding."""
    empty = union <= _EMPTY_UNION
    ratio = inter / torch.where(empty, torch.ones_like(union), union)
    return torch.where(empty, torch.zeros_like(ratio), ratio.clamp(0.0, 1.0))


_MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bev_area": _pair_bev_area,
    "bev_iou": _pair_bev_iou,
    "3d_iou": _pair_3d_iou,
}


# --------------------------------------------------------------------------------------------
# Polygon clipping
# --------------------------------------------------------------------------------------------


def _a_corners_in_b_frame(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 7), (P, 7) -> x, y (P, 5): box a's BEV corners in box b's frame, counter-clockwise,
    closed (the fifth vertex repeats the first).

    Only the yaw difference and the centre offset enter, so the numbers stay of the order of
    the box sizes even far from the sensor.
    """
    cb, sb = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    centre_x = (dx * cb + dy * sb)[:, None]  # R(-yaw_b) (centre_a - centre_b)
    centre_y = (-dx * sb + dy * cb)[:, None]
    rel = a[:, 6] - b[:, 6]
    c, s = torch.cos(rel)[:, None], torch.sin(rel)[:, None]
    sign_x = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0], dtype=a.dtype, device=a.device)
    sign_y = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0], dtype=a.dtype, device=a.device)
    local_x = sign_x * (0.5 * a[:, 3:4])  # (P, 5) in a's frame
    local_y = sign_y * (0.5 * a[:, 4:5])
    return local_x * c - local_y * s + centre_x, local_x * s + local_y * c + centre_y


def _clip(x: torch.Tensor, y: torch.Tensor, distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sutherland-Hodgman step, batched: keep the part of each polygon where distance >= 0.

    Polygons are fixed-size vertex arrays x, y (P, S), closed: the last slot repeats the first,
    so edge i runs from slot i to slot i + 1. Unused slots repeat the first vertex: repeated
    vertices add nothing to the area and survive clipping as repeats, so no validity mask is
    needed. A convex polygon clipped by a half-plane gains at most one vertex, so the result is
    (P, S + 1), again closed. A polygon clipped away entirely collapses to one repeated point.

    Args:
        x, y: (P, S) vertex coordinates.
        distance: (P, S) signed distance of each vertex to the clipping line, >= 0 inside.
    """
    p, s = x.shape
    d_start, d_end = distance[:, :-1], distance[:, 1:]
    in_end = d_end >= 0
    crosses = (d_start >= 0) != in_end
    # Where the edge crosses, d_start and d_end have opposite signs (one >= 0, one < 0), so the
    # denominator is non-zero; elsewhere it is replaced to keep the arithmetic finite.
    t = d_start / torch.where(crosses, d_start - d_end, torch.ones_like(d_start))
    x_start, y_start, x_end, y_end = x[:, :-1], y[:, :-1], x[:, 1:], y[:, 1:]
    # Per edge (start -> end), S-H emits the crossing point if the edge crosses, then end if inside.
    cand_x = torch.stack([x_start + t * (x_end - x_start), x_end], dim=2).reshape(p, -1)
    cand_y = torch.stack([y_start + t * (y_end - y_start), y_end], dim=2).reshape(p, -1)
    valid = torch.stack([crosses, in_end], dim=2).reshape(p, -1)
    # Compact: output slot j takes the (j+1)-th valid candidate, found by binary search in the
    # running count; slots past the count take the first valid one (a repeat). A polygon made
    # near-collinear by rounding may yield one vertex more than S; it is dropped, which moves the
    # area by rounding error only.
    count = torch.cumsum(valid, dim=1, dtype=torch.int32)
    wanted = torch.arange(1, s + 1, dtype=torch.int32, device=x.device).expand(p, s).contiguous()
    index = torch.searchsorted(count, wanted)
    n_cand = count.shape[1]
    index = torch.where(index == n_cand, index[:, :1], index).clamp_(max=n_cand - 1)
    index = torch.cat([index, index[:, :1]], dim=1)  # close the polygon
    return cand_x.gather(1, index), cand_y.gather(1, index)


def _shoelace(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x, y (P, S) closed polygons -> (P,) signed areas (positive when counter-clockwise)."""
    return 0.5 * (x[:, :-1] * y[:, 1:] - y[:, :-1] * x[:, 1:]).sum(dim=1)
