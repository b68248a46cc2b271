"""Square footprints: publish a class's boxes with length = width, so their heading no longer matters.

A walking person's LiDAR returns are a near-round blob: from most sides nothing in them says which way the person
faces. A network trained on simulated streets then gives such a person the heading most of its training people had,
along the streets (docs/results.md, "Heading from the street"), and on a real person crossing ahead that box is
turned by about 90 degrees. A pedestrian's footprint is close to square (KITTI's mean 0.84 x 0.66 m), so a box whose
length and width are both their mean covers the person about as well whichever way it is turned, while a right
heading loses little. ``head.post.square_footprint`` names the classes the Detector publishes this way.
"""
from __future__ import annotations

from typing import Sequence

import torch


def square_footprints(boxes: torch.Tensor, labels: torch.Tensor, square_labels: Sequence[int]) -> torch.Tensor:
    """``boxes`` (M, 7+) (x, y, z, l, w, h, yaw, ...) with l and w of every box whose label (M,) is in
    ``square_labels`` replaced by their mean; a new tensor, the other boxes and columns as they were."""
    if not len(square_labels) or not len(boxes):
        return boxes
    pick = torch.isin(labels, torch.as_tensor(list(square_labels), dtype=labels.dtype, device=labels.device))
    out = boxes.clone()
    side = 0.5 * (boxes[pick, 3] + boxes[pick, 4])
    out[pick, 3] = side
    out[pick, 4] = side
    return out
