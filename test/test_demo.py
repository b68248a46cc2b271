"""The demo's pieces (models, drive, marker decoding, statistics, AP, outputs) and one end-to-end run
through the real detector_node in subprocesses on a few frames."""
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from std_msgs.msg import Header

from sparsekd_core import inference
from sparsekd_core.checkpoint import CheckpointError, write_untrained_checkpoint
from sparsekd_core.data.sim import DriveScene, get_preset
from sparsekd_ros.demo.drive import simulate_drive
from sparsekd_ros.demo.evaluate import agreement, detect_files, score_drive, scores_table
from sparsekd_ros.demo.bundle import DEMO_DRIVE, drive_key
from sparsekd_ros.demo.models import (OTHER_DRIVE_NOTE, choose_teacher, resolve_student, resolve_teacher,
                                       stand_in_architecture, teacher_of, untrained_banner)
from sparsekd_ros.demo.outputs import (OUT_MARKER, BevJob, prepare_out_dir, render_jobs, write_gif, write_mp4,
                                       write_summary)
from sparsekd_ros.demo.processes import dds_profile, ros_env
from sparsekd_ros.demo.samples import sample_frames
from sparsekd_ros.demo.stats import FrameRecord, ReplayStats, dropped_line, frame_line
from sparsekd_core.detections import Detections
from sparsekd_ros.demo.client import markers_to_boxes
from sparsekd_ros.messages import detections_to_markers

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("Car", "Pedestrian", "Cyclist")


# ------------------------------------------------------------------------------------------ models
def test_student_without_bundle_is_a_loud_untrained_stand_in(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "BUNDLED_DIR", tmp_path / "bundle")  # nothing bundled
    student = resolve_student("cp_voxel_s", tmp_path / "models")
    assert student.untrained and student.source == "untrained stand-in"
    assert student.architecture == "cp_voxel_s_sim360"
    assert student.path == tmp_path / "models" / "cp_voxel_s_UNTRAINED.pth"
    assert student.path.is_file()
    banner = untrained_banner(student)
    assert "UNTRAINED STAND-IN" in banner and "RANDOM weights" in banner and "cp_voxel_s.pth" in banner
    teacher, why = resolve_teacher("auto", student)
    assert teacher is None and "cp_voxel_sim360 is bundled" in why  # a teacher is never faked
    with pytest.raises(CheckpointError):
        resolve_student("no_such_model", tmp_path)


def test_bundled_checkpoints_are_found_by_zoo_name(tmp_path, monkeypatch):
    bundle = tmp_path / "checkpoints"
    write_untrained_checkpoint("cp_pillar_v0.64_sim360", bundle / "cp_pillar_v0.64.pth")  # as shipped
    write_untrained_checkpoint("cp_pillar_sim360", bundle / "cp_pillar_sim360.pth")
    monkeypatch.setattr(inference, "BUNDLED_DIR", bundle)
    student = resolve_student("cp_pillar_v0.64", tmp_path / "models")
    assert student.source == "bundled" and student.architecture == "cp_pillar_v0.64_sim360"
    assert student.untrained  # the file's meta says so: the demo still announces it
    assert not (tmp_path / "models").exists()  # no stand-in written
    teacher, _ = resolve_teacher("auto", student)
    assert teacher is not None and teacher.name == "cp_pillar_sim360" and teacher.architecture == "cp_pillar_sim360"
    assert resolve_teacher("none", student) == (None, "no teacher asked for (--teacher none)")
    by_path = resolve_student(str(bundle / "cp_pillar_sim360.pth"), tmp_path)
    assert by_path.source == "bundled" and by_path.architecture == "cp_pillar_sim360"


def test_auto_takes_the_teacher_ap_recorded_on_this_drive_and_runs_a_teacher_only_without_one():
    """The default demo runs no teacher: each shipped student recorded its teacher's AP on the default drive at the
    threshold the demo scores at (their own 0.1, under the node's 0.3), the figure a run would print."""
    pillar = resolve_student("cp_pillar_s", Path("unused"))
    student = inference.load_detector("cp_pillar_s")
    meta = student.meta
    assert student.score_threshold == 0.1
    default = drive_key(DEMO_DRIVE["frames"], DEMO_DRIVE["seed"], 1, 0.1)
    teacher, recorded, note = choose_teacher("auto", pillar, meta, default)
    assert teacher is None and note == ""
    assert recorded.model == "cp_pillar_sim360 (recorded)" and recorded.frames == DEMO_DRIVE["frames"]
    assert recorded.ap["Car"]["bev"] == meta["demo_teacher"]["scores"]["ap_r40_moderate"]["Car"]["bev"]
    # another drive (here every second frame scored): the bundled teacher runs instead
    teacher, recorded, _ = choose_teacher("auto", pillar, meta, drive_key(DEMO_DRIVE["frames"], DEMO_DRIVE["seed"],
                                                                          2, 0.1))
    assert recorded is None and teacher.name == "cp_pillar_sim360" and teacher.source == "bundled"
    # a teacher asked for by name always runs
    teacher, recorded, _ = choose_teacher("cp_pillar_sim360", pillar, meta, default)
    assert recorded is None and teacher.name == "cp_pillar_sim360"
    assert choose_teacher("none", pillar, meta, default) == (None, None, "no teacher asked for (--teacher none)")
    # cp_voxel_s's teacher is not shipped: its record or nothing, and the note says why nothing
    voxel = resolve_student("cp_voxel_s", Path("unused"))
    vmeta = inference.load_detector("cp_voxel_s").meta
    _, recorded, _ = choose_teacher("auto", voxel, vmeta, default)
    assert recorded.model == "cp_voxel_sim360 (recorded)"
    assert choose_teacher("auto", voxel, vmeta, drive_key(30, 7, 1, 0.1)) == (None, None, OTHER_DRIVE_NOTE)


def test_zoo_relations():
    assert stand_in_architecture("cp_voxel_s") == "cp_voxel_s_sim360"  # what the bundled one is trained as
    assert stand_in_architecture("cp_voxel_s_sim") == "cp_voxel_s_sim"
    assert stand_in_architecture("cp_voxel_xxs") == "cp_voxel_xxs_sim"  # no 360-degree variant: the 40 m one
    assert stand_in_architecture("cp_voxel_xs") == "cp_voxel_xs"  # no sim variant: itself
    assert teacher_of("cp_voxel_s_sim") == "cp_voxel_sim" and teacher_of("kitti_cp_voxel_s") == "kitti_cp_voxel"
    assert teacher_of("cp_pillar_v0.64") == "cp_pillar" and teacher_of("cp_voxel") is None
    assert teacher_of("cp_pillar_v0.64_sim360") == "cp_pillar_sim360"
    assert teacher_of("cp_voxel_s_sim360") == "cp_voxel_sim360"
    assert teacher_of("cp_voxel_sim360") is None
    # a student outside the paper's table: narrowed in width on its teacher's grid
    assert stand_in_architecture("cp_pillar_s") == "cp_pillar_s_sim360"
    assert teacher_of("cp_pillar_s") == "cp_pillar" and teacher_of("cp_pillar_s_sim360") == "cp_pillar_sim360"


# ------------------------------------------------------------------------------------------ data
def test_drive_frames_carry_the_simulated_truth(tmp_path):
    drive = simulate_drive(tmp_path / "drive", frames=3, seed=5, progress=False, workers=1)
    assert len(drive) == 3 and drive.rate_hz == 10.0 and [p.name for p in drive.points] == \
        ["000000.bin", "000001.bin", "000002.bin"]
    scene = DriveScene(get_preset("hdl64"), 5, 0, 3)
    for i in range(3):
        boxes, names = drive.gt(i)
        assert len(boxes) > 0 and set(names) <= {"Car", "Van", "Truck", "Pedestrian", "Cyclist"}
        truth = scene.frame(i).boxes
        # every label is one of the simulated road users (camera view only), to label precision
        nearest = np.abs(boxes[:, None, :6] - truth[None, :, :6]).max(axis=2).min(axis=1)
        assert nearest.max() < 0.02
        assert np.fromfile(drive.points[i], np.float32).size % 4 == 0
    # the ego drives forward: a parked object moves backwards in the sensor frame between frames
    assert not np.allclose(drive.gt(0)[0][:, 0].mean(), drive.gt(2)[0][:, 0].mean())


def test_bundled_sample_frames_with_their_labels():
    kitti, nus, waymo = sample_frames()
    assert kitti.path.is_file() and len(kitti.gt_boxes) == 6 and set(kitti.gt_names) == {"Car"}
    assert np.all(kitti.gt_boxes[:, 0] > 0)  # in front of the car, LiDAR frame
    assert len(nus.gt_boxes) == 69 and "car" in set(nus.gt_names)
    assert len(waymo.gt_boxes) == 0 and np.load(waymo.path).shape == (198130, 3)
    assert (kitti.path.parents[2] / ".." / "README.md").resolve().is_file()  # provenance beside them


# ------------------------------------------------------------------------------------------ ROS glue
def test_markers_decode_back_to_the_boxes():
    rng = np.random.default_rng(0)
    boxes = np.c_[rng.uniform(-50, 50, (30, 3)), rng.uniform(0.4, 6, (30, 3)), rng.uniform(-3.1, 3.1, 30)]
    dets = Detections(boxes, rng.uniform(0, 1, 30), rng.integers(0, 3, 30), CLASSES)
    got, scores, labels = markers_to_boxes(detections_to_markers(dets, Header(frame_id="lidar")), CLASSES)
    order = np.argsort(dets.labels, kind="stable")  # markers group boxes by class, keeping their order
    np.testing.assert_allclose(got, dets.boxes[order], atol=1e-5)
    np.testing.assert_allclose(scores, dets.scores[order], atol=0.005)
    np.testing.assert_array_equal(labels, dets.labels[order])
    empty = markers_to_boxes(detections_to_markers(Detections.empty(CLASSES), Header()), CLASSES)
    assert empty[0].shape == (0, 7) and len(empty[1]) == 0


def test_client_says_its_spin_died_instead_of_counting_drops(monkeypatch):
    """A markers callback that fails ends the client's spin; waiting for answers then raises SpinFailed
    (main() turns it into an 'error' event and exit code 4) instead of timing out as a dropped frame."""
    from geometry_msgs.msg import Point
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import Marker, MarkerArray

    from sparsekd_ros.demo.client import DemoClient, Frame
    from sparsekd_ros.pointcloud2 import points_to_cloud
    from sparsekd_ros.spin import SpinFailed

    monkeypatch.setenv("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    client = DemoClient("/spin_test/points", "/spin_test/markers", CLASSES)
    try:
        frame = Frame("f0", points_to_cloud(np.zeros((10, 4), np.float32), header=Header(frame_id="lidar")))
        client.publish([frame], rate_hz=100.0)
        pub = client.node.create_publisher(MarkerArray, "/spin_test/markers",
                                           QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        # An answer to the frame whose LINE_LIST holds 5 points, not 24 per box: decoding it raises.
        bad = MarkerArray(markers=[Marker(header=Header(stamp=frame.cloud.header.stamp, frame_id="lidar"),
                                          type=Marker.LINE_LIST, action=Marker.ADD, points=[Point()] * 5)])
        with pytest.raises(SpinFailed, match="the demo client's spin thread stopped: ValueError"):
            for _ in range(100):
                pub.publish(bad)
                client.wait_for_answer(0, 0.1)
        assert 0 not in client.answered
    finally:
        client.close()


def test_process_environment(tmp_path):
    profile = dds_profile()
    assert profile == REPO / "config" / "fastdds_large_data.xml" and "segment_size" in profile.read_text()
    env = ros_env(None, profile)
    assert 100 <= int(env["ROS_DOMAIN_ID"]) < 200 and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert str(profile) in (env.get("FASTDDS_DEFAULT_PROFILES_FILE", ""), env.get("FASTRTPS_DEFAULT_PROFILES_FILE", ""))
    assert ros_env(7, None)["ROS_DOMAIN_ID"] == "7"


# ------------------------------------------------------------------------------------------ statistics
def test_replay_statistics_add_up():
    records = []
    for i in range(10):
        r = FrameRecord(i, f"drive/{i:04d}", sent_at=100.0 + 0.1 * i)
        if i % 3 == 0:  # frames 0, 3, 6, 9 answered
            r.latency_ms, r.answered_at = 200.0 + 10 * i, 100.0 + 0.1 * i + 0.2 + 0.01 * i
            r.detections = Detections(np.zeros((i, 7)), np.ones(i), np.zeros(i), CLASSES)
        records.append(r)
    records.append(FrameRecord(10, "never sent"))
    s = ReplayStats.from_records(records, {"frames_processed": "4", "dropped_stale": "6"})
    assert (s.frames_sent, s.frames_answered, s.dropped) == (10, 4, 6)
    assert s.latency_ms_median == pytest.approx(245.0)  # of 200, 230, 260, 290
    assert s.latency_ms_p95 == pytest.approx(285.5)
    assert s.offered_rate_hz == pytest.approx(10.0)  # 9 intervals in 0.9 s
    assert s.answered_rate_hz == pytest.approx(4 / 1.19)  # last answer 1.19 s after the first publish
    text = "\n".join(s.lines())
    assert "answered 4, dropped 6 (60%)" in text and "dropped_stale 6" in text
    assert frame_line(records[3], 11, CLASSES) == \
        "[ 4/11] drive/0003             Car  3  Pedestrian  0  Cyclist  0   latency    230 ms"
    assert "frames 2-3: no answer" in dropped_line(1, 2) and "frame 5: no answer" in dropped_line(4, 4)
    assert s.to_dict()["dropped"] == 6


# ------------------------------------------------------------------------------------------ scores
def _kitti_infos():
    from sparsekd_core.data.kitti_infos import kitti_frame_info

    return [kitti_frame_info(sample_frames()[0].path.parents[2], "000008", "train")]


def test_offline_detection_in_two_processes_gives_the_same_boxes_in_order(tmp_path):
    """The demo's offline pass shares the frames among worker processes on the CPU; nothing may change but time
    (and the last bits of floats, as the workers run on fewer threads)."""
    from sparsekd_core.inference import Detector

    det = Detector.from_checkpoint(inference.resolve_checkpoint("cp_pillar_v0.64"), "cpu")
    det.score_threshold = 0.3
    kitti = np.fromfile(sample_frames()[0].path, np.float32).reshape(-1, 4)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(16):  # the pool starts at 8 frames a worker; frames of unequal content and cost
        keep = rng.random(len(kitti)) < (1.0 if i % 4 == 0 else 0.2 + 0.04 * i)
        paths.append(tmp_path / f"{i:06d}.bin")
        kitti[keep].tofile(paths[-1])
    one = detect_files(det, paths, "one", progress=False)
    assert len({len(d.boxes) for d in one}) > 3 and all(len(d.boxes) for d in one)  # frames tell apart
    # twice: workers that shared the detector's memory corrupted about every other run's frames
    two = detect_files(det, paths, "two", progress=False, workers=2) + detect_files(det, paths, "", False, 2)
    assert [len(d.boxes) for d in two] == [len(d.boxes) for d in one] * 2
    assert not any(t.is_shared() for t in det.model.state_dict().values())  # each worker has a copy of its own
    for a, b in zip(one * 2, two):
        nearest = np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).max(-1).argmin(1)
        np.testing.assert_allclose(b.boxes[nearest], a.boxes, atol=1e-3)
        np.testing.assert_allclose(b.scores[nearest], a.scores, atol=1e-4)
        assert list(np.asarray(b.names)[nearest]) == list(a.names)


def test_ap_of_perfect_and_of_no_predictions():
    infos = _kitti_infos()
    annos = infos[0].annos
    keep = annos.names == "Car"
    perfect = [Detections(annos.boxes_lidar[keep], np.linspace(0.9, 0.5, keep.sum()), np.zeros(keep.sum()), CLASSES)]
    good = score_drive(infos, perfect, CLASSES, "oracle")
    n = good.num_gt["Car"]
    assert n > 0 and good.ap["Car"]["3d"] == pytest.approx(100 * (n - 1) / 40, abs=0.01)  # the R40 cap for n < 41
    assert good.recall["Car"]["0.7"] == pytest.approx(100.0)
    none = score_drive(infos, [Detections.empty(CLASSES)], CLASSES, "blind")
    assert none.ap["Car"]["bev"] == 0.0 and none.recall["Car"]["0.5"] == 0.0
    table = scores_table(none, good)
    assert "student blind, teacher oracle" in table and "teacher BEV" in table
    assert "teacher: not bundled" in scores_table(none, None, "not bundled")
    # a model that sees only x < 3 m is not charged for the cars beyond it (000008 has none that close)
    short = score_drive(infos, [Detections.empty(CLASSES)], CLASSES, "short", (0.0, -20.0, -3.0, 3.0, 20.0, 1.0))
    assert short.num_gt["Car"] == 0 and n > 0


def test_agreement_counts_alike_boxes():
    rng = np.random.default_rng(1)
    lib = Detections(np.c_[rng.uniform(0, 40, (8, 3)), np.full((8, 3), 2.0), np.zeros(8)], rng.uniform(0, 1, 8),
                     np.arange(8) % 3, CLASSES)
    node = Detections(lib.boxes.copy(), np.round(lib.scores, 2), lib.labels, CLASSES)
    assert agreement([(node, lib)]).fraction == 1.0
    node.boxes[:2, 0] += 0.5  # two boxes moved half a metre
    a = agreement([(node, lib), (Detections.empty(CLASSES), Detections.empty(CLASSES))])
    assert (a.frames, a.boxes_node, a.boxes_matched, a.same_count) == (2, 8, 6, 2)


# ------------------------------------------------------------------------------------------ outputs
def test_out_dir_is_replaced_only_when_it_is_the_demos(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="did not write"):
        prepare_out_dir(foreign)
    assert (foreign / "thesis.tex").is_file()
    out = prepare_out_dir(tmp_path / "demo_out")
    (out / "old.png").write_bytes(b"x")
    prepare_out_dir(out)
    assert sorted(p.name for p in out.iterdir()) == [OUT_MARKER]


def test_pictures_gif_mp4_and_summary(tmp_path):
    sample = sample_frames()[0]
    dets = Detections(sample.gt_boxes[:2], [0.9, 0.8], [0, 0], CLASSES)
    jobs = [BevJob(tmp_path / "bev" / f"f{i}.png", sample.path, dets if i else None, sample.gt_boxes,
                   tuple(sample.gt_names), (-2.0, 72.0, -40.0, 40.0), f"frame {i}", gif_px=120) for i in range(3)]
    small = render_jobs(jobs, workers=1, progress=False)
    assert [s.shape for s in small] == [(120, 120, 3)] * 3
    for job in jobs:
        with Image.open(job.png) as img:
            assert img.size == (720, 720)
    gif = write_gif(tmp_path / "d.gif", small, 10.0)
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 3 and frames.shape[1:3] == (120, 120)
    mp4 = write_mp4(tmp_path / "d.mp4", small, 10.0)
    movie = np.stack(list(iio.imiter(mp4)))
    assert movie.shape == (3, 120, 120, 3)
    # lossy, but the picture is the same picture: compare the mean colour per frame
    assert np.abs(movie.reshape(3, -1, 3).mean(1) - np.stack(small).reshape(3, -1, 3).mean(1)).max() < 8
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", [np.zeros((121, 120, 3), np.uint8)], 10.0)
    summary = write_summary(tmp_path / "s.json", {"a": float("nan"), "b": np.float32(1.5), "p": tmp_path})
    assert json.loads(summary.read_text()) == {"a": None, "b": 1.5, "p": str(tmp_path)}
    with pytest.raises(ValueError, match="no frames"):
        write_gif(tmp_path / "e.gif", [], 10.0)


# ------------------------------------------------------------------------------------------ end to end
def test_demo_end_to_end_through_the_real_node(tmp_path):
    """A 4-frame drive and the 3 sample frames through detector_node in its own process (< 90 s)."""
    model = write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path / "student.pth", seed=2)
    out = tmp_path / "demo_out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "sparsekd_ros.demo", "--frames", "4", "--out", str(out),
                           "--model", str(model), "--teacher", str(model), "--quiet", "--workers", "1",
                           "--score-threshold", "0.1"],
                          capture_output=True, text=True, timeout=150, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "UNTRAINED" in text and "SUMMARY" in text and "demo finished: every step worked" in text
    summary = json.loads((out / "summary.json").read_text())
    replay = summary["replay"]
    assert replay["frames_sent"] == 4 and replay["frames_answered"] + replay["dropped"] == 4
    assert 1 <= replay["frames_answered"] <= 4
    assert replay["latency_ms_median"] > 0 and replay["latency_ms_p95"] >= replay["latency_ms_median"]
    assert len(summary["per_frame"]) == 7
    answered = [f for f in summary["per_frame"] if f["answered"]]
    assert len(answered) == replay["frames_answered"] + sum(s["answered"] for s in summary["samples"])
    # one printed line per answered frame
    assert sum(line.startswith("[") and "latency" in line for line in text.splitlines()) == len(answered)
    assert summary["samples"][-1]["answered"]  # the last frame is the newest: never dropped by the node
    assert summary["agreement"]["boxes_matched"] == summary["agreement"]["boxes_node"]  # same model, same boxes
    assert summary["published_thresholds"] == {"default": 0.1, "per_class": {}}  # no operating point recorded
    ap = summary["ap"]
    assert set(ap["student"]["ap_r40_moderate"]) == {"Car", "Pedestrian", "Cyclist"} and ap["teacher"] is not None
    assert ap["student"]["ap_r40_moderate"] == ap["teacher"]["ap_r40_moderate"]  # the teacher here is the student
    pngs = sorted(p.name for p in (out / "bev").glob("*.png"))
    assert len(pngs) == 7 and pngs[0] == "drive_0000.png" and "sample_kitti_000008.png" in pngs
    assert iio.imread(out / "drive.gif", index=None).shape[0] == 4
    assert len(list(iio.imiter(out / "drive.mp4"))) == 4
    counts = summary["outputs"]["bag_counts"]
    assert counts["/points"] == 7 and counts["/sparsekd_detector/markers"] == len(answered)  # RViz config's names
    assert (out / "bag" / "metadata.yaml").is_file() and summary["failures"] == []
    assert summary["node_exit_code"] == 0
