"""sparsekd-detect on the real frames with an untrained checkpoint: table, JSON and PNG agree with the
Detector called directly; errors say what to do."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bundled_models import PILLAR_STUDENT_OPERATING_POINT
from sparsekd_core.checkpoint import write_untrained_checkpoint
from sparsekd_core.cli.detect import main, png_name
from sparsekd_core.inference import Detector

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
KITTI_BIN = DATA / "kitti" / "training" / "velodyne_reduced" / "000008.bin"
NUSCENES_BIN = DATA / "nuscenes" / "lidar_top.bin"
THRESHOLD = "0.05"  # random weights score about 0.1: keep some boxes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path_factory.mktemp("ckpt") / "student.pth", seed=3)


@pytest.fixture(scope="module")
def detector(checkpoint) -> Detector:
    det = Detector.from_checkpoint(checkpoint, "cpu")
    det.score_threshold = float(THRESHOLD)
    return det


def _direct(detector: Detector, path: Path, cols: int, scale: float = 1.0):
    raw = np.fromfile(path, dtype=np.float32).reshape(-1, cols)
    pts = raw[:, :4].copy()
    pts[:, 3] *= np.float32(scale)
    return detector(pts)


def test_table_rows_match_the_detector(checkpoint, detector, capsys):
    rc = main([str(KITTI_BIN), "--model", str(checkpoint), "--score-threshold", THRESHOLD, "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "UNTRAINED (random) weights" in err  # never presented as a trained model
    header, *rest = out.strip().splitlines()
    expected = _direct(detector, KITTI_BIN, 4)
    assert len(expected) > 0
    assert re.match(rf".*000008\.bin: 17238 points \(x y z intensity\), {len(expected)} boxes, \d+ ms", header)
    rows = [line.split() for line in rest[1:]]
    assert rest[0].split() == ["#", "class", "score", "x", "y", "z", "dx", "dy", "dz", "yaw"]
    assert len(rows) == len(expected)
    assert [r[1] for r in rows] == expected.names
    np.testing.assert_allclose(np.array([[float(v) for v in r[3:]] for r in rows]), expected.boxes, atol=0.006)
    np.testing.assert_allclose([float(r[2]) for r in rows], expected.scores, atol=6e-4)


def test_json_for_nuscenes_fields_scales_intensity(checkpoint, detector, capsys):
    rc = main([str(NUSCENES_BIN), str(KITTI_BIN), "--model", str(checkpoint), "--fields", "x,y,z,intensity,ring",
               "--score-threshold", THRESHOLD, "--json", "--device", "cpu"])
    out, _ = capsys.readouterr()
    # --fields names 5 columns: the KITTI file (17238 * 4 values) does not split into 5 -> skipped, exit 1
    assert rc == 1
    doc = json.loads(out)
    assert doc["untrained"] is True and doc["class_names"] == ["Car", "Pedestrian", "Cyclist"]
    assert doc["point_features"] == ["x", "y", "z", "intensity"] and "gravity centre" in doc["box_convention"]
    (nus,) = doc["files"]
    assert nus["points"] == 34688 and nus["fields"] == ["x", "y", "z", "intensity", "ring"]
    assert nus["intensity_scale"] == pytest.approx(1 / 255) and nus["missing_features"] == []
    expected = _direct(detector, NUSCENES_BIN, 5, scale=1 / 255)
    assert len(nus["detections"]) == len(expected) > 0
    np.testing.assert_allclose([d["box"] for d in nus["detections"]], expected.boxes, atol=1e-3)
    assert [d["class"] for d in nus["detections"]] == expected.names
    assert set(nus["latency_ms"]) == {"preprocess", "inference", "postprocess"}


def test_png_per_file(checkpoint, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "a.bin").write_bytes(KITTI_BIN.read_bytes())
    np.save(frames / "a.npy", np.fromfile(KITTI_BIN, np.float32).reshape(-1, 4)[:, :3].copy())
    rc = main([str(frames), "--model", str(checkpoint), "--png", str(tmp_path / "bev"), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0 and "wrote 2 bird's-eye view(s)" in err
    assert "note: the file has no intensity; fed as zeros" in out  # the xyz-only .npy
    pngs = sorted(p.name for p in (tmp_path / "bev").iterdir())
    assert pngs == ["a.png", "a_npy.png"]
    for name in pngs:
        with Image.open(tmp_path / "bev" / name) as img:
            assert img.size == (720, 720) and np.asarray(img).std() > 5


def test_png_names_do_not_collide():
    used: set[str] = set()
    assert [png_name(Path(p), used) for p in ("d1/x.bin", "x.pcd", "d2/x.bin", "d3/x.bin")] == \
        ["x.png", "x_pcd.png", "x_bin.png", "x_bin_2.png"]


def test_errors_name_the_problem_and_the_fix(checkpoint, tmp_path, capsys, monkeypatch):
    assert main([str(KITTI_BIN), "--model", "cp_voxel_s_nonexistent"]) == 2
    assert "neither a checkpoint file nor a bundled model" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.bin"), "--model", str(checkpoint)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(KITTI_BIN), "--model", str(checkpoint), "--intensity-scale", "bright"]) == 2
    assert "--intensity-scale must be auto or a number" in capsys.readouterr().err
    assert main([str(KITTI_BIN), "--model", str(checkpoint), "--fields", "intensity,x,y,z"]) == 2
    assert "start with x,y,z" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main([str(KITTI_BIN), "--model", str(checkpoint), "--show"]) == 2
    assert "--show needs a display" in capsys.readouterr().err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for phrase in (".pcd and .ply", "--fields", "divides by 255", "examples:", "gravity centre"):
        assert phrase in text


def test_an_anchor_head_checkpoint_gives_the_detectors_rows(tmp_path, capsys):
    """A PointPillars student through sparsekd-detect: the same rows as its Detector called directly."""
    ckpt = write_untrained_checkpoint("pointpillar_s_sim", tmp_path / "pp.pth", seed=3)
    rc = main([str(KITTI_BIN), "--model", str(ckpt), "--score-threshold", "0.0", "--device", "cpu"])
    out, _ = capsys.readouterr()
    assert rc == 0
    det = Detector.from_checkpoint(ckpt, "cpu")
    det.score_threshold = 0.0
    expected = _direct(det, KITTI_BIN, 4)
    rows = [line.split() for line in out.strip().splitlines()[2:]]
    assert len(expected) > 0 and len(rows) == len(expected)
    assert [r[1] for r in rows] == expected.names
    np.testing.assert_allclose(np.array([[float(v) for v in r[3:]] for r in rows]), expected.boxes, atol=0.006)


def test_bundled_model_detects_at_its_operating_point_unless_told(capsys):
    """cp_pillar_v0.64 records a score threshold per class (its operating point): sparsekd-detect applies them, as the
    node does."""
    base = [str(KITTI_BIN), "--model", "cp_pillar_v0.64", "--device", "cpu", "--json", "--score-threshold", "0.3"]
    docs = {}
    for setting in ("", "none"):
        assert main(base + ["--class-score-thresholds", setting]) == 0
        docs[setting] = json.loads(capsys.readouterr().out)
    assert docs[""]["class_score_thresholds"] == PILLAR_STUDENT_OPERATING_POINT
    assert docs["none"]["class_score_thresholds"] == {}
    kept = docs[""]["files"][0]["detections"]
    assert kept and all(d["score"] >= docs[""]["class_score_thresholds"][d["class"]] for d in kept)
    assert len(docs["none"]["files"][0]["detections"]) > len(kept)  # the operating point is a higher bar here
    assert main(base + ["--class-score-thresholds", "Car=0.5"]) == 2
    assert "ClassName:threshold" in capsys.readouterr().err
