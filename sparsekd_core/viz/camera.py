"""A camera image with 2D boxes on it: labelled objects, and a detector's boxes told apart as on a labelled object or
false. What the false boxes of a sim-trained model stand on (hedges, bike racks, unlabelled people) is plain in the
camera image and hard to see in a bird's-eye view; ``sparsekd-gap --images`` writes one per frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.viz.colors import class_color

LABEL_RGB = (0, 255, 0)  # labelled objects
DONTCARE_RGB = (150, 150, 150)  # regions KITTI's labels mark DontCare


def _rgb(name: str) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in class_color(name))


def draw_camera_boxes(image_path: str | Path, out_path: str | Path, label_names: Sequence[str],
                      label_boxes: np.ndarray, box_names: Sequence[str], boxes: np.ndarray, false: np.ndarray,
                      captions: Sequence[str]) -> Path:
    """Draw on the image at ``image_path`` and write it to ``out_path`` (PNG).

    label_boxes (M, 4) and boxes (K, 4): image pixels left, top, right, bottom. Labelled objects are green (DontCare
    grey, thin), drawn over the false boxes; the detector's boxes take their class's colour, thin when on a labelled
    object (drawn over the labels) and thick with ``captions[i]`` above them when ``false[i]``.
    """
    from PIL import Image, ImageDraw  # pillow is pinned (requirements.txt); imported only when a picture is drawn

    img = Image.open(image_path).convert("RGB")
    draw = ImageDraw.Draw(img)
    names, boxes = np.asarray(box_names), np.asarray(boxes, np.float64).reshape(-1, 4)
    false = np.asarray(false, bool).reshape(-1)
    # false boxes first, the labels over them, then the boxes on labelled objects (thin, inside their label's
    # outline), the captions last: a false box that crosses a labelled object leaves the label's outline whole, a
    # box on a label stays visible, and every caption is readable
    for name, box in zip(names[false], boxes[false]):
        draw.rectangle(box.tolist(), outline=_rgb(name), width=3)
    for name, box in zip(label_names, np.asarray(label_boxes, np.float64).reshape(-1, 4)):
        dontcare = name == "DontCare"
        draw.rectangle(box.tolist(), outline=DONTCARE_RGB if dontcare else LABEL_RGB, width=1 if dontcare else 2)
    for name, box in zip(names[~false], boxes[~false]):
        draw.rectangle(box.tolist(), outline=_rgb(name), width=1)
    for name, box, caption in zip(names[false], boxes[false], np.asarray(captions)[false]):
        draw.text((box[0] + 2, max(0.0, box[1] - 11)), caption, fill=_rgb(name))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
