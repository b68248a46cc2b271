"""Evaluation records: reading per-frame annotation dicts, writing result tables and JSON.

The metrics take one dict per frame (ground truth or predictions) and return nested dicts.
This module holds what they share at those two edges:

- ``anno_field``: fetch one per-box array from an annotation dict under any of the names
  the project and OpenPCDet-style infos use (``names``/``name``, ``scores``/``score``,
  ``boxes_lidar``/``gt_boxes_lidar``), with an error that names the frame and the missing key.
- ``format_table``: a fixed-width text table for terminals and logs.
- ``to_jsonable``: numpy values to plain Python, NaN (metric undefined) to ``None``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

NAME_KEYS = ("names", "name")
SCORE_KEYS = ("scores", "score")
BOX_KEYS = ("boxes_lidar", "gt_boxes_lidar")


def anno_field(
    anno: Mapping[str, Any],
    keys: Sequence[str],
    frame: int,
    what: str,
    dtype: Any = None,
    default: Any = None,
) -> np.ndarray:
    """The array stored under the first of ``keys`` present in ``anno``.

    frame, what: used in the error message only (frame index, "ground truth"/"predictions").
    default: returned (as an array) when no key is present; without it a missing key raises
    KeyError naming the keys that were looked for.
    """
    if not isinstance(anno, Mapping):
        raise TypeError(
            f"{what} of frame {frame} is a {type(anno).__name__}; expected a dict of per-box arrays"
        )
    for key in keys:
        if key in anno and anno[key] is not None:
            value = anno[key]
            return np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
    if default is not None:
        return np.asarray(default, dtype=dtype) if dtype is not None else np.asarray(default)
    raise KeyError(
        f"{what} of frame {frame} has no {' / '.join(repr(k) for k in keys)} "
        f"(keys present: {sorted(anno)}); add it, one entry per box"
    )


def check_lengths(arrays: Mapping[str, np.ndarray], frame: int, what: str) -> int:
    """All arrays must have the same first dimension; return it (the number of boxes)."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{what} of frame {frame}: per-box arrays disagree in length {lengths}; "
            "every array needs one entry per box"
        )
    return next(iter(lengths.values())) if lengths else 0


def boxes7(value: np.ndarray, frame: int, what: str) -> np.ndarray:
    """(M, 7) float64 boxes, with a clear error for any other shape."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 7), np.float64)
    if arr.ndim != 2 or arr.shape[1] < 7:
        raise ValueError(
            f"{what} of frame {frame}: boxes have shape {arr.shape}; expected (M, 7) "
            "(x, y, z, dx, dy, dz, yaw) in the LiDAR frame"
        )
    return arr[:, :7]


def check_frames(gt_annos: Sequence, dt_annos: Sequence) -> int:
    """The number of frames, after checking that ground truth and predictions pair up."""
    if len(gt_annos) != len(dt_annos):
        raise ValueError(
            f"{len(gt_annos)} ground-truth frames but {len(dt_annos)} prediction frames: pass one "
            "prediction dict per frame, in the same order (empty arrays where nothing was detected)"
        )
    return len(gt_annos)


def fmt(value: float | None, digits: int = 2) -> str:
    """A metric value for a table: fixed digits, ``-`` where it is undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """Fixed-width table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    out = [] if title is None else [title]
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def to_jsonable(obj: Any) -> Any:
    """Plain-Python copy of ``obj`` for ``json.dump``: numpy to lists/floats, NaN/inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj
