"""Per-stage timing and frame counters of the detector pipeline, over a sliding window.

Written by the worker thread, read by the diagnostics and log timers on the executor thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Mapping

import numpy as np

__all__ = ["STAGES", "PipelineStats"]

#: Stages timed for every frame, in pipeline order (seconds). "latency" is cloud stamp -> published.
STAGES = ("decode", "preprocess", "inference", "postprocess", "publish")


class PipelineStats:
    """Rolling window of the last ``window`` frames' timings plus totals since start.

    Counters: ``processed`` (frames published), ``malformed`` (skipped bad clouds), ``errors``
    (detector failures), ``no_transform`` (skipped: no transform to the target frame). Drops are
    counted by the mailbox and passed to :meth:`summary`.
    """

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, deque[float]] = {}
        self._window = window
        self._done_at: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.malformed = 0
        self.errors = 0
        self.no_transform = 0
        self.last_problem = ""
        self.last_boxes = 0
        self.last_points = 0

    def record(self, timings: Mapping[str, float], boxes: int, points: int) -> None:
        """Add one published frame: ``timings`` in seconds per stage (any of STAGES, "latency", ...)."""
        with self._lock:
            for name, seconds in timings.items():
                self._series.setdefault(name, deque(maxlen=self._window)).append(float(seconds))
            self._done_at.append(time.monotonic())
            self.processed += 1
            self.last_boxes, self.last_points = boxes, points

    def skipped(self, problem: str, kind: str = "malformed") -> None:
        """Count a frame that was not published: kind "malformed" (bad input), "error" (the detector failed)
        or "no_transform" (no transform to the target frame)."""
        counter = {"malformed": "malformed", "error": "errors", "no_transform": "no_transform"}[kind]
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)
            self.last_problem = problem

    @property
    def problems(self) -> int:
        """Frames skipped for any reason (not counting the mailbox's drops)."""
        return self.malformed + self.errors + self.no_transform

    def rate_hz(self) -> float:
        """Frames published per second over the window (0 before two frames)."""
        with self._lock:
            if len(self._done_at) < 2:
                return 0.0
            span = self._done_at[-1] - self._done_at[0]
            return (len(self._done_at) - 1) / span if span > 0 else 0.0

    def percentiles_ms(self, name: str) -> tuple[float, float, float] | None:
        """(median, p95, max) of a series in milliseconds, None if nothing was recorded."""
        with self._lock:
            values = self._series.get(name)
            if not values:
                return None
            arr = np.fromiter(values, dtype=np.float64) * 1e3
        return float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max())

    def summary(self, received: int, dropped: int) -> dict[str, object]:
        """Flat key -> value dict for diagnostics and logs (times in ms)."""
        out: dict[str, object] = {
            "clouds_received": received,
            "frames_processed": self.processed,
            "dropped_stale": dropped,
            "skipped_malformed": self.malformed,
            "detector_errors": self.errors,
            "skipped_no_transform": self.no_transform,
            "rate_hz": self.rate_hz(),
            "last_boxes": self.last_boxes,
            "last_points": self.last_points,
        }
        with self._lock:
            names = list(self._series)
        for name in names:
            stats = self.percentiles_ms(name)
            if stats is not None:
                out[f"{name}_ms_median"], out[f"{name}_ms_p95"], out[f"{name}_ms_max"] = stats
        if self.last_problem:
            out["last_problem"] = self.last_problem
        return out

    def log_line(self, received: int, dropped: int) -> str:
        """One line: counts, rate and the median ms of every stage and of the latency."""
        parts = []
        for name in (*STAGES, "latency", "receive_to_publish"):
            stats = self.percentiles_ms(name)
            if stats is not None:
                parts.append(f"{name} {stats[0]:.1f}")
        return (
            f"frames {self.processed} ({self.rate_hz():.1f} Hz), received {received}, dropped {dropped}, "
            f"malformed {self.malformed}, errors {self.errors}, no transform {self.no_transform} | median ms: "
            + (", ".join(parts) or "n/a")
        )
