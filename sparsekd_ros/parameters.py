"""The detector node's ROS parameters: one table with names, defaults and descriptions.

The node declares exactly these; config/detector.yaml and launch/detector.launch.py are tested to
agree with them. Kept free of rclpy node code so tools and tests can read it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

__all__ = ["NODE_NAME", "ParamSpec", "PARAMETERS", "NodeParams", "parse_class_thresholds"]

#: Default node name; topics are ~/markers -> /sparsekd_detector/markers, ~/detections.
NODE_NAME = "sparsekd_detector"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = True  # False: may change at run time (ros2 param set)
    dynamic_typing: bool = False


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "cp_voxel_s", "Zoo model name (uses its bundled checkpoint, e.g. cp_voxel_s, "
              "cp_pillar_v0.64, kitti_cp_voxel_s) or a path to a .pth checkpoint."),
    ParamSpec("checkpoint", "", "Path to a .pth checkpoint; when not empty it is used instead of 'model'."),
    ParamSpec("device", "auto", "Inference device: auto (CUDA when available, else CPU), cuda, cuda:N or cpu."),
    ParamSpec("fp16", False, "Half-precision inference on CUDA (ignored on CPU)."),
    ParamSpec("input_topic", "/points", "sensor_msgs/PointCloud2 input topic (subscribed best effort, depth 1)."),
    ParamSpec("score_threshold", 0.3, "Minimum score of a published box, for classes without their own "
              "threshold. Can be changed at run time.", read_only=False),
    ParamSpec("class_score_thresholds", "", "Per-class minimum scores as 'Name:threshold' items, either one "
              "string 'Pedestrian:0.25,Cyclist:0.25' or a string list; classes the model lacks are ignored "
              "with a warning. Can be changed at run time.", read_only=False, dynamic_typing=True),
    ParamSpec("max_range", 0.0, "Drop points whose horizontal distance from the sensor exceeds this many "
              "metres before detection; 0 keeps all (the model's point_cloud_range still applies)."),
    ParamSpec("intensity_field", "intensity", "Cloud field fed to the model's 'intensity' feature "
              "(e.g. 'intensity', 'reflectance', 'i'); a missing field gives zeros."),
    ParamSpec("intensity_scale", 1.0, "Factor applied to that field, e.g. 0.00392 (1/255) for 0..255 "
              "sensors when the model was trained on 0..1 intensities."),
    ParamSpec("frame_id", "", "Frame of the published boxes; empty = the input cloud's frame_id."),
    ParamSpec("warmup_runs", 3, "Forward passes on a synthetic cloud at start-up before subscribing; "
              "their median is logged as the warm latency."),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages."),
    ParamSpec("log_period", 10.0, "Seconds between statistics log lines (frames, drops, median ms per stage); "
              "0 disables them."),
)


@dataclass
class NodeParams:
    """Typed values of :data:`PARAMETERS` (class_score_thresholds parsed into a dict)."""

    model: str
    checkpoint: str
    device: str
    fp16: bool
    input_topic: str
    score_threshold: float
    class_score_thresholds: dict[str, float]
    max_range: float
    intensity_field: str
    intensity_scale: float
    frame_id: str
    warmup_runs: int
    diagnostics_period: float
    log_period: float

    @property
    def model_source(self) -> str:
        """What to load: the checkpoint path when given, else the model name or path."""
        return self.checkpoint or self.model

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "NodeParams":
        """Build from raw parameter values, checking types; raises ValueError naming the parameter."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            raw = values[f.name]
            if f.name == "class_score_thresholds":
                out[f.name] = parse_class_thresholds(raw)
            elif f.type in ("float", float):
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ValueError(f"parameter '{f.name}' must be a number, got {raw!r}")
                out[f.name] = float(raw)
            elif f.type in ("int", int):
                out[f.name] = int(raw)
            elif f.type in ("bool", bool):
                out[f.name] = bool(raw)
            else:
                out[f.name] = str(raw)
        params = cls(**out)
        for name in ("max_range", "warmup_runs", "diagnostics_period", "log_period"):
            if getattr(params, name) < 0:
                raise ValueError(f"parameter '{name}' must be >= 0, got {getattr(params, name)}")
        if params.diagnostics_period == 0:
            raise ValueError("parameter 'diagnostics_period' must be > 0 seconds")
        return params


def parse_class_thresholds(value: str | Sequence[str]) -> dict[str, float]:
    """'Car:0.5,Pedestrian:0.3' or ['Car:0.5', 'Pedestrian:0.3'] -> {'Car': 0.5, 'Pedestrian': 0.3}.

    Empty string / list -> {}. Raises ValueError for items without ':' or with a non-number, or a
    threshold outside [0, 1].
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: dict[str, float] = {}
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        name, sep, thr = item.rpartition(":")
        try:
            score = float(thr)
        except ValueError:
            score = float("nan")
        if not sep or not name.strip() or not 0.0 <= score <= 1.0:
            raise ValueError(
                f"class_score_thresholds item {item!r} is not 'ClassName:threshold' with a threshold in [0, 1], "
                f"e.g. 'Pedestrian:0.25'"
            )
        out[name.strip()] = score
    return out
