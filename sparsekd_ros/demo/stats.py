"""What the replay through the node measured: one record per frame, the per-frame line and the summary.

Latency here is the demo's own clock, publish -> markers received, so it holds the whole path: DDS
both ways, decoding, the model, building and sending the markers. Drops are frames sent without an
answer: the node keeps only the newest cloud while it works (a CPU model slower than the sensor
skips clouds, by design), and best-effort DDS may lose a cloud.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from sparsekd_core.detections import Detections

__all__ = ["FrameRecord", "ReplayStats", "frame_line", "dropped_line"]


@dataclass
class FrameRecord:
    """One published frame: its index and name; once answered, the latency and the node's boxes."""

    index: int
    name: str
    sent_at: float | None = None  # seconds on the demo's clock
    latency_ms: float | None = None
    answered_at: float | None = None
    detections: Detections | None = None

    @property
    def answered(self) -> bool:
        return self.latency_ms is not None


def frame_line(record: FrameRecord, total: int, class_names: Sequence[str]) -> str:
    """'[ 12/103] drive/000012   Car  3  Pedestrian  1  Cyclist  0   latency  512 ms'."""
    counts = record.detections.count_per_class() if record.detections is not None else {}
    objects = "  ".join(f"{name} {counts.get(name, 0):>2}" for name in class_names)
    width = len(str(total))
    return f"[{record.index + 1:>{width}}/{total}] {record.name:<22} {objects}   latency {record.latency_ms:6.0f} ms"


def dropped_line(first: int, last: int) -> str:
    """The line for frames first..last (0-based) that got no answer."""
    span = f"frame {first + 1}" if first == last else f"frames {first + 1}-{last + 1}"
    return f"         {span}: no answer (the node was busy and kept only the newest cloud)"


@dataclass
class ReplayStats:
    """Summary figures of a replay (milliseconds, Hz)."""

    frames_sent: int
    frames_answered: int
    latency_ms_median: float
    latency_ms_p95: float
    answered_rate_hz: float
    offered_rate_hz: float
    node: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.frames_sent - self.frames_answered

    @classmethod
    def from_records(cls, records: Sequence[FrameRecord], node_diagnostics: dict[str, str] | None = None
                     ) -> "ReplayStats":
        """Figures over the records: latency percentiles of the answered frames; rates over the time from
        the first publish to the last publish (offered) and to the last answer (answered)."""
        sent = [r for r in records if r.sent_at is not None]
        answered = [r for r in sent if r.answered]
        lat = np.array([r.latency_ms for r in answered], dtype=np.float64)
        median = float(np.median(lat)) if len(lat) else float("nan")
        p95 = float(np.percentile(lat, 95)) if len(lat) else float("nan")
        offered = answered_rate = 0.0
        if len(sent) >= 2:
            t0 = min(r.sent_at for r in sent)
            offered = (len(sent) - 1) / max(max(r.sent_at for r in sent) - t0, 1e-9)
            if answered:
                answered_rate = len(answered) / max(max(r.answered_at for r in answered) - t0, 1e-9)
        return cls(len(sent), len(answered), median, p95, answered_rate, offered, dict(node_diagnostics or {}))

    def lines(self) -> list[str]:
        """The summary block printed at the end."""
        share = 100.0 * self.dropped / max(self.frames_sent, 1)
        out = [
            f"frames sent {self.frames_sent} at {self.offered_rate_hz:.1f} Hz, answered {self.frames_answered}, "
            f"dropped {self.dropped} ({share:.0f}%)",
            f"latency (publish -> markers received) median {self.latency_ms_median:.0f} ms, "
            f"p95 {self.latency_ms_p95:.0f} ms; answered rate {self.answered_rate_hz:.1f} Hz",
        ]
        if self.node:
            keys = ("frames_processed", "dropped_stale", "skipped_malformed", "detector_errors")
            node = ", ".join(f"{k} {self.node[k]}" for k in keys if k in self.node)
            stages = ", ".join(f"{k[:-10]} {float(self.node[k]):.0f}" for k in
                               ("decode_ms_median", "inference_ms_median", "publish_ms_median") if k in self.node)
            out.append(f"node's own count: {node}" + (f"; median ms: {stages}" if stages else ""))
        return out

    def to_dict(self) -> dict:
        return {"frames_sent": self.frames_sent, "frames_answered": self.frames_answered, "dropped": self.dropped,
                "latency_ms_median": self.latency_ms_median, "latency_ms_p95": self.latency_ms_p95,
                "answered_rate_hz": self.answered_rate_hz, "offered_rate_hz": self.offered_rate_hz,
                "node_diagnostics": self.node}
