"""One colour per class, shared by every picture (the RViz markers use the same RGB values)."""
from __future__ import annotations

#: RGB in 0..1 by lower-case class name: vehicles orange, pedestrians blue, cyclists green.
NAMED_COLORS: dict[str, tuple[float, float, float]] = {
    "vehicle": (1.0, 0.6, 0.0),
    "car": (1.0, 0.6, 0.0),
    "van": (1.0, 0.8, 0.3),
    "truck": (0.85, 0.45, 0.1),
    "pedestrian": (0.1, 0.6, 1.0),
    "cyclist": (0.2, 0.9, 0.2),
}
#: Colours for other classes, chosen by class index.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.9, 0.2, 0.9), (1.0, 1.0, 0.2), (0.2, 1.0, 1.0), (1.0, 0.3, 0.3), (0.6, 0.4, 1.0), (0.6, 1.0, 0.4),
)


def class_color(name: str, index: int = 0) -> tuple[float, float, float]:
    """RGB (0..1) of a class: fixed for the usual classes, else the palette entry of ``index``."""
    return NAMED_COLORS.get(str(name).lower(), PALETTE[int(index) % len(PALETTE)])
