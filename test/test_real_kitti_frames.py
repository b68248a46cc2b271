"""scripts/real_kitti_frames.py: real KITTI frames from several clones, minus those already seen, as one val split."""
from __future__ import annotations

from pathlib import Path

import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "real_kitti_frames.py"


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "real_kitti_frames")


def kitti_tree(root: Path, frames: dict[str, bytes], image: bool = True, calib: bool = True) -> Path:
    for frame, points in frames.items():
        label = b"Car 0 0 0 0 0 1 1 1.5 1.6 3.9 1 1 10 0\n"
        for sub, ext, content in (("velodyne", ".bin", points), ("label_2", ".txt", label),
                                  ("calib", ".txt", b"P2: 1\n"), ("image_2", ".png", b"png")):
            if (sub == "image_2" and not image) or (sub == "calib" and not calib):
                continue
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub / f"{frame}{ext}").write_bytes(content)
    return root


def test_frames_already_seen_are_left_out_and_the_rest_named_by_source(script, tmp_path, capsys):
    shared = kitti_tree(tmp_path / "shared" / "training", {"avod_000000": b"A", "avod_000008": b"B"})
    avod = kitti_tree(tmp_path / "avod", {"000000": b"A", "000006": b"C", "000008": b"B"})
    tiny = kitti_tree(tmp_path / "tiny" / "training", {"000006": b"C", "000010": b"D", "000011": b"E"}, image=False)
    kitti_tree(tmp_path / "tiny" / "training", {"000012": b"F"}, calib=False)
    out = tmp_path / "out"
    assert script.main(["--out", str(out), "--exclude", str(tmp_path / "shared"), "--source", f"avod={avod}",
                        "--source", f"tiny={tmp_path / 'tiny'}"]) == 0
    names = (out / "ImageSets" / "val.txt").read_text().split()
    # 000000 and 000008 are the shared sweeps, tiny's 000006 is avod's, tiny's 000012 has no calibration
    assert names == ["avod_000006", "tiny_000010", "tiny_000011"]
    assert (out / "training" / "velodyne" / "tiny_000010.bin").read_bytes() == b"D"
    assert (out / "training" / "image_2" / "avod_000006.png").is_file()
    assert not (out / "training" / "image_2" / "tiny_000010.png").exists()  # none to copy
    assert "skipped tiny 000012: no calib/000012.txt" in capsys.readouterr().err


def test_bad_arguments_say_what_to_give(script, tmp_path):
    with pytest.raises(SystemExit, match="holds no velodyne"):
        script.gather(tmp_path / "out", [("x", tmp_path)], [])
    (tmp_path / "exists").mkdir()
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path / "exists"), "--source", f"x={tmp_path}"])
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path / "new"), "--source", str(tmp_path)])
