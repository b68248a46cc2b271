"""The detector node's ROS parameters: one declarative table of names, defaults, checks and descriptions.

A new parameter is one ``ParamSpec`` line in :data:`PARAMETERS`: the node declares it (with its
description, read-only flag and range), :class:`NodeParams` gets a typed field for it, ``--help``
lists it, and the tests check that config/detector.yaml and launch/detector.launch.py agree with
the table. Kept free of rclpy node code so tools and tests can read it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, make_dataclass, replace
from typing import Any, Callable

from sparsekd_core.backends import BACKENDS
from sparsekd_core.config import DEFAULT_MODEL
from sparsekd_core.own_vehicle import CAR_ROOF, OwnVehicle
from sparsekd_core.thresholds import parse_class_setting

__all__ = ["NODE_NAME", "ParamSpec", "PARAMETERS", "SPECS", "NodeParams"]

#: Default node name; topics are ~/markers -> /sparsekd_detector/markers, ~/detections.
NODE_NAME = "sparsekd_detector"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. Its type is its default's type; ``parse`` turns a raw value into the typed one
    (and raises ValueError for a bad one); ``minimum``/``maximum`` bound numbers (inclusive);
    ``positive`` excludes 0."""

    name: str
    default: Any
    description: str
    read_only: bool = True  # False: may change at run time (ros2 param set)
    dynamic_typing: bool = False
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    parse: Callable[[Any], Any] | None = None

    def typed(self, raw: Any) -> Any:
        """The raw ROS value as this parameter's value; ValueError naming the parameter and the fix."""
        if self.parse is not None:
            try:
                return self.parse(raw)
            except ValueError as exc:
                raise ValueError(f"parameter '{self.name}': {exc}") from exc
        kind = type(self.default)
        if kind is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise ValueError(f"parameter '{self.name}' must be a number, got {raw!r}")
            value: Any = float(raw)
        elif kind is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"parameter '{self.name}' must be an integer, got {raw!r}")
            value = int(raw)
        elif kind is bool:
            if not isinstance(raw, bool):
                raise ValueError(f"parameter '{self.name}' must be true or false, got {raw!r}")
            value = raw
        else:
            value = str(raw)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"parameter '{self.name}' must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"parameter '{self.name}' must be <= {self.maximum:g}, got {value!r}")
        if self.positive and value <= 0:
            raise ValueError(f"parameter '{self.name}' must be > 0, got {value!r}")
        return value


def _xyz_rpy(raw: Any) -> tuple[float, ...]:
    values = list(raw) if isinstance(raw, (list, tuple)) else None
    if values is None or len(values) != 6 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"must be 6 numbers [x, y, z, roll, pitch, yaw] (metres, radians), got {raw!r}; "
                         "e.g. sensor_to_model:=[0.0,0.0,0.77,0.0,0.0,0.0]")
    return tuple(float(v) for v in values)


def _own_vehicle(raw: Any) -> tuple[float, ...]:
    values = list(raw) if isinstance(raw, (list, tuple)) else None
    if values is None or len(values) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        example = ",".join(str(float(v)) for v in CAR_ROOF.as_list())  # floats: a ROS double array
        raise ValueError(f"must be 4 numbers [x_min, x_max, y_min, y_max] (metres, model frame), got {raw!r}; "
                         f"e.g. own_vehicle:=[{example}], or [0.0,0.0,0.0,0.0] for none")
    OwnVehicle.parse(values)  # the footprint's own checks
    return tuple(float(v) for v in values)


def _class_names(raw: Any) -> tuple[str, ...] | None:
    """'' -> None (the checkpoint's own), 'none' -> () (no class), 'A,B' or a string list -> ('A', 'B')."""
    items = list(raw) if isinstance(raw, (list, tuple)) else None
    if items is None:
        if not isinstance(raw, str):
            raise ValueError(f"must be class names as one string 'Pedestrian,Cyclist' or a string list, got {raw!r}")
        if raw.strip().lower() == "none":
            return ()
        items = raw.split(",")
    if not all(isinstance(n, str) for n in items):
        raise ValueError(f"must be class names as one string 'Pedestrian,Cyclist' or a string list, got {raw!r}")
    names = tuple(n.strip() for n in items if n.strip())
    return names or None


def _on_off(raw: Any) -> bool | None:
    """'' -> None (the checkpoint's own), 'on' / 'off' (or true / false) -> True / False."""
    if isinstance(raw, bool):
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text not in ("", "on", "off", "true", "false"):
        raise ValueError(f"must be 'on', 'off' or '' (the checkpoint's own), got {raw!r}")
    return None if text == "" else text in ("on", "true")


def _backend(raw: Any) -> str:
    if raw not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)}, got {raw!r}")
    return str(raw)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", DEFAULT_MODEL, "Zoo model name (uses its bundled checkpoint, e.g. cp_pillar_s, "
              "cp_voxel_s, cp_pillar_v0.64, kitti_cp_voxel_s) or a path to a .pth checkpoint."),
    ParamSpec("checkpoint", "", "Path to a .pth checkpoint; when not empty it is used instead of 'model'."),
    ParamSpec("device", "auto", "Inference device: auto (CUDA when available, else CPU), cuda, cuda:N or cpu."),
    ParamSpec("fp16", False, "Half-precision inference on CUDA (ignored on CPU)."),
    ParamSpec("backend", "torch", "Inference backend of the model's dense part: torch, onnxruntime (CPU, or CUDA "
              "with onnxruntime-gpu) or tensorrt (CUDA GPU with TensorRT). Non-torch backends export the model to "
              "ONNX at start-up; boxes agree with torch's to float tolerance.", parse=_backend),
    ParamSpec("input_topic", "/points", "sensor_msgs/PointCloud2 input topic (subscribed best effort, depth 1)."),
    ParamSpec("score_threshold", 0.3, "Minimum score of a published box, for classes without their own "
              "threshold in class_score_thresholds. Can be changed at run time.", read_only=False,
              minimum=0.0, maximum=1.0),
    ParamSpec("class_score_thresholds", "", "Per-class minimum scores as 'Name:threshold' items, either one "
              "string 'Pedestrian:0.25,Cyclist:0.25' or a string list. A class listed here uses its own "
              "threshold instead of score_threshold, lower or higher; classes the model lacks are ignored "
              "with a warning. Empty (the default): the model's own operating point, the per-class thresholds "
              "its checkpoint records (head.post.operating_thresholds, best F1 on validation frames; none "
              "recorded: score_threshold for all). 'none': score_threshold for every class. Can be changed at "
              "run time.", read_only=False, dynamic_typing=True,
              parse=parse_class_setting),
    ParamSpec("min_points", -1, "Drop boxes holding fewer than this many returns of the cloud (a confident box on "
              "a patch with one return is clutter, not a road user); -1 uses the checkpoint's own "
              "head.post.min_points (0 for CenterPoint and imported OpenPCDet models), 0 keeps every box. "
              "Can be changed at run time.", read_only=False, minimum=-1),
    ParamSpec("square_footprint", "", "Classes whose boxes are published with a square footprint, length = width "
              "= their mean, heading kept: a walking person's returns often do not show which way they face, and a "
              "square box covers them whichever heading the model guessed. One string 'Pedestrian' or a string list; "
              "classes the model lacks are ignored with a warning. Empty (the default): the checkpoint's own "
              "head.post.square_footprint; 'none': every box as decoded. Can be changed at run time.",
              read_only=False, dynamic_typing=True, parse=_class_names),
    ParamSpec("clear_overhead", "", "Classes whose boxes are dropped when 3 or more returns lie 0.5-1.3 m above the "
              "box, over its footprint: a person has open air over the head, while the sign posts and tree trunks "
              "that fire as people on real streets go on up. A person standing under an awning or a low branch is "
              "dropped too. One string 'Pedestrian,Cyclist' or a string list; classes the model lacks are ignored "
              "with a warning. Empty (the default): the checkpoint's own head.post.clear_overhead; 'none': no "
              "check. Can be changed at run time.", read_only=False, dynamic_typing=True, parse=_class_names),
    ParamSpec("tta_flip", "", "Test-time flip: 'on' runs the network on each cloud and on its left-right mirror "
              "image and averages the two views' maps before decoding (on simulated streets better car boxes, "
              "pedestrians and cyclists about the same; twice the network's work a frame); 'off' runs it once. "
              "Empty (the default): the checkpoint's own head.post.tta_flip. Can be changed at run time.",
              read_only=False, dynamic_typing=True, parse=_on_off),
    ParamSpec("min_range", 0.0, "Drop points whose horizontal distance from the sensor is less than this many "
              "metres before detection: the robot's own body. A roof LiDAR returns a few points off its own car's "
              "roof and bonnet every sweep (on KITTI 1.5-2.7 m from the sensor), which a model can read as a car on "
              "the robot; 0 keeps all. Objects nearer than this are not seen. Must be below max_range when that is "
              "set.", minimum=0.0),
    ParamSpec("own_vehicle", CAR_ROOF.as_list(), "[x_min, x_max, y_min, y_max]: the footprint of the vehicle "
              "carrying the sensor, in the model frame (metres; x forward, y left of the sensor, after "
              "sensor_to_model). A box lying on it by a quarter of its area or more is the vehicle's own returns "
              "(a roof LiDAR sees its roof edges, mirrors and rack every sweep) and is dropped; no road user can "
              "stand there. The default is a mid-size car with the sensor on its roof and mirrors or a rack 0.3 m "
              "beyond its sides, the vehicle the bundled models are trained for; give your robot's, or "
              "[0.0, 0.0, 0.0, 0.0] for none (a sensor on no "
              "vehicle). Unlike min_range it keeps every point.", dynamic_typing=True, parse=_own_vehicle),
    ParamSpec("max_range", 0.0, "Drop points whose horizontal distance from the sensor exceeds this many "
              "metres before detection; 0 keeps all (the model's point_cloud_range still applies).", minimum=0.0),
    ParamSpec("intensity_field", "intensity", "Cloud field fed to the model's 'intensity' feature "
              "(e.g. 'intensity', 'reflectance', 'i'); a missing field gives zeros."),
    ParamSpec("intensity_scale", 1.0, "Factor applied to that field, e.g. 0.00392 (1/255) for 0..255 "
              "sensors when the model was trained on 0..1 intensities."),
    ParamSpec("target_frame", "", "Frame of the published boxes. Empty, or the cloud's own frame: the cloud's "
              "frame. Any other frame (e.g. base_link, map): the boxes are transformed into it with tf2 at the "
              "cloud's stamp; a cloud whose transform is not available within transform_timeout, or any cloud "
              "when tf2_ros is not installed, is skipped with a rate-limited warning (never mislabelled)."),
    ParamSpec("transform_timeout", 0.1, "Seconds to wait for the transform to target_frame at a cloud's stamp.",
              minimum=0.0),
    ParamSpec("sensor_to_model", [0.0] * 6, "[x, y, z, roll, pitch, yaw] (metres; radians, REP 103 fixed axes) "
              "of the transform that moves points from the sensor's frame into the frame the model was trained "
              "in, where the ground lies at the model's ground z (logged at start; KITTI: -1.73). E.g. "
              "[0, 0, 0.77, 0, 0, 0] for a LiDAR 2.50 m above the road and a model trained 1.73 m up; roll and "
              "pitch level a tilted sensor. Boxes come back out through the inverse (then to target_frame) and "
              "keep their (x, y, z, dx, dy, dz, yaw) form: centres exact, heading projected on the output frame's "
              "x-y plane. So in a frame tilted against the model's (a tilted sensor's own frame) boxes stay "
              "upright instead of tilting with it: publish in a level frame (target_frame base_link) for exact "
              "boxes.", dynamic_typing=True, parse=_xyz_rpy),
    ParamSpec("sweep_fixed_frame", "odom", "Multi-sweep models (checkpoint sweeps > 1): the fixed frame in which "
              "tf2 gives the sensor's pose at each cloud's stamp, to bring the earlier clouds into the current "
              "sensor frame."),
    ParamSpec("odometry_topic", "", "Multi-sweep models without tf2_ros: a nav_msgs/Odometry topic for the "
              "sensor's motion between clouds (its child frame is taken to move as the sensor does). With neither, "
              "the node assumes a static sensor and says so once."),
    ParamSpec("sweep_max_age", 1.0, "Multi-sweep models: seconds after which an earlier cloud is no longer merged "
              "(a pause in the stream must not bring back stale clouds).", positive=True),
    ParamSpec("ground_check_period", 30.0, "Seconds between mounting checks: the ground height the sensor sees "
              "(a robust plane through the lowest points, in the model frame) logged beside the model's, with "
              "a warning naming sensor_to_model when they differ by more than ground_tolerance. The first cloud "
              "is always checked; 0 = only the first.", minimum=0.0),
    ParamSpec("ground_tolerance", 0.3, "Metres the seen and the expected ground height may differ before the "
              "mounting check warns.", minimum=0.0),
    ParamSpec("warmup_runs", 3, "Forward passes on a synthetic cloud at start-up before subscribing; "
              "their median is logged as the warm latency.", minimum=0),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", positive=True),
    ParamSpec("log_period", 10.0, "Seconds between statistics log lines (frames, drops, median ms per stage); "
              "0 disables them.", minimum=0.0),
)

#: The specs by name.
SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def _model_source(self) -> str:
    """What to load: the checkpoint path when given, else the model name or path."""
    return self.checkpoint or self.model


def check_range_crop(min_range: float, max_range: float) -> None:
    """ValueError when the range crop would drop every point: a min_range at or beyond a max_range that is set."""
    if max_range > 0 and min_range >= max_range:
        raise ValueError(f"min_range ({min_range:g} m) must be below max_range ({max_range:g} m), "
                         "or every point is dropped: min_range is the robot's own body (a few metres); set "
                         "max_range 0 to keep everything beyond it")


def _from_values(cls, values: dict[str, Any]) -> Any:
    """Build from raw parameter values (all of PARAMETERS), checking each and the range crop as a whole;
    ValueError names the parameter."""
    params = cls(**{spec.name: spec.typed(values[spec.name]) for spec in PARAMETERS})
    check_range_crop(params.min_range, params.max_range)
    return params


def _with_values(self, values: dict[str, Any]) -> Any:
    """A copy with some parameters changed (raw values, checked as at start-up)."""
    params = replace(self, **{name: SPECS[name].typed(raw) for name, raw in values.items()})
    check_range_crop(params.min_range, params.max_range)
    return params


# The typed, immutable parameter values: one field per PARAMETERS entry (the field's type is its
# default's type; class_score_thresholds becomes (name, threshold) pairs). Generated from the table
# so that a parameter is declared in exactly one place; the node swaps in a new value on a change.
NodeParams = make_dataclass(
    "NodeParams",
    [(spec.name, Any) for spec in PARAMETERS],
    frozen=True,
    namespace={
        "__doc__": "Typed values of PARAMETERS, immutable; NodeParams.from_values(raw) checks each.",
        "model_source": property(_model_source),
        "from_values": classmethod(_from_values),
        "with_values": _with_values,
    },
)
NodeParams.__module__ = __name__
