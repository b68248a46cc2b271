"""The LiDAR 3D detector node: sensor_msgs/PointCloud2 in, boxes out, always on the newest cloud.

Threads: the executor thread only stores each incoming cloud in a one-slot mailbox (an unconsumed
older cloud is dropped and counted) and runs the timers; one worker thread decodes, detects and
publishes. So the executor never blocks on the model and nothing queues behind a slow model.

Run:  ros2 run sparsekd_ros detector_node --ros-args -p model:=cp_voxel_s
      python -m sparsekd_ros.detector_node --ros-args --params-file config/detector.yaml
      python -m sparsekd_ros.detector_node --help     (parameters with defaults)
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from typing import Any, NoReturn, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sparsekd_core.data.sweeps import TIME_LAG, Sweep, SweepBuffer
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_core.own_vehicle import OwnVehicle
from sparsekd_core.thresholds import ScoreThresholds, class_thresholds_for
from sparsekd_ros.cloud_input import model_input
from sparsekd_ros.frames import NoTransforms, TransformUnavailable, make_transforms, output_transform
from sparsekd_ros.ground_check import GroundCheck
from sparsekd_ros.mailbox import LatestMailbox
from sparsekd_ros.messages import (detections_to_markers, detections_to_velocity_cloud, detections_to_vision,
                                   diagnostic_array, label_info, load_vision_msgs)
from sparsekd_ros.parameters import NODE_NAME, PARAMETERS, NodeParams, ParamSpec
from sparsekd_ros.pipeline_stats import PipelineStats
from sparsekd_ros.pointcloud2 import MalformedCloud
from sparsekd_ros.qos import latched_qos, output_qos, sensor_qos
from sparsekd_ros.stop_signal import StopOnSignal
from sparsekd_ros.sweep_motion import make_sweep_motion, stamp_seconds

__all__ = ["DetectorNode", "main", "run"]

_WARN_EVERY_S = 5.0  # rate limit of repeated warnings (bad clouds, detector errors)
_PLAUSIBLE_LATENCY_S = 60.0  # stamps older than this are replayed data, not latency


class DetectorNode(Node):
    """Subscribes to ``input_topic``; publishes ``~/markers``, ``/diagnostics`` and, with vision_msgs,
    ``~/detections`` and ``~/label_info`` (transient local: the class names of the detections' class ids).

    ``detector``: an already loaded ``sparsekd_core.inference.Detector`` (benchmarks, tests); by
    default the node loads ``model``/``checkpoint`` on ``device`` itself. ``transforms``: where transforms to
    ``target_frame`` come from (a ``frames.TransformSource``); by default tf2_ros when it is installed.
    """

    def __init__(self, node_name: str = NODE_NAME, *, detector: Any = None, transforms: Any = None,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.params = self._declare_parameters()
        log = self.get_logger()
        self.det = detector if detector is not None else self._load_detector()
        self.det.thresholds = self._thresholds(self.params)
        if self.params.min_points >= 0:
            self.det.min_points = self.params.min_points
        if self.params.square_footprint is not None:
            self.det.square_footprint = self._classes_of(self.params, "square_footprint")
        if self.params.clear_overhead is not None:
            self.det.clear_overhead = self._classes_of(self.params, "clear_overhead")
        if self.params.tta_flip is not None:
            self.det.tta_flip = self.params.tta_flip
        self.det.own_vehicle = OwnVehicle.parse(self.params.own_vehicle)
        warm_ms = self.det.warmup(self.params.warmup_runs) * 1e3 if self.params.warmup_runs > 0 else float("nan")
        log.info(
            f"model {self.det.name} on {self.det.device} ({getattr(self.det, 'backend', 'torch')}): "
            f"classes {list(self.det.class_names)}, "
            f"point features {list(self.det.point_features)}, warm latency {warm_ms:.1f} ms "
            f"(median of {self.params.warmup_runs} runs), score thresholds {self.det.thresholds.describe()}"
            + (" (per class: the model's operating point; class_score_thresholds:=none for one threshold)"
               if self.params.class_score_thresholds is None and self.det.operating_thresholds else "")
            + (f", boxes need {self.det.min_points} returns" if hasattr(self.det, "min_points") else "")
            + (f", {' and '.join(self.det.square_footprint)} boxes published square"
               if getattr(self.det, "square_footprint", ()) else "")
            + (f", {' and '.join(self.det.clear_overhead)} boxes dropped under something solid"
               if getattr(self.det, "clear_overhead", ()) else "")
            + (", test-time flip on (two views a frame)" if getattr(self.det, "tta_flip", False) else "")
            + (", no own vehicle" if self.det.own_vehicle is None else
               f", boxes on the own vehicle {list(self.params.own_vehicle)} dropped")
        )
        provenance = getattr(self.det, "meta", {}).get("provenance")
        if provenance:
            log.info(f"weights: {provenance}")
        self._set_up_frames(log, transforms)

        self._vision = load_vision_msgs()
        if self._vision is None:
            log.info("vision_msgs is not installed: ~/detections (vision_msgs/Detection3DArray) is not published; "
                     "install ros-$ROS_DISTRO-vision-msgs to get it. ~/markers is published.")
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", output_qos())
        self.detections_pub = (
            self.create_publisher(self._vision.Detection3DArray, "~/detections", output_qos()) if self._vision else None
        )
        self.label_info_pub = (
            self.create_publisher(self._vision.LabelInfo, "~/label_info", latched_qos())
            if self._vision is not None and hasattr(self._vision, "LabelInfo") else None
        )
        self._publish_label_info()
        # vision_msgs/Detection3D has no velocity field: a model that regresses velocity publishes it beside
        self.velocities_pub = (self.create_publisher(PointCloud2, "~/velocities", output_qos())
                               if getattr(getattr(self.det, "cfg", None), "head", None) is not None
                               and self.det.cfg.head.velocity else None)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos(10))

        self.stats = PipelineStats()
        self.mailbox: LatestMailbox[tuple[PointCloud2, float]] = LatestMailbox()
        self._problems_seen = 0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="sparsekd_detector_worker", daemon=True)
        self._worker.start()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Reporting runs on wall time: with use_sim_time it goes on while a bag is paused or before /clock.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.params.diagnostics_period, self._publish_diagnostics, clock=steady)
        if self.params.log_period > 0:
            self.create_timer(self.params.log_period, self._log_stats, clock=steady)
        self.cloud_sub = self.create_subscription(PointCloud2, self.params.input_topic, self._on_cloud, sensor_qos())
        log.info(
            f"listening on {self.cloud_sub.topic_name} (best effort, newest cloud wins); publishing "
            f"{self.markers_pub.topic_name}" + (f", {self.detections_pub.topic_name}" if self.detections_pub else "")
            + (f", {self.velocities_pub.topic_name} (box velocities)" if self.velocities_pub else "")
            + (f", {self.label_info_pub.topic_name}" if self.label_info_pub else "")
        )

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> NodeParams:
        values = {spec.name: self.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
                  for spec in PARAMETERS}
        return NodeParams.from_values(values)

    def _set_up_frames(self, log: Any, transforms: Any) -> None:
        """sensor_to_model, the mounting check and, for a target_frame, tf2 (or why not)."""
        p = self.params
        self._sensor_to_model = RigidTransform.from_xyz_rpy(*p.sensor_to_model)
        self._model_to_sensor = self._sensor_to_model.inverse()
        expected_z, source = (self.det.expected_ground() if hasattr(self.det, "expected_ground")
                              else (None, "the detector does not say"))
        log.info(f"model frame: ground at z {'unknown' if expected_z is None else f'{expected_z:+.2f} m'} "
                 f"({source}); sensor_to_model {list(p.sensor_to_model)}")
        self._ground = GroundCheck(expected_z, source, p.ground_tolerance, p.ground_check_period)
        sweeps = int(getattr(getattr(self.det, "cfg", None), "sweeps", 1))
        needs_tf = bool(p.target_frame) or sweeps > 1  # boxes in target_frame, or the motion between sweeps
        self._transforms = (transforms or make_transforms(self)) if needs_tf else None
        self._set_up_sweeps(log, sweeps)
        if not p.target_frame:
            return
        if isinstance(self._transforms, NoTransforms):
            log.warning(f"target_frame '{p.target_frame}': {NoTransforms.reason}. Only clouds whose frame is already "
                        f"'{p.target_frame}' are published; all others are skipped (never mislabelled).")
        elif p.target_frame:
            log.info(f"boxes are published in '{p.target_frame}' (tf2, at each cloud's stamp)")

    def _set_up_sweeps(self, log: Any, count: int) -> None:
        """A multi-sweep model: the buffer of earlier clouds and where the sensor's motion comes from."""
        self._sweeps: SweepBuffer | None = None
        self._last_sweeps = 1
        if count <= 1:
            return
        p = self.params
        features = list(self.det.point_features)
        self._sweeps = SweepBuffer(count, features.index(TIME_LAG) if TIME_LAG in features else None, p.sweep_max_age)
        self._motion, warning = make_sweep_motion(self, self._transforms, p.sweep_fixed_frame, p.odometry_topic,
                                                  p.transform_timeout)
        log.info(f"model {self.det.name} merges {count} sweeps (clouds older than {p.sweep_max_age:g} s are not "
                 f"merged); sensor motion: {self._motion.description}")
        if warning:
            log.warning(warning)

    def _merge_sweeps(self, msg: PointCloud2, points: np.ndarray, received_at: float) -> np.ndarray:
        """``points`` merged with the earlier clouds, in the current sensor frame (models with sweeps > 1)."""
        pose = self._motion.pose(msg.header.frame_id, msg.header.stamp)
        if pose is None:
            self.get_logger().warning(f"cloud detected without earlier sweeps: no sensor pose at its stamp "
                                      f"({self._motion.last_problem})", throttle_duration_sec=_WARN_EVERY_S)
        stamp = stamp_seconds(msg.header.stamp) or received_at  # an unstamped stream: its arrival times
        merged, self._last_sweeps = self._sweeps.merge(Sweep(points, stamp, pose))
        return merged

    def _load_detector(self) -> Any:
        from sparsekd_core.inference import load_detector  # torch is heavy: import only when a model is needed

        p = self.params
        self.get_logger().info(f"loading {p.model_source} on device={p.device} fp16={p.fp16} backend={p.backend}")
        return load_detector(p.model_source, device=p.device, fp16=p.fp16, backend=p.backend)

    def _thresholds(self, params: NodeParams) -> ScoreThresholds:
        """The detector's thresholds for ``params``, without classes the model lacks (with a warning)."""
        thresholds = ScoreThresholds(params.score_threshold,
                                     class_thresholds_for(params.class_score_thresholds, self.det.operating_thresholds))
        unknown = thresholds.unknown(self.det.class_names)
        if unknown:
            self.get_logger().warning(
                f"class_score_thresholds names {unknown}, which model {self.det.name} does not have "
                f"(classes {list(self.det.class_names)}); ignoring them"
            )
        return thresholds.restricted_to(self.det.class_names)

    def _classes_of(self, params: NodeParams, setting: str) -> tuple[str, ...]:
        """The classes a class-list setting (square_footprint, clear_overhead) names in ``params``: the checkpoint's
        own when the parameter is empty, else the named ones the model has (the others with a warning)."""
        names = getattr(params, setting)
        if names is None:
            return tuple(getattr(self.det.cfg.head.post, setting))
        unknown = [n for n in names if n not in self.det.class_names]
        if unknown:
            self.get_logger().warning(
                f"{setting} names {unknown}, which model {self.det.name} does not have "
                f"(classes {list(self.det.class_names)}); ignoring them")
        return tuple(n for n in names if n in self.det.class_names)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Run-time changes: checked as at start-up, then swapped in as one new value each (the
        worker reads ``self.params`` and the detector its thresholds once per frame)."""
        try:
            new = self.params.with_values({p.name: p.value for p in params})
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if new.tta_flip and (problem := self.det.cfg.tta_flip_problem()):  # refused before anything changes
            return SetParametersResult(successful=False, reason=f"tta_flip: {problem}")
        thresholds = self._thresholds(new)
        if thresholds != self.det.thresholds:
            self.det.thresholds = thresholds
            self.get_logger().info(f"score thresholds now {thresholds.describe()}")
            self._publish_label_info()  # LabelInfo carries the threshold
        if new.min_points != self.params.min_points:
            own = self.det.cfg.head.post.min_points  # -1: back to the checkpoint's own
            self.det.min_points = new.min_points if new.min_points >= 0 else own
            self.get_logger().info(f"boxes now need {self.det.min_points} returns")
        if new.tta_flip != self.params.tta_flip:
            own = self.det.cfg.head.post.tta_flip  # '': back to the checkpoint's own
            self.det.tta_flip = own if new.tta_flip is None else new.tta_flip
            self.get_logger().info(f"test-time flip now {'on' if self.det.tta_flip else 'off'}")
        if new.square_footprint != self.params.square_footprint:
            self.det.square_footprint = self._classes_of(new, "square_footprint")
            self.get_logger().info(f"boxes published square: {', '.join(self.det.square_footprint) or 'none'}")
        if new.clear_overhead != self.params.clear_overhead:
            self.det.clear_overhead = self._classes_of(new, "clear_overhead")
            checked = ", ".join(self.det.clear_overhead) or "none"
            self.get_logger().info(f"boxes dropped under something solid: {checked}")
        self.params = new
        return SetParametersResult(successful=True)

    def _publish_label_info(self) -> None:
        """vision_msgs/LabelInfo: class id -> name for ~/detections' class_id, and the score threshold."""
        if self.label_info_pub is not None:
            header = Header(stamp=self.get_clock().now().to_msg())
            self.label_info_pub.publish(label_info(self.det.class_names, header, self.det.thresholds.default,
                                                   self._vision))

    # ------------------------------------------------------------------ data path
    def _on_cloud(self, msg: PointCloud2) -> None:
        """Executor thread: O(1), never blocks on the model."""
        self.mailbox.put((msg, time.perf_counter()))

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self.mailbox.take(timeout=0.2)
            if item is None:
                continue
            try:
                self.process_cloud(*item)
            except Exception as exc:  # noqa: BLE001 - the node must outlive any single frame
                if self._stop.is_set() or not self.context.ok():
                    return  # shutting down: a frame cut short by the shutdown is not a detector failure
                self.stats.skipped(f"{type(exc).__name__}: {exc}", kind="error")
                self.get_logger().error(
                    f"detector failed on a cloud ({type(exc).__name__}: {exc}); skipping it",
                    throttle_duration_sec=_WARN_EVERY_S,
                )

    def _skip(self, problem: str) -> None:
        self.stats.skipped(problem)
        self.get_logger().warning(f"skipping malformed cloud: {problem}", throttle_duration_sec=_WARN_EVERY_S)

    def process_cloud(self, msg: PointCloud2, received_at: float | None = None) -> dict[str, float] | None:
        """Decode, detect and publish one cloud; returns its stage timings in seconds (None if skipped)."""
        t0 = time.perf_counter()
        received_at = t0 if received_at is None else received_at
        p = self.params
        try:
            points = model_input(msg, self.det.point_features, p.intensity_field, p.intensity_scale, p.max_range,
                                 p.min_range)
        except MalformedCloud as exc:
            self._skip(str(exc))
            return None
        if self._sweeps is not None:
            points = self._merge_sweeps(msg, points, received_at)
        model_points = self._sensor_to_model.apply_points(points) if not self._sensor_to_model.is_identity else points
        t1 = time.perf_counter()
        dets = self.det(model_points)
        t2 = time.perf_counter()
        try:  # after the model: the transform at the cloud's stamp has had the model's time to arrive
            frame, out_from_sensor = output_transform(self._transforms, p.target_frame, msg.header.frame_id,
                                                      msg.header.stamp, p.transform_timeout)
        except TransformUnavailable as exc:
            self.stats.skipped(str(exc), kind="no_transform")
            self.get_logger().warning(f"skipping cloud: {exc}", throttle_duration_sec=_WARN_EVERY_S)
            return None
        dets = (out_from_sensor @ self._model_to_sensor).apply_detections(dets)
        header = Header(stamp=msg.header.stamp, frame_id=frame)
        self.markers_pub.publish(detections_to_markers(dets, header))
        if self.detections_pub is not None:
            self.detections_pub.publish(detections_to_vision(dets, header, self._vision))
        if self.velocities_pub is not None and dets.velocities is not None:
            self.velocities_pub.publish(detections_to_velocity_cloud(dets, header))
        t3 = time.perf_counter()
        if self._ground.due():
            self._report_ground(model_points)

        timings = {"decode": t1 - t0, "detector": t2 - t1, "publish": t3 - t2, "receive_to_publish": t3 - received_at}
        for stage in ("preprocess", "inference", "postprocess"):
            if stage in self.det.last_timings:
                timings[stage] = float(self.det.last_timings[stage])
        stamp = Time.from_msg(msg.header.stamp)
        if stamp.nanoseconds > 0:
            # The node's clock: the recording's time under use_sim_time (e.g. sparsekd-replay --clock), so the
            # latency of a replayed cloud is measured against the time it was recorded in.
            latency = (self.get_clock().now() - stamp).nanoseconds * 1e-9
            if 0.0 <= latency < _PLAUSIBLE_LATENCY_S:
                timings["latency"] = latency
        self.stats.record(timings, boxes=len(dets), points=len(points))
        return timings

    def _report_ground(self, model_points: np.ndarray) -> None:
        report = self._ground.check(model_points, self.params.sensor_to_model)
        if report is None:
            self.get_logger().info("mounting check: too little ground in this cloud to estimate its height")
        elif report.ok:
            self.get_logger().info(f"mounting check: {report.text}")
        else:
            self.get_logger().warning(f"mounting check: {report.text}")

    # ------------------------------------------------------------------ reporting
    def _publish_diagnostics(self) -> None:
        values: dict[str, object] = {
            "model": self.det.name,
            "device": str(self.det.device),
            "backend": getattr(self.det, "backend", "torch"),
            "input_topic": self.cloud_sub.topic_name,
        }
        values.update(self.stats.summary(self.mailbox.put_count, self.mailbox.dropped))
        if self._sweeps is not None:
            values["sweeps_merged"] = self._last_sweeps
        problems = self.stats.problems
        if problems > self._problems_seen or (self.stats.processed == 0 and problems):
            level, message = DiagnosticStatus.WARN, f"skipped clouds: {self.stats.last_problem}"
        elif self.stats.processed == 0:
            level, message = DiagnosticStatus.STALE, f"waiting for clouds on {self.cloud_sub.topic_name}"
        else:
            latency = values.get("latency_ms_median", values.get("receive_to_publish_ms_median", float("nan")))
            level = DiagnosticStatus.OK
            message = f"{values['rate_hz']:.1f} Hz, median latency {latency:.1f} ms, {self.mailbox.dropped} dropped"
        self._problems_seen = problems
        header = Header(stamp=self.get_clock().now().to_msg())
        self.diagnostics_pub.publish(
            diagnostic_array(header, f"{self.get_name()}: lidar detector", str(self.det.device), level, message, values)
        )

    def _log_stats(self) -> None:
        self.get_logger().info(self.stats.log_line(self.mailbox.put_count, self.mailbox.dropped))

    def destroy_node(self) -> None:
        """Stop the worker before the publishers go away."""
        self._stop.set()
        self.mailbox.close()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=30.0)
        super().destroy_node()


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: description, read-only flag and, for bounded floats, the range
    (so `ros2 param describe` shows it and rclpy refuses values outside it)."""
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                     dynamic_typing=spec.dynamic_typing)
    if isinstance(spec.default, float) and spec.minimum is not None and spec.maximum is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.minimum),
                                                              to_value=float(spec.maximum), step=0.0)]
    return descriptor


def _help_text() -> str:
    lines = [
        "Parameters (set with --ros-args -p name:=value or --params-file config/detector.yaml):",
    ]
    for spec in PARAMETERS:
        default = repr(spec.default)
        lines.append(f"  {spec.name} (default {default}{'' if spec.read_only else ', settable at run time'})")
        lines.append(f"      {spec.description}")
    lines += [
        "",
        "Topics: subscribes input_topic (sensor_msgs/PointCloud2); publishes ~/markers",
        "(visualization_msgs/MarkerArray), ~/detections (vision_msgs/Detection3DArray, when installed; class_id is",
        "the class index), ~/label_info (vision_msgs/LabelInfo, transient local: index -> class name),",
        "~/velocities (sensor_msgs/PointCloud2, models with velocity: x y z vx vy class_id score per box of",
        "~/detections, in its order; Detection3D has no velocity field) and /diagnostics (stage timings, drops).",
        "Multi-sweep models (e.g. an imported nuScenes CenterPoint) merge the last clouds, moved with the sensor's",
        "motion: tf2 (sweep_fixed_frame), else odometry_topic, else a static sensor (logged once).",
        "",
        "Example: python -m sparsekd_ros.detector_node --ros-args -p model:=cp_pillar_v0.64 -p device:=cuda",
    ]
    return "\n".join(lines)


def main(args: Sequence[str] | None = None) -> int:
    """Console entry ``detector_node``: spin a DetectorNode until Ctrl-C (SIGINT) or SIGTERM.

    Exit codes: 0 after a signal, 1 when the node cannot start (bad parameter, unknown model, missing
    checkpoint) or when it stops on an error while running; each is logged under its own name.
    """
    argv = list(sys.argv if args is None else ["detector_node", *args])
    parser = argparse.ArgumentParser(
        prog="detector_node",
        description="LiDAR 3D object detector node (SparseKD-distilled CenterPoint): PointCloud2 in, boxes out.",
        epilog=_help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _, stray = parser.parse_known_args(rclpy.utilities.remove_ros_args(argv)[1:])
    if stray:  # e.g. `detector_node -p model:=x`: without --ros-args ROS ignores it and the default model would run
        parser.error(f"unrecognized arguments: {' '.join(stray)}; ROS parameters go after --ros-args, as in "
                     "`detector_node --ros-args -p model:=cp_voxel_s`")
    # rclpy's own signal handlers shut the context down at once, under a worker that may be publishing; here a
    # signal only asks the spin loop to end (stop_signal.py), and the node stops its worker before the context goes.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    log = rclpy.logging.get_logger(NODE_NAME)
    try:
        node = DetectorNode()
    except KeyboardInterrupt:  # Ctrl-C while the model loads
        rclpy.try_shutdown()
        return 0
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        # Start-up errors (bad parameter, unknown model, missing checkpoint): say so and exit non-zero.
        log.fatal(f"cannot start: {type(exc).__name__}: {exc}")
        rclpy.try_shutdown()
        return 1
    stop = StopOnSignal()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # short waits: a signal is seen within 0.1 s
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception as exc:  # noqa: BLE001 - a running node that fails says so, under its real name
        log.fatal(f"stopped by an error while running: {type(exc).__name__}: {exc}\n"
                  f"{traceback.format_exc().rstrip()}")
        return 1
    finally:
        stop.restore()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()  # the worker finishes its frame and stops while the context is still valid
        rclpy.try_shutdown()


def run() -> NoReturn:
    """The ``detector_node`` executable: :func:`main`, then exit at once.

    When main() returns, the worker has stopped, the node is destroyed and the context shut down.
    What is left is Python's finalisation of torch and its extensions, which takes 1-2 s on a small
    CPU (more under load): ``ros2 launch`` gives a node 5 s after SIGINT before it escalates to
    SIGTERM and logs an error. Output is flushed and the process ends without it.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
