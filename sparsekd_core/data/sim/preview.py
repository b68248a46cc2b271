"""Bird's-eye-view PNGs of simulated frames: points coloured by height, labelled boxes by class."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsekd_core.geometry.boxes import bev_corners

CLASS_COLOURS = {"car": "#00e5ff", "van": "#4dd0e1", "truck": "#b388ff", "pedestrian": "#ff1744",
                 "cyclist": "#76ff03"}


def save_bev_png(path: str | Path, points: np.ndarray, boxes: np.ndarray, kinds, title: str = "",
                 extent: float = 60.0, dpi: int = 110) -> Path:
    """Draw (N, 3+) points and (M, 7) boxes seen from above, ``extent`` metres around the sensor.

    Points are coloured by height; each box is outlined in its class colour with a tick from its
    centre towards its heading. Uses matplotlib's Agg backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 7), dpi=dpi)
    ax.set_facecolor("black")
    near = (np.abs(points[:, 0]) <= extent) & (np.abs(points[:, 1]) <= extent)
    pts = points[near]
    z = pts[:, 2]
    # Colour by height above the lowest few percent (the ground), saturating 3 m higher.
    lo = np.percentile(z, 3) if len(z) else 0.0
    ax.scatter(pts[:, 0], pts[:, 1], s=0.4, c=np.clip((z - lo) / 3.0, 0, 1), cmap="turbo", vmin=-0.15, vmax=1,
               linewidths=0, rasterized=True)
    corners = bev_corners(boxes) if len(boxes) else np.zeros((0, 4, 2))
    for box, corner, kind in zip(np.asarray(boxes).reshape(-1, 7), corners, kinds):
        colour = CLASS_COLOURS.get(str(kind), "#ff7f0e")
        ring = np.vstack([corner, corner[:1]])
        ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=0.9)
        head = box[:2] + 0.5 * box[3] * np.array([np.cos(box[6]), np.sin(box[6])])
        ax.plot([box[0], head[0]], [box[1], head[1]], color=colour, linewidth=0.9)
    ax.plot([0], [0], marker=">", color="white", markersize=6)
    handles = [plt.Line2D([], [], color=c, label=k) for k, c in CLASS_COLOURS.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=7)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x forward (m)")
    ax.set_ylabel("y left (m)")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
