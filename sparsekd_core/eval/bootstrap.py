"""How far a KITTI AP measured on few frames can be trusted: percentile intervals over resampled frames.

On a small labelled set one box more or less moves a class by several points: 24 real sweeps hold 10 moderate
pedestrians, and four fine-tunes of one student whose simulated figures agreed scored 6.7-25.1 Pedestrian BEV on
them (docs/results.md). The bootstrap says how much of such a spread the set alone explains: draw as many frames as
the set holds, with replacement, score the draw with the same metric (``kitti_eval``, or ``kitti_eval_uncapped`` for
a small set), repeat, and report the central share of the scores (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, the percentile interval). Frames are the unit drawn, since the objects of one frame share their
street and sensor. A draw without valid ground truth of a class/difficulty has no AP there (the devkit would print
0.00) and is left out of that figure's interval; ``drawn`` counts the draws that had one.

Two models compared on the same small set differ by less than either figure's interval is wide, yet their errors
share the frames: scoring both on the same draws (a paired bootstrap) gives the interval of their difference, which
is what a choice between them needs.

The resampling is numpy's (``scipy.stats.bootstrap`` would turn a draw with no ground truth into a NaN interval).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sparsekd_core.eval.kitti import kitti_eval, kitti_eval_uncapped
from sparsekd_core.eval.report import check_frames, fmt, format_table


def bootstrap_kitti(gt_annos: Sequence[Mapping[str, Any]], dt_annos: Sequence[Mapping[str, Any]],
                    resamples: int = 1000, confidence: float = 0.9, seed: int = 0, uncapped: bool = False,
                    baseline_annos: Sequence[Mapping[str, Any]] | None = None,
                    on_resample: Callable[[], None] | None = None, **kwargs: Any) -> dict:
    """Percentile intervals of ``kitti_eval``'s summary figures (``kitti_eval_uncapped``'s with ``uncapped``)
    over ``resamples`` draws of the frames with replacement. ``kwargs`` go to the metric (classes, metrics,
    recall_points, ...). ``on_resample`` is called after each draw (a progress bar). ``baseline_annos``: another
    model's predictions for the same frames, scored on the same draws (a paired bootstrap): the intervals of the
    difference say whether one model beats the other beyond what the frames alone move.

    Returns a JSON-ready dict: resamples, confidence, seed, frames, uncapped, and per summary key (e.g.
    "Pedestrian/bev/moderate") ``interval[key] = [low, high]``, ``median[key]`` and ``drawn[key]`` (the draws with
    valid ground truth there); with a baseline also ``difference`` = {interval, median, above: the share of draws in
    which this model scores higher}; ``table`` is printable text."""
    n = check_frames(gt_annos, dt_annos)
    if baseline_annos is not None:
        check_frames(gt_annos, baseline_annos)
    if n == 0:
        raise ValueError("no frames to resample")
    if resamples < 1:
        raise ValueError(f"the bootstrap needs at least one resample, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    metric = kitti_eval_uncapped if uncapped else kitti_eval
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    differences: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        gt = [gt_annos[i] for i in idx]
        result = metric(gt, [dt_annos[i] for i in idx], **kwargs)
        base = None if baseline_annos is None else metric(gt, [baseline_annos[i] for i in idx], **kwargs)
        for key, value in result["summary"].items():
            cls, _, difficulty = key.split("/")
            draws.setdefault(key, [])
            differences.setdefault(key, [])
            if result["num_gt"][cls][difficulty] > 0:
                draws[key].append(float(value))
                if base is not None:
                    differences[key].append(float(value) - float(base["summary"][key]))
        if on_resample is not None:
            on_resample()
    interval, median = _percentiles(draws, confidence)
    out = {"resamples": resamples, "confidence": confidence, "seed": seed, "frames": n, "uncapped": uncapped,
           "interval": interval, "median": median, "drawn": {key: len(v) for key, v in draws.items()}}
    if baseline_annos is not None:
        d_interval, d_median = _percentiles(differences, confidence)
        out["difference"] = {"interval": d_interval, "median": d_median,
                             "above": {key: float(np.mean(np.asarray(v) > 0)) if v else None
                                       for key, v in differences.items()}}
    out["table"] = bootstrap_table(out)
    return out


def _percentiles(values_by_key: Mapping[str, list[float]], confidence: float) -> tuple[dict, dict]:
    """Per key: the central ``confidence`` share [low, high] and the median ([None, None] and None without values)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    interval, median = {}, {}
    for key, values in values_by_key.items():
        if values:
            low, mid, high = np.percentile(values, [tail, 50.0, 100.0 - tail])
            interval[key], median[key] = [float(low), float(high)], float(mid)
        else:
            interval[key], median[key] = [None, None], None
    return interval, median


def _span(pair: Sequence[float | None]) -> str:
    return "-" if pair[0] is None else f"{fmt(pair[0])} .. {fmt(pair[1])}"


def bootstrap_table(result: Mapping[str, Any]) -> str:
    """The intervals as text, one row per summary key (and the difference to the baseline, when there is one)."""
    diff = result.get("difference")
    header = ["class/metric/difficulty", "median", "interval", "draws"]
    if diff is not None:
        header += ["minus baseline", "interval", "higher in"]
    rows = []
    for key in result["interval"]:
        row = [key, fmt(result["median"][key]), _span(result["interval"][key]), str(result["drawn"][key])]
        if diff is not None:
            above = diff["above"][key]
            row += [fmt(diff["median"][key]), _span(diff["interval"][key]),
                    "-" if above is None else f"{100 * above:.0f}%"]
        rows.append(row)
    title = (f"KITTI AP{' (uncapped)' if result['uncapped'] else ''}: {100 * result['confidence']:g}% of "
             f"{result['resamples']} draws of the {result['frames']} frames with replacement"
             + (", the baseline scored on the same draws" if diff is not None else ""))
    return format_table(header, rows, title=title)
