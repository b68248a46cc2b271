"""The text of an option that names classes (``--square-footprint``, ``--clear-overhead``): ``CLASS[,CLASS]`` or
``none``."""
from __future__ import annotations


def parse_class_list(value: str | None) -> tuple[str, ...] | None:
    """None for None (leave the checkpoint's setting); () for 'none' in any case; else the comma-separated names,
    blanks dropped. Whether they are classes of the model is the Detector's check."""
    if value is None:
        return None
    text = value.strip()
    return () if text.lower() == "none" else tuple(n.strip() for n in text.split(",") if n.strip())


def apply_class_list(detector, setting: str, value: str | None) -> None:
    """Set the Detector's class-list ``setting`` (its attribute) from an option's text, None leaving the
    checkpoint's; the Detector's ValueError, naming the model's classes, when a name is not one of them."""
    names = parse_class_list(value)
    if names is not None:
        setattr(detector, setting, names)
