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
