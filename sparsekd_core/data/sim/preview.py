"""Bird's-eye-view PNGs of simulated frames: the project's one BEV renderer (sparsekd_core.viz.bev)
with the frame's labels as its boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsekd_core.viz.bev import BevView
from sparsekd_core.viz.bev import save_bev_png as _save


def save_bev_png(path: str | Path, points: np.ndarray, boxes: np.ndarray, kinds, title: str = "",
                 extent: float = 60.0, dpi: int = 110) -> Path:
    """Draw (N, 3+) points and their (M, 7) labelled boxes (kinds: (M,) class names) seen from above,
    ``extent`` metres around the sensor, as a square PNG of 7 inches at ``dpi``."""
    return _save(path, points, None, boxes, [str(k) for k in kinds], view=BevView.around(extent), title=title,
                 size_px=int(7 * dpi))
