"""Bird's-eye-view pictures: points seen from above, predicted boxes solid, true boxes dashed.

Axes follow REP 103 seen from above: x (forward) to the right, y (left) up, metres. The points are
drawn as a raster (the highest point per cell, brighter when higher above the ground), which costs a
fraction of a scatter plot of 100k points; boxes are outlined in their class colour with a tick from
the centre towards the heading. matplotlib's Agg backend: no display needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.detections import Detections
from sparsekd_core.geometry.boxes import bev_corners
from sparsekd_core.viz.colors import class_color

__all__ = ["BevView", "height_raster", "render_bev", "save_bev_png"]

_BACKGROUND = (0.04, 0.04, 0.06)
_MAX_CELLS = 1000  # raster cells per side: finer than the picture's pixels buys nothing


@dataclass(frozen=True)
class BevView:
    """The ground rectangle shown, in metres of the sensor frame."""

    x_min: float = -60.0
    x_max: float = 60.0
    y_min: float = -60.0
    y_max: float = 60.0

    def __post_init__(self):
        if not (self.x_max > self.x_min and self.y_max > self.y_min):
            raise ValueError(f"BevView needs x_max > x_min and y_max > y_min, got {self}")

    @classmethod
    def around(cls, extent: float) -> "BevView":
        """``extent`` metres around the sensor in every direction."""
        return cls(-extent, extent, -extent, extent)

    @classmethod
    def from_range(cls, point_cloud_range: Sequence[float], margin: float = 2.0) -> "BevView":
        """A model's point_cloud_range (xmin ymin zmin xmax ymax zmax) plus ``margin`` metres."""
        r = [float(v) for v in point_cloud_range]
        return cls(r[0] - margin, r[3] + margin, r[1] - margin, r[4] + margin)


def height_raster(points: np.ndarray, view: BevView, cell: float = 0.1) -> np.ndarray:
    """(H, W, 3) float RGB in 0..1: per ``cell`` metres, the highest point's height above the ground
    (the 3rd percentile of z in view) as brightness from 0.35 (ground) to 1 (3 m up); empty cells dark.
    Row 0 is y_min (draw with origin='lower')."""
    span_x, span_y = view.x_max - view.x_min, view.y_max - view.y_min
    cell = max(cell, max(span_x, span_y) / _MAX_CELLS)
    w, h = int(np.ceil(span_x / cell)), int(np.ceil(span_y / cell))
    image = np.empty((h, w, 3), np.float32)
    image[:] = _BACKGROUND
    pts = np.asarray(points)
    if len(pts) == 0:
        return image
    col = np.floor((pts[:, 0] - view.x_min) / cell)
    row = np.floor((pts[:, 1] - view.y_min) / cell)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h) & np.isfinite(pts[:, 2])
    if not inside.any():
        return image
    z = pts[inside, 2].astype(np.float32)
    flat = row[inside].astype(np.int64) * w + col[inside].astype(np.int64)
    top = np.full(h * w, -np.inf, np.float32)
    np.maximum.at(top, flat, z)
    filled = np.isfinite(top)
    ground = np.percentile(z, 3)
    bright = 0.35 + 0.65 * np.clip((top[filled] - ground) / 3.0, 0.0, 1.0)
    # A cool grey-blue ramp, so the orange/blue/green boxes stand out.
    tint = np.stack([0.80 * bright, 0.88 * bright, bright], axis=1)
    image.reshape(-1, 3)[filled] = tint
    return image


def _draw_boxes(ax, boxes: np.ndarray, names: Sequence[str], indices: Sequence[int], dashed: bool,
                scores: np.ndarray | None = None) -> set[tuple[str, int]]:
    """Outline (M, 7) boxes; returns the (class, index) pairs drawn (for the legend)."""
    drawn: set[tuple[str, int]] = set()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if len(boxes) == 0:
        return drawn
    from matplotlib.collections import LineCollection

    corners = bev_corners(boxes)
    heads = boxes[:, :2] + 0.5 * boxes[:, 3:4] * np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], axis=1)
    colours = [class_color(name, index) for name, index in zip(names, indices)]
    # One collection for every outline and heading tick: an artist per line made the demo's pictures twice as slow.
    segments = [np.vstack([c, c[:1]]) for c in corners] + [np.stack([b[:2], h]) for b, h in zip(boxes, heads)]
    ax.add_collection(LineCollection(segments, colors=colours + colours, linewidths=1.0 if dashed else 1.2,
                                     linestyles=(0, (3, 2)) if dashed else "solid"))
    for k, (box, colour, name, index) in enumerate(zip(boxes, colours, names, indices)):
        if scores is not None:
            ax.text(box[0], box[1] + 0.6 * max(box[3], box[4]), f"{scores[k]:.2f}", color=colour, fontsize=5,
                    ha="center", va="bottom")
        drawn.add((str(name), int(index)))
    return drawn


def render_bev(
    points: np.ndarray,
    detections: Detections | None = None,
    gt_boxes: np.ndarray | None = None,
    gt_names: Sequence[str] | None = None,
    *,
    view: BevView | None = None,
    title: str = "",
    size_px: int = 720,
    scores: bool = False,
) -> np.ndarray:
    """The picture as (size_px, size_px, 3) uint8 RGB.

    points: (N, 3+) sensor-frame points. detections: predicted boxes (solid, class colours; with
    ``scores`` their scores are written beside them). gt_boxes (M, 7) with gt_names (M,): true boxes
    (dashed). view: the ground rectangle (default 60 m around the sensor).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    view = view or BevView()
    dpi = 100
    fig = plt.figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi, facecolor=_BACKGROUND)
    try:
        ax = fig.add_axes((0.09, 0.07, 0.88, 0.86), facecolor=_BACKGROUND)
        # One raster cell per screen pixel of the axes' longer side: no point is lost to resampling.
        cell = max(view.x_max - view.x_min, view.y_max - view.y_min) / (0.88 * size_px)
        ax.imshow(height_raster(points, view, cell), origin="lower", interpolation="antialiased",
                  extent=(view.x_min, view.x_max, view.y_min, view.y_max))
        legend: dict[str, Line2D] = {}
        if gt_boxes is not None and len(gt_boxes):
            names = list(gt_names) if gt_names is not None else ["object"] * len(gt_boxes)
            order = {n: i for i, n in enumerate(dict.fromkeys(names))}
            for name, index in sorted(_draw_boxes(ax, gt_boxes, names, [order[n] for n in names], dashed=True)):
                legend[f"{name} (true)"] = Line2D([], [], color=class_color(name, index), linestyle=(0, (3, 2)))
        if detections is not None and len(detections):
            drawn = _draw_boxes(ax, detections.boxes, detections.names, detections.labels.tolist(), dashed=False,
                                scores=detections.scores if scores else None)
            for name, index in sorted(drawn, key=lambda d: d[1]):
                legend[name] = Line2D([], [], color=class_color(name, index))
        ax.plot([0], [0], marker=">", color="white", markersize=6, linestyle="none")  # the sensor, facing +x
        ax.set_xlim(view.x_min, view.x_max)
        ax.set_ylim(view.y_min, view.y_max)
        ax.set_aspect("equal")
        for side in ax.spines.values():
            side.set_color("0.5")
        ax.tick_params(colors="0.75", labelsize=7)
        ax.set_xlabel("x forward (m)", color="0.8", fontsize=8)
        ax.set_ylabel("y left (m)", color="0.8", fontsize=8)
        if legend:
            ax.legend(list(legend.values()), list(legend), loc="upper right", fontsize=6, framealpha=0.6)
        if title:
            fig.suptitle(title, color="white", fontsize=9, y=0.985)
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[..., :3])
    finally:
        plt.close(fig)


def save_bev_png(path: str | Path, points: np.ndarray, detections: Detections | None = None,
                 gt_boxes: np.ndarray | None = None, gt_names: Sequence[str] | None = None, **kwargs) -> Path:
    """Write :func:`render_bev`'s picture as a PNG (parent folders are created); returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_bev(points, detections, gt_boxes, gt_names, **kwargs)).save(path, compress_level=1)
    return path
