"""sparsekd-bench's command line: a zoo row with real figures, and clear errors for bad arguments."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsekd_core.cli.bench import main
from sparsekd_core.config import load_model_config
from sparsekd_core.models.detector import build_detector
from tiny_models import TINY_VOXEL

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO / "sparsekd_core/assets/sample_data/kitti/training/velodyne_reduced/000008.bin"


@pytest.mark.parametrize("name", ["cp_pillar_v0.64_sim", "pointpillar_s_sim"])  # CenterPoint and anchor heads
def test_one_model_gives_params_macs_and_latency(capsys, name):
    code = main(["--models", name, "--frame", str(FRAME), "--device", "cpu", "--runs", "1",
                 "--warmup", "0", "--fp16", "--json"])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["zoo"]
    assert row["model"] == name and row["device"] == "cpu"
    assert row["fp16"] is False  # fp16 is a CUDA-only setting: ignored on a CPU, and the row says so
    assert row["points"] == len(np.fromfile(FRAME, np.float32)) // 4
    model = build_detector(load_model_config(name))
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert 0.5 < row["gflops"] < 20 and row["latency_ms_median"] > 0


@pytest.mark.parametrize("pairs", ["cp_voxel", "cp_voxel:", ",", "a:b:c"])
def test_bad_train_pairs_say_the_format(pairs, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--skip-zoo", "--train", "--train-pairs", pairs])
    assert e.value.code == 2
    assert "teacher:student pairs" in capsys.readouterr().err


def test_the_default_frame_ships_with_the_package(tmp_path, monkeypatch, capsys):
    # `make bench` from a clone without ../shared, run from anywhere: the packaged 198,130-point sweep
    monkeypatch.chdir(tmp_path)
    assert main(["--models", "cp_pillar_v0.64_sim", "--device", "cpu", "--runs", "1", "--warmup", "0", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["zoo"]
    assert row["points"] == 198_130 and row["latency_ms_median"] > 0


def test_skip_zoo_needs_no_frame(capsys):
    # --skip-zoo --train/--data on a machine without ../shared: the zoo's default frame is not needed
    assert main(["--skip-zoo", "--frame", "/nonexistent/frame.npy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}


def test_backend_comparison_times_every_stage_on_each_backend(capsys):
    code = main(["--models", "cp_pillar_v0.64_sim", "--frame", str(FRAME), "--device", "cpu", "--runs", "1",
                 "--warmup", "0", "--backend", "onnxruntime,tensorrt", "--breakdown", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["backends"]
    assert [r["backend"] for r in rows] == ["torch", "onnxruntime", "tensorrt"]  # torch first, as the baseline
    torch_row, ort_row, trt_row = rows
    for r in (torch_row, ort_row):
        assert set(r["stage_ms_median"]) == {"prepare", "voxelise", "sparse", "dense", "decode", "nms", "to_host"}
        assert r["stage_ms_median"]["dense"] > 0 and r["total_ms_median"] > 0 and r["voxels"] > 0
        assert set(r["dense_ms_by_module"]) >= {"vfe", "backbone2d", "head"}
    assert torch_row["speedup_total"] == 1.0
    assert ort_row["speedup_dense"] == torch_row["stage_ms_median"]["dense"] / ort_row["stage_ms_median"]["dense"]
    if not torch.cuda.is_available():
        assert "CUDA GPU" in trt_row["error"]  # a backend this machine cannot run: a row saying why


def test_tta_flip_times_the_same_model_with_two_views(capsys):
    code = main(["--models", "cp_pillar_v0.64_sim", "--frame", str(FRAME), "--device", "cpu", "--runs", "2",
                 "--warmup", "1", "--tta-flip"])
    assert code == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| cp_pillar_v0.64_sim |") and line.endswith("x |"))
    plain, flipped, ratio = (float(cell.rstrip("x")) for cell in row.strip("| ").split(" | ")[1:])
    assert flipped > plain > 0  # two clouds through the network cost more than one
    assert ratio == pytest.approx(flipped / plain, rel=0.02)
    with pytest.raises(SystemExit) as e:
        main(["--tta-flip", "--backend", "onnxruntime"])
    assert e.value.code == 2 and "--tta-flip" in capsys.readouterr().err


def test_unknown_backend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--backend", "openvino"])
    assert e.value.code == 2 and "openvino" in capsys.readouterr().err


def test_frames_are_read_as_the_other_tools_read_them(shared_data):
    """A nuScenes sweep (5 float32 columns, intensity 0..255) and a KITTI .bin give the model's point features
    by name, intensity on the models' 0..1 scale, one row per point."""
    from sparsekd_core.bench.model_bench import load_frame

    nus = shared_data / "nuscenes" / "lidar_top.bin"
    raw = np.fromfile(nus, np.float32).reshape(-1, 5)
    pts = load_frame(nus, ["x", "y", "z", "intensity", "time_lag"])
    assert pts.shape == (len(raw), 5)
    np.testing.assert_array_equal(pts[:, :3], raw[:, :3])
    assert raw[:, 3].max() > 1 and 0 < pts[:, 3].max() <= 1  # 8-bit intensity scaled, as sparsekd-detect does
    assert not pts[:, 4].any()  # one sweep: time lag 0
    kitti = load_frame(FRAME, ["x", "y", "z", "intensity", "elongation"])  # a Waymo model on a KITTI frame
    np.testing.assert_array_equal(kitti[:, :4], np.fromfile(FRAME, np.float32).reshape(-1, 4))
    assert not kitti[:, 4].any()  # the file has no elongation: zeros, as the node does


def test_train_precision_both_times_each_step_in_fp32_and_amp(tmp_path, capsys):
    from sparsekd_core.train.precision import cpu_has_native_bf16

    tiny = tmp_path / "tiny.yaml"  # a small voxel model, so the six timed configurations take seconds
    tiny.write_text(TINY_VOXEL)
    pair = f"{tiny}->{tiny}"
    code = main(["--skip-zoo", "--train", "--train-pairs", f"{tiny}:{tiny}", "--train-steps", "1",
                 "--train-precision", "both", "--device", "cpu", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["train"]) == {f"{pair} fp32", f"{pair} amp"}
    fp32, amp = report["train"][f"{pair} fp32"], report["train"][f"{pair} amp"]
    assert {fp32[k]["precision"] for k in ("teacher", "student", "student_kd")} == {"fp32"}
    assert {amp[k]["precision"] for k in ("teacher", "student", "student_kd")} == {
        "bf16" if cpu_has_native_bf16() else "fp32"}
    speedup = report["train_precision_speedup"][pair]
    for k in ("teacher", "student", "student_kd"):
        assert speedup[k] == pytest.approx(fp32[k]["step_s_median"] / amp[k]["step_s_median"])
