"""``python -m sparsekd_ros.demo`` (``make demo``): the steps, their output, the exit code."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sparsekd_core.detections import Detections
from sparsekd_ros.parameters import SPECS

DESCRIPTION = """\
Run the whole system end to end on this machine, with no sensor, no dataset and no GPU:

  1. simulate a 10 Hz drive with a Velodyne HDL-64E (sparsekd-sim --sequence) with ground truth;
  2. start the real detector_node (its own process) with the student, replay the drive and the
     bundled real sample frames to it as PointCloud2 at 10 Hz, and print a line per answered frame;
  3. score the student's KITTI-style AP on the drive, beside its teacher's (recorded on this same
     drive when the student was bundled, or run here);
  4. write OUT/: a bird's-eye view per frame (predicted boxes solid, true boxes dashed), a GIF of
     the drive, and a rosbag2 (mcap) of the clouds, markers and diagnostics for RViz or Foxglove.

The student is the bundled distilled checkpoint of --model. Until one is bundled, the demo runs an
UNTRAINED stand-in of the same architecture, says so in capitals, and still runs every step."""

EPILOG = """\
output (OUT, default demo_out/; a re-run replaces it):
  OUT/bev/drive_NNNN.png, OUT/bev/sample_*.png   bird's-eye views
  OUT/drive.gif, OUT/drive.mp4                  the drive at 10 Hz
  OUT/bag/                                      rosbag2 (mcap): /points, /sparsekd_detector/markers,
                                                /diagnostics; open it in Foxglove, or ros2 bag play it and
                                                rviz2 -d rviz/sparsekd.rviz
  OUT/summary.json                              every figure printed, and the run's timings
  OUT/drive/kitti/                              the simulated drive (KITTI layout, labels, calib)
  OUT/logs/                                     detector_node.log, demo_client.log, frames.json
  OUT/models/                                   the untrained stand-in, when one was needed

examples:
  make demo                                     # = python -m sparsekd_ros.demo
  python -m sparsekd_ros.demo --frames 30 --out /tmp/demo
  python -m sparsekd_ros.demo --model runs/my_student/last.pth --teacher runs/teacher/last.pth
  python -m sparsekd_ros.demo --domain-id 0    # share a DDS domain with RViz to watch it live
exit status: 0 when every step worked, 1 when one failed (the summary says which), 2 for bad arguments."""

#: The demo's cloud topic: private, never a robot's /points.
TOPIC = "/sparsekd_demo/points"
GIF_PX = 480


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sparsekd_ros.demo", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--frames", type=int, default=100, help="frames of the simulated drive (default 100 = 10 s)")
    p.add_argument("--model", default=SPECS["model"].default,
                   help=f"student: zoo name with a bundled checkpoint, or a .pth (default {SPECS['model'].default}, "
                        "the node's)")
    p.add_argument("--teacher", default="auto",
                   help="teacher to compare AP with: auto (the teacher's AP recorded in the student's checkpoint "
                        "on this same drive, else the student's zoo teacher run here if bundled), none, or a zoo name "
                        "or a .pth to run (default auto)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the simulated drive (default 1: a street the bundled students, trained on seed 0 "
                        "scenes, have not seen)")
    p.add_argument("--rate-hz", type=float, default=10.0, help="replay rate (default 10, the sensor's)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="minimum score of the boxes the node publishes and the pictures show, for classes without "
                        "their own (default: the node's, 0.3; each class of a model that records an operating point "
                        "uses that, as the node does). AP is scored on every box above the checkpoint's own "
                        "threshold, as sparsekd-eval")
    p.add_argument("--device", default="cpu",
                   help="device of the node and the offline runs: cpu (default, the demo's promise), auto or cuda")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS_DOMAIN_ID for the node and the replay (default: a private one, localhost only)")
    p.add_argument("--no-samples", action="store_true", help="replay only the drive, not the bundled real frames")
    p.add_argument("--eval-stride", type=int, default=None, metavar="N",
                   help="score AP on every N-th drive frame (default: 1, or 2 when a teacher runs here too, which "
                        "halves its cost); pictures always cover every frame")
    p.add_argument("--workers", type=int, default=2,
                   help="processes for simulation, offline detection and pictures (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


@dataclass
class Run:
    """What the steps produce, for the summary."""

    out: Path
    started: float = field(default_factory=time.perf_counter)
    failures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    _step_start: float = 0.0
    _step: str = ""

    def step(self, number: int, total: int, text: str) -> None:
        self.end_step()
        self._step, self._step_start = text.split(":")[0], time.perf_counter()
        print(f"\n[{number}/{total}] {text}", flush=True)

    def end_step(self) -> None:
        if self._step:
            self.timings[self._step] = round(time.perf_counter() - self._step_start, 2)
            self._step = ""

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr, flush=True)


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "n/a"


def _manifest(path: Path, drive, samples, det) -> list[tuple[str, Path]]:
    """frames.json for the ROS client: the drive at 10 Hz, then each sample once the node is free."""
    frames = [{"name": f"drive/{i:04d}", "path": str(p)} for i, p in enumerate(drive.points)]
    frames += [{"name": s.name, "path": str(s.path), "after_answer": True} for s in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"features": list(det.point_features), "class_names": list(det.class_names),
                                "frame_id": "lidar", "frames": frames}, indent=1))
    return [(f["name"], Path(f["path"])) for f in frames]


def _replay(run: Run, node, drive, samples, det, args, env) -> tuple[list, dict]:
    """Publish every frame through the node; print a line per answer; returns (records, done event)."""
    from sparsekd_ros.demo.processes import client_events
    from sparsekd_ros.demo.stats import FrameRecord, dropped_line, frame_line

    frames = _manifest(run.out / "logs" / "frames.json", drive, samples, det)
    records = [FrameRecord(i, name) for i, (name, _) in enumerate(frames)]
    done: dict[str, Any] = {}
    last_reported = -1
    client_error = None

    def report_drops(upto: int) -> None:
        nonlocal last_reported
        gap = [r.index for r in records[last_reported + 1: upto] if not r.answered and r.sent_at is not None]
        if gap:
            print(dropped_line(gap[0], gap[-1]), flush=True)
        last_reported = max(last_reported, upto - 1)

    events = client_events(run.out / "logs" / "frames.json", TOPIC, node.markers_topic, env,
                           run.out / "logs" / "demo_client.log", rate_hz=args.rate_hz, bag=run.out / "bag")
    for ev in events:
        kind = ev["event"]
        if kind == "ready":
            print(f"node and replay connected: publishing {ev['frames']} frames at {args.rate_hz:g} Hz on {TOPIC}",
                  flush=True)
        elif kind == "sent":
            records[ev["frame"]].sent_at = float(ev["t"])
        elif kind == "answer":
            r = records[ev["frame"]]
            r.latency_ms, r.answered_at = float(ev["latency_ms"]), float(ev["t"])
            scores = [float("nan") if s is None else s for s in ev["scores"]]
            r.detections = Detections(ev["boxes"], scores, ev["labels"], det.class_names)
            report_drops(r.index)
            print(frame_line(r, len(records), det.class_names), flush=True)
            last_reported = r.index
        elif kind == "done":
            done = ev
        elif kind == "error":
            client_error = ev["message"]
            run.fail(f"the ROS replay client failed: {client_error} (see {run.out / 'logs' / 'demo_client.log'})")
        elif kind == "exit" and ev["code"] != 0 and client_error is None:
            run.fail(f"the ROS replay client exited with code {ev['code']} "
                     f"(see {run.out / 'logs' / 'demo_client.log'})")
    if client_error is None:
        report_drops(len(records))
    else:  # frames the client could no longer hear: not the node's drops
        print(f"frames after {last_reported} not reported: the client failed", flush=True)
    return records, done


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 2 or args.rate_hz <= 0 or args.workers < 1 or (args.eval_stride or 1) < 1:
        print("python -m sparsekd_ros.demo: --frames must be >= 2, --rate-hz > 0, --workers and --eval-stride >= 1",
              file=sys.stderr)
        return 2
    from sparsekd_core.checkpoint import CheckpointError
    from sparsekd_ros.demo.outputs import prepare_out_dir
    from sparsekd_core.inference import resolve_device

    import importlib.util

    if importlib.util.find_spec("rclpy") is None:
        print("python -m sparsekd_ros.demo: the demo runs the ROS 2 node, but rclpy is not importable: "
              "source a ROS 2 install (Humble/Jazzy/Kilted) or pip install -r requirements-ros.txt "
              "(make setup does)", file=sys.stderr)
        return 2
    try:
        resolve_device(args.device)
        out = prepare_out_dir(args.out)
    except ValueError as exc:
        print(f"python -m sparsekd_ros.demo: {exc}", file=sys.stderr)
        return 2
    run = Run(out)
    print(f"sparsekd demo -> {out}/ (load average {_load()}, {os.cpu_count()} CPUs)", flush=True)
    try:
        return _main(run, args)
    except CheckpointError as exc:
        print(f"python -m sparsekd_ros.demo: {exc}", file=sys.stderr)
        return 2


def _main(run: Run, args: argparse.Namespace) -> int:
    import numpy as np

    from sparsekd_ros.demo.drive import simulate_drive
    from sparsekd_ros.demo.evaluate import agreement, detect_files, score_drive, scores_table
    from sparsekd_ros.demo.bundle import drive_key
    from sparsekd_ros.demo.models import choose_teacher, resolve_student, untrained_banner
    from sparsekd_ros.demo.outputs import BevJob, render_jobs, write_gif, write_mp4, write_summary
    from sparsekd_ros.demo.processes import NodeProcess, dds_profile, ros_env
    from sparsekd_ros.demo.samples import sample_frames
    from sparsekd_ros.demo.stats import ReplayStats
    from sparsekd_core.inference import Detector
    from sparsekd_core.thresholds import ScoreThresholds, class_thresholds_for
    from sparsekd_core.viz.bev import BevView
    from sparsekd_ros.parameters import SPECS

    out, total = run.out, 5
    run.step(1, total, "models: the student for the node, the teacher for comparison")
    student = resolve_student(args.model, out / "models")
    if student.untrained:
        print(untrained_banner(student), flush=True)
    det = Detector.from_checkpoint(student.path, args.device)
    det.name = student.label
    published = ScoreThresholds(  # what the node publishes at its defaults: also what the pictures show
        float(args.score_threshold if args.score_threshold is not None else SPECS["score_threshold"].default),
        class_thresholds_for(None, det.operating_thresholds))
    # AP: every box the checkpoint keeps, as sparsekd-eval scores it (and every box the node may publish)
    threshold = min(det.score_threshold, published.default)
    det.score_threshold = threshold
    teacher, teacher_scores, teacher_note = choose_teacher(
        args.teacher, student, det.meta, drive_key(args.frames, args.seed, args.eval_stride or 1, threshold))
    print(f"student: {student.describe()}; classes {list(det.class_names)}, device {det.device}; the node publishes "
          f"boxes scoring at least {published.describe()}, AP counts every box from {threshold:g}")
    if det.meta.get("provenance"):
        print(f"weights: {det.meta['provenance']}")
    if teacher_scores is not None:
        print(f"teacher: {teacher_scores.model}: AP recorded on this same drive when the student was bundled, not "
              "run here (--teacher NAME_OR_PATH runs it)")
    else:
        print(f"teacher: {teacher.describe() if teacher else teacher_note}")

    profile = dds_profile()
    if profile is None:
        print("warning: config/fastdds_large_data.xml not found: large clouds may not reach the node", file=sys.stderr)
    env = ros_env(args.domain_id, profile)
    print(f"starting detector_node (ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, Fast DDS profile {profile})", flush=True)
    node = NodeProcess(student.path, TOPIC, published.default, env, out / "logs" / "detector_node.log",
                       device=args.device)
    records, done, node_rc = [], {}, None
    try:
        run.step(2, total, f"simulation: a {args.frames}-frame 10 Hz drive, HDL-64E (sparsekd-sim --sequence)")
        drive = simulate_drive(out / "drive", args.frames, args.seed, progress=not args.quiet, workers=args.workers)
        labelled = sum(len(drive.gt(i)[0]) for i in range(len(drive)))
        print(f"{len(drive)} frames, {labelled} labelled objects in the camera's view, {drive.sim_seconds:.1f} s")
        samples = [] if args.no_samples else sample_frames()

        run.step(3, total, "ROS: detector_node (own process) <- PointCloud2 at 10 Hz -> markers, /diagnostics")
        print("waiting for detector_node to load the model and warm up ...", flush=True)
        if not node.wait_ready(180.0):
            tail = "\n".join(node.log().splitlines()[-15:])
            run.fail(f"detector_node did not start (log {node.log_path}):\n{tail}")
        else:
            records, done = _replay(run, node, drive, samples, det, args, env)
    finally:
        node_rc = node.stop()
    if node_rc not in (0, None) and not run.failures:
        run.fail(f"detector_node exited with code {node_rc} (see {node.log_path})")

    n_drive = len(drive)
    drive_records = records[:n_drive]
    stats = ReplayStats.from_records(drive_records, done.get("diagnostics"))
    if records and stats.frames_answered == 0:
        run.fail("the node answered no frame of the drive (see logs/detector_node.log and logs/demo_client.log)")

    run.step(4, total, "offline: the same checkpoint on every frame (sparsekd_core.inference), KITTI AP")
    lib = detect_files(det, drive.points, f"student {student.label}", progress=not args.quiet, workers=args.workers)
    lib_samples = detect_files(det, [s.path for s in samples], "student, samples", progress=not args.quiet)
    stride = args.eval_stride or (2 if teacher is not None else 1)
    scored = list(range(0, n_drive, stride))
    infos = [drive.infos[i] for i in scored]
    scores = score_drive(infos, [lib[i] for i in scored], det.class_names, student.label, det.point_cloud_range)
    if teacher is not None:
        tdet = Detector.from_checkpoint(teacher.path, args.device)
        tdet.name, tdet.score_threshold = teacher.label, threshold
        tlib = detect_files(tdet, [drive.points[i] for i in scored], f"teacher {teacher.label}",
                            progress=not args.quiet, workers=args.workers)
        teacher_scores = score_drive(infos, tlib, tdet.class_names, teacher.label, tdet.point_cloud_range)
    print(f"scored on {len(scored)} of {n_drive} drive frames" + (f" (one in {stride})" if stride > 1 else ""))
    shown = [d.select(published.passing(d.names, d.scores)) for d in lib]  # what the node publishes, offline
    shown_samples = [d.select(published.passing(d.names, d.scores)) for d in lib_samples]
    pairs = [(r.detections, (shown + shown_samples)[r.index]) for r in records if r.answered]
    agree = agreement(pairs) if pairs else None
    print(scores_table(scores, teacher_scores, teacher_note))
    if agree is not None:
        print(agree.line())
        if agree.fraction < 0.9:
            run.fail(f"the node's boxes differ from the library's on the same frames ({agree.line()}): the ROS "
                     f"path changes what the model sees")

    run.step(5, total, "pictures and bag: bird's-eye views, GIF, rosbag2")
    view_t = astuple(BevView.from_range(det.point_cloud_range))
    tag = f"{student.label}{' UNTRAINED' if student.untrained else ''}"
    jobs = []
    for i, path in enumerate(drive.points):
        gt_boxes, gt_names = drive.gt(i)
        r = records[i] if i < len(records) else None
        node_note = f"node {r.latency_ms:.0f} ms" if r is not None and r.answered else "node: skipped"
        jobs.append(BevJob(out / "bev" / f"drive_{i:04d}.png", path, shown[i], gt_boxes, tuple(gt_names), view_t,
                           f"drive {i + 1}/{n_drive} | {tag} | {len(shown[i])} boxes | {node_note}", GIF_PX))
    for s, d in zip(samples, shown_samples):
        jobs.append(BevJob(out / "bev" / f"sample_{s.name.replace('/', '_')}.png", s.path, d, s.gt_boxes,
                           tuple(s.gt_names), view_t, f"{s.name} (real) | {tag} | {len(d)} boxes"))
    small = render_jobs(jobs, workers=args.workers, progress=not args.quiet)
    drive_frames = [f for f in small[:n_drive] if f is not None]
    gif = write_gif(out / "drive.gif", drive_frames, drive.rate_hz)
    mp4 = write_mp4(out / "drive.mp4", drive_frames, drive.rate_hz)
    bag_dir = out / "bag"
    run.end_step()

    # ------------------------------------------------------------------ checks and summary
    pngs = sorted((out / "bev").glob("*.png"))
    if len(pngs) != len(jobs):
        run.fail(f"{len(pngs)} pictures written, {len(jobs)} expected")
    if records and not (bag_dir / "metadata.yaml").is_file():
        run.fail(f"no rosbag2 written at {bag_dir}")
    wall = time.perf_counter() - run.started
    sample_lines = []
    for s, r in zip(samples, records[n_drive:]):
        answer = f"{len(r.detections)} boxes, {r.latency_ms:.0f} ms" if r.answered else "no answer"
        sample_lines.append(f"  {s.name}: {answer}")

    print("\n" + "=" * 92)
    print(f"SUMMARY  student {student.describe()}")
    for line in stats.lines():
        print(line)
    if sample_lines:
        print("real sample frames through the node:")
        print("\n".join(sample_lines))
    if agree is not None:
        print(agree.line())
    print(scores_table(scores, teacher_scores, teacher_note))
    bag_counts = done.get("bag_counts", {})
    print(f"wrote {len(pngs)} PNGs to {out / 'bev'}, {gif}, {mp4}, rosbag2 {bag_dir} "
          f"({', '.join(f'{k} {v}' for k, v in bag_counts.items()) or 'empty'})")
    print(f"wall time {wall:.0f} s (steps: {', '.join(f'{k} {v:.0f} s' for k, v in run.timings.items())}); "
          f"load average {_load()}")
    if student.untrained:
        print(untrained_banner(student))
    run.summary = {
        "student": student.__dict__, "teacher": teacher.__dict__ if teacher else None, "teacher_note": teacher_note,
        "score_threshold": threshold, "published_thresholds": {"default": published.default,
                                                               "per_class": dict(published.per_class)},
        "frames": {"drive": n_drive, "samples": len(samples)},
        "replay": stats.to_dict(),
        "samples": [{"name": s.name, "answered": r.answered, "latency_ms": r.latency_ms,
                     "boxes": None if r.detections is None else len(r.detections)}
                    for s, r in zip(samples, records[n_drive:])],
        "per_frame": [{"name": r.name, "answered": r.answered, "latency_ms": r.latency_ms,
                       "counts": None if r.detections is None else r.detections.count_per_class()} for r in records],
        "agreement": agree.__dict__ if agree else None,
        "ap": {"student": scores.to_dict(), "teacher": teacher_scores.to_dict() if teacher_scores else None,
               "frames_scored": len(scored), "stride": stride},
        "outputs": {"pngs": len(pngs), "gif": gif, "mp4": mp4, "bag": bag_dir, "bag_counts": bag_counts},
        "node_exit_code": node_rc, "failures": run.failures, "timings_s": run.timings, "wall_s": wall,
        "load_average": _load(), "boxes_offline_mean": float(np.mean([len(d) for d in lib])) if lib else 0.0,
    }
    write_summary(out / "summary.json", run.summary)
    if run.failures:
        print(f"\nDEMO FAILED ({len(run.failures)} problem(s)):", file=sys.stderr)
        for f in run.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("demo finished: every step worked")
    return 0
