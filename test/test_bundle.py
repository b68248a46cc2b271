"""Bundling a trained student: fp16 weights that load by path, a provenance sentence, the run's settings, and the
teacher's AP on the demo drive recorded so the demo can show it without shipping the teacher."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch

from sparsekd_core.checkpoint import CheckpointError, load_model, read_checkpoint, write_untrained_checkpoint
from sparsekd_ros.demo import bundle as bundle_mod
from sparsekd_ros.demo.bundle import bundle, drive_key
from sparsekd_ros.demo.models import recorded_teacher_scores
from sparsekd_core.data.sim.version import STREETS_VERSION
from sparsekd_core.inference import load_detector, resolve_checkpoint

STUDENT, TEACHER = "cp_voxel_xxs_sim", "cp_voxel_sim"


@pytest.fixture()
def run_dir(tmp_path):
    run = tmp_path / "run"
    write_untrained_checkpoint(STUDENT, run / "final.pth", seed=1)
    teacher = write_untrained_checkpoint(TEACHER, tmp_path / "teacher.pth", seed=2)
    (run / "summary.json").write_text(json.dumps({
        "model": STUDENT, "kd": "sparsekd", "teacher": str(teacher), "data": "data/sim/kitti", "train_frames": 480,
        "epochs": 2, "batch_size": 2, "steps": 480, "seed": 0, "device": "cpu", "train_time_s": 812.0,
        "metrics": {"Car/3d/moderate": 41.5}, "final_metrics": {"result": "large, dropped"},
        "config": {"unrelated": "dropped"}}))
    return run, teacher


def test_bundle_writes_fp16_weights_with_provenance_that_load(run_dir, tmp_path):
    run, _ = run_dir
    out = bundle(run, "cp_voxel_xxs", out=tmp_path / "cp_voxel_xxs.pth")
    payload = read_checkpoint(out)
    weights = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert weights and all(v.dtype == torch.float16 for v in weights)
    assert out.stat().st_size < (run / "final.pth").stat().st_size * 0.5  # fp32 -> fp16 halves it, deflate trims
    with zipfile.ZipFile(out) as z:
        assert all(e.compress_type == zipfile.ZIP_DEFLATED for e in z.infolist())
    meta = payload["meta"]
    assert meta["bundled_as"] == "cp_voxel_xxs"
    assert "simulated" in meta["provenance"] and "sparsekd" in meta["provenance"] and TEACHER in meta["provenance"]
    assert "KITTI or Waymo" in meta["provenance"]
    assert meta["training"]["metrics"]["Car/3d/moderate"] == 41.5
    assert "config" not in meta["training"] and "final_metrics" not in meta["training"]
    assert out.stat().st_mode & 0o777 == 0o644
    assert "demo_teacher" not in meta
    # the fp16 copy is the same model, to fp16 rounding
    (original, _), (copy, _) = load_model(run / "final.pth"), load_model(out)
    for (name, a), b in zip(original.state_dict().items(), copy.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=name)
    assert load_detector(out).meta["provenance"] == meta["provenance"]
    assert load_detector(out).operating_thresholds == {}  # recorded afterwards, on validation frames


def test_a_soup_is_bundled_with_the_training_of_its_run_and_says_what_it_was_averaged_with(run_dir, tmp_path):
    """sparsekd-soup of a distillation run and the weights it started from: no run of its own, so the bundle takes
    its training and teacher from the ingredient that is a run, and its provenance says it was averaged."""
    from sparsekd_core.cli.soup import main as soup_main

    run, teacher = run_dir
    start = write_untrained_checkpoint(STUDENT, tmp_path / "start.pth", seed=3)
    soup = tmp_path / "soup" / "soup.pth"
    assert soup_main([str(start), str(run / "final.pth"), "--out", str(soup), "--bn-batches", "0"]) == 0
    meta = read_checkpoint(bundle(soup, "cp_voxel_xxs", out=tmp_path / "b.pth"))["meta"]
    assert "sparsekd" in meta["provenance"] and TEACHER in meta["provenance"]
    assert f"averaged 1:1 with {start} (a model soup)" in meta["provenance"]
    assert meta["training"]["train_frames"] == 480 and meta["soup_of"] == [str(start), str(run / "final.pth")]
    assert meta["kd"] == "sparsekd" and meta["teacher"] == str(teacher)


def test_bundle_records_the_teacher_on_the_demo_drive_for_matching_runs_only(run_dir, tmp_path, monkeypatch):
    run, teacher = run_dir
    monkeypatch.setattr(bundle_mod, "DEMO_DRIVE", {"frames": 2, "seed": 0, "eval_stride": 1})
    out = bundle(run, "cp_voxel_xxs", out=tmp_path / "b.pth", teacher=teacher)
    recorded = read_checkpoint(out)["meta"]["demo_teacher"]
    threshold = load_model(out)[0].cfg.head.post.score_threshold
    assert recorded["model"] == TEACHER and recorded["drive"] == drive_key(2, 0, 1, threshold)
    assert recorded["scores"]["frames"] == 2 and set(recorded["scores"]["ap_r40_moderate"]) == {
        "Car", "Pedestrian", "Cyclist"}
    lookup = recorded_teacher_scores(read_checkpoint(out)["meta"])
    scores = lookup(drive_key(2, 0, 1, threshold))
    assert scores is not None and scores.model == f"{TEACHER} (recorded)" and scores.frames == 2
    assert lookup(drive_key(100, 0, 1, threshold)) is None  # another drive: not comparable, not shown
    assert lookup(drive_key(2, 0, 1, 0.5)) is None  # another threshold: not comparable either
    assert lookup(drive_key(2, 0, 1, threshold, streets_version=STREETS_VERSION + 1)) is None  # another simulator


def test_a_recorded_teacher_drive_without_a_simulator_version_counts_as_version_1(run_dir, tmp_path, monkeypatch):
    """Checkpoints bundled before drive keys had a simulator version (the first cp_voxel_s, until session 27)
    recorded their teacher's demo drive without one: it was simulator version 1's."""
    run, teacher = run_dir
    monkeypatch.setattr(bundle_mod, "DEMO_DRIVE", {"frames": 2, "seed": 0, "eval_stride": 1})
    meta = read_checkpoint(bundle(run, "cp_voxel_xxs", out=tmp_path / "b.pth", teacher=teacher))["meta"]
    drive = meta["demo_teacher"]["drive"]
    assert drive["streets_version"] == STREETS_VERSION  # what a bundle records today
    del drive["streets_version"]  # as the old bundles wrote it
    key = [drive["frames"], drive["seed"], drive["eval_stride"], drive["score_threshold"]]
    lookup = recorded_teacher_scores(meta)
    assert lookup(drive_key(*key, streets_version=1)) is not None
    assert lookup(drive_key(*key, streets_version=2)) is None


def test_the_shipped_students_recorded_their_teacher_on_todays_streets():
    for name in ("cp_voxel_s", "cp_pillar_v0.64", "cp_pillar_s"):
        drive = read_checkpoint(resolve_checkpoint(name))["meta"]["demo_teacher"]["drive"]
        assert drive["streets_version"] == STREETS_VERSION, name


def test_bundle_refuses_unknown_names_and_unfinished_runs(run_dir, tmp_path):
    run, _ = run_dir
    with pytest.raises(ValueError, match="not a zoo model"):
        bundle(run, "cp_voxel_tiny", out=tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="final.pth"):
        bundle(tmp_path / "empty_run", "cp_voxel_xxs", out=tmp_path / "x.pth")
    assert bundle_mod.main([str(tmp_path / "empty_run"), "--as", "cp_voxel_xxs", "--out", str(tmp_path / "x.pth")]) == 2
