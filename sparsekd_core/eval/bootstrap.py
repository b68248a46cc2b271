"""How far a KITTI AP measured on few frames can be trusted: percentile intervals over resampled frames.

On a small labelled set one box more or less moves a class by several points: 24 real sweeps hold 10 moderate
pedestrians, and four fine-tunes of one student whose simulated figures agreed scored 6.7-25.1 Pedestrian BEV on
them (docs/results.md). The bootstrap says how much of such a spread the set alone explains: draw as many frames as
the set holds, with replacement, score the draw with the same metric (``kitti_eval``, or ``kitti_eval_uncapped`` for
a small set), repeat, and report the central share of the scores (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, the percentile interval). Frames are the unit drawn, since the objects of one frame share their
street and sensor. A draw without valid ground truth of a class/difficulty has no AP there (the devkit would print
0.00) and is left out of that figure's interval; ``drawn`` counts the draws that had one.

The resampling is numpy's (``scipy.stats.bootstrap`` would turn a draw with no ground truth into a NaN interval).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sparsekd_core.eval.kitti import kitti_eval, kitti_eval_uncapped
from sparsekd_core.eval.report import check_frames, fmt, format_table


def bootstrap_kitti(gt_annos: Sequence[Mapping[str, Any]], dt_annos: Sequence[Mapping[str, Any]],
                    resamples: int = 1000, confidence: float = 0.9, seed: int = 0, uncapped: bool = False,
                    on_resample: Callable[[], None] | None = None, **kwargs: Any) -> dict:
    """Percentile intervals of ``kitti_eval``'s summary figures (``kitti_eval_uncapped``'s with ``uncapped``)
    over ``resamples`` draws of the frames with replacement. ``kwargs`` go to the metric (classes, metrics,
    recall_points, ...). ``on_resample`` is called after each draw (a progress bar).

    Returns a JSON-ready dict: resamples, confidence, seed, frames, uncapped, and per summary key (e.g.
    "Pedestrian/bev/moderate") ``interval[key] = [low, high]``, ``median[key]`` and ``drawn[key]`` (the draws with
    valid ground truth there); ``table`` is printable text."""
    n = check_frames(gt_annos, dt_annos)
    if n == 0:
        raise ValueError("no frames to resample")
    if resamples < 1:
        raise ValueError(f"the bootstrap needs at least one resample, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    metric = kitti_eval_uncapped if uncapped else kitti_eval
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        gt, dt = [gt_annos[i] for i in idx], [dt_annos[i] for i in idx]
        result = metric(gt, dt, **kwargs)
        for key, value in result["summary"].items():
            cls, _, difficulty = key.split("/")
            draws.setdefault(key, [])
            if result["num_gt"][cls][difficulty] > 0:
                draws[key].append(float(value))
        if on_resample is not None:
            on_resample()
    tail = 100.0 * (1.0 - confidence) / 2.0
    interval, median, drawn = {}, {}, {}
    for key, values in draws.items():
        drawn[key] = len(values)
        if values:
            low, mid, high = np.percentile(values, [tail, 50.0, 100.0 - tail])
            interval[key], median[key] = [float(low), float(high)], float(mid)
        else:
            interval[key], median[key] = [None, None], None
    out = {"resamples": resamples, "confidence": confidence, "seed": seed, "frames": n, "uncapped": uncapped,
           "interval": interval, "median": median, "drawn": drawn}
    out["table"] = bootstrap_table(out)
    return out


def bootstrap_table(result: Mapping[str, Any]) -> str:
    """The intervals as text, one row per summary key."""
    rows = [[key, fmt(result["median"][key]),
             "-" if result["interval"][key][0] is None else
             f"{fmt(result['interval'][key][0])} .. {fmt(result['interval'][key][1])}", str(result["drawn"][key])]
            for key in result["interval"]]
    title = (f"KITTI AP{' (uncapped)' if result['uncapped'] else ''}: {100 * result['confidence']:g}% of "
             f"{result['resamples']} draws of the {result['frames']} frames with replacement")
    return format_table(["class/metric/difficulty", "median", "interval", "draws"], rows, title=title)
