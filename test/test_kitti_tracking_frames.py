"""scripts/kitti_tracking_frames.py: sweeps of a labelled KITTI tracking sequence as object-benchmark frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from file_module import load_file_module
from sparsekd_core.data import kitti_format as kf

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kitti_tracking_frames.py"

# Two lines of frame 0 and one of frame 10 as the tracking benchmark writes them (frame, track id, 15 object fields)
TRACKING_LABELS = """\
0 -1 DontCare -1 -1 -10.000000 356.40 195.81 374.10 216.65 -1000.0 -1000.0 -1000.0 -10.0 -1.0 -1.0 -1.0
0 3 Cyclist 0 0 -1.936 737.61 161.53 931.11 374.00 1.739 0.824 1.786 1.640 1.457 6.016 -1.673
10 3 Cyclist 1 0 -1.900 740.00 160.00 935.00 374.00 1.739 0.824 1.786 1.700 1.457 5.500 -1.650
"""


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "kitti_tracking_frames")


@pytest.fixture
def sequence(tmp_path):
    """A tracking sequence of sweeps 0-11 (each a different cloud), its labels, calibration and two images."""
    calib = kf.Calibration(P0=np.arange(12), P1=np.arange(12) + 1, P2=np.arange(12) * 0.5, P3=np.ones(12),
                           R0_rect=np.eye(3) * 0.9, Tr_velo_to_cam=np.arange(12) / 7.0, Tr_imu_to_velo=np.eye(3, 4))
    kf.write_calib(tmp_path / "object_calib.txt", calib)
    tracking_calib = (tmp_path / "object_calib.txt").read_text().replace("R0_rect:", "R_rect").replace(
        "Tr_velo_to_cam: ", "Tr_velo_cam\t").replace("Tr_imu_to_velo:", "Tr_imu_velo")  # a tab read as a space
    (tmp_path / "0004.txt").write_text(tracking_calib)
    (tmp_path / "label_0004.txt").write_text(TRACKING_LABELS)
    for number in range(12):
        points = np.full((3, 4), number, np.float32)
        kf.write_points(tmp_path / "velodyne" / f"{number:06d}.bin", points)
    (tmp_path / "image").mkdir()
    for number in (0, 5):
        (tmp_path / "image" / f"{number:06d}.png").write_bytes(b"png %d" % number)
    return tmp_path, calib


def test_every_fifth_sweep_becomes_an_object_frame_with_its_labels_and_calibration(script, sequence, capsys):
    root, calib = sequence
    out = root / "out"
    assert script.main(["--sequence", "0004", "--label", str(root / "label_0004.txt"), "--calib",
                        str(root / "0004.txt"), "--velodyne", str(root / "velodyne"), "--image", str(root / "image"),
                        "--out", str(out)]) == 0
    assert "3 frames of sequence 0004" in capsys.readouterr().out
    assert sorted(p.stem for p in (out / "velodyne").glob("*.bin")) == ["0004_000000", "0004_000005", "0004_000010"]
    np.testing.assert_array_equal(kf.read_points(out / "velodyne" / "0004_000010.bin"), np.full((3, 4), 10))
    first = kf.read_label(out / "label_2" / "0004_000000.txt")
    assert [o.type for o in first] == ["DontCare", "Cyclist"]
    np.testing.assert_allclose(first[1].location, [1.64, 1.457, 6.016])
    assert first[1].rotation_y == pytest.approx(-1.673) and first[1].truncated == 0.0
    assert kf.read_label(out / "label_2" / "0004_000005.txt") == []  # no objects in frame 5: an empty file
    assert kf.read_label(out / "label_2" / "0004_000010.txt")[0].truncated == 1.0
    # the tracking file's colon-less R_rect / Tr_velo_cam read as the object keys, and are written so
    assert "\nR_rect 9" in (root / "0004.txt").read_text()
    again = kf.read_calib(out / "calib" / "0004_000005.txt")
    assert "R0_rect:" in (out / "calib" / "0004_000005.txt").read_text()
    for name in ("P2", "R0_rect", "Tr_velo_to_cam"):
        np.testing.assert_allclose(getattr(again, name), getattr(calib, name), rtol=1e-11)
    assert (out / "image_2" / "0004_000005.png").read_bytes() == b"png 5"
    assert not (out / "image_2" / "0004_000010.png").exists()  # none to copy


def test_frames_are_limited_and_bad_labels_named(script, sequence):
    root, _ = sequence
    args = ["--sequence", "0004", "--label", str(root / "label_0004.txt"), "--calib", str(root / "0004.txt"),
            "--velodyne", str(root / "velodyne")]
    assert script.main(args + ["--every", "2", "--max-frames", "2", "--out", str(root / "two")]) == 0
    assert sorted(p.stem for p in (root / "two" / "velodyne").glob("*.bin")) == ["0004_000000", "0004_000002"]
    (root / "object_label.txt").write_text("Car 0 0 0 0 0 1 1 1.5 1.6 3.9 1 1 10 0\n")
    with pytest.raises(SystemExit, match="object_label.txt:1 is not a KITTI tracking label line"):
        script.main(args[:2] + ["--label", str(root / "object_label.txt")] + args[4:] + ["--out", str(root / "x")])
    with pytest.raises(SystemExit, match="is not a folder"):
        script.main(args[:6] + ["--velodyne", str(root / "nowhere"), "--out", str(root / "y")])
