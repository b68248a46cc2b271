"""sparsekd-data waymo-convert: tfrecords written here with Waymo's own protos -> the processed layout -> training.

The frames hold a few range-image pixels each, so every expected point is derived by hand from the
range-image geometry Waymo documents (and the official package implements):
  - column c of W has azimuth ((W - c - 0.5) / W * 2 - 1) * pi minus the extrinsic's yaw;
  - row r takes the r-th of the beam inclinations in descending order (a LiDAR without a list gets
    min + (k + 0.5) / H * (max - min), k = 0..H-1, then reversed);
  - the sensor point r (cos i cos a, cos i sin a, sin i) goes to the vehicle frame by the extrinsic;
  - TOP only: each pixel has its own vehicle pose (the car moves during a sweep), so the point is taken to
    the world by that pixel's pose and back by the frame's pose.
The Waymo package lives in its own virtualenv (`make waymo-env`); without it these tests skip, except the
one that checks what the command says then.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsekd_core.cli.data import main as data_main
from sparsekd_core.data import waymo_env
from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.dataset import DetectionDataset
from sparsekd_core.data.infos import load_points, load_split

WRITER = Path(__file__).with_name("waymo_tfrecord_writer.py")
TOP, FRONT = 1, 2
SEG_TRAIN = "segment-1111_with_camera_labels"
SEG_VAL = "segment-2222_with_camera_labels"


def _waymo_python() -> str | None:
    if os.environ.get(waymo_env.ENV_VAR):  # asked for explicitly (make test-waymo): a broken one must fail
        return waymo_env.find_waymo_python()
    try:
        return waymo_env.find_waymo_python()
    except FileNotFoundError:
        return None


WAYMO_PYTHON = _waymo_python()
needs_waymo = pytest.mark.skipif(WAYMO_PYTHON is None, reason="no Python with waymo-open-dataset: `make waymo-env`")


def transform(yaw: float, t: tuple[float, float, float]) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    m[:3, 3] = t
    return m


FRAME_POSE = transform(0.3, (100.0, 50.0, 3.0))
TOP_EXTRINSIC = transform(0.0, (1.4, 0.0, 2.2))
FRONT_EXTRINSIC = transform(0.2, (4.0, 0.1, 0.8))
TOP_INCLINATIONS = [-0.15, -0.05, 0.05, 0.15]  # ascending, as calibrations store them
FRONT_RANGE = (-0.3, 0.1)
MOVED_PIXEL = (0, 1)  # this TOP pixel was taken 0.5 m (world x) later in the sweep


def range_image(h: int, w: int, pixels: dict) -> np.ndarray:
    """(H, W, 4) range intensity elongation NLZ; pixels {(row, col): (range, intensity, elongation, nlz)}."""
    image = np.zeros((h, w, 4), np.float32)
    for (row, col), values in pixels.items():
        image[row, col] = values
    return image


def top_pixel_pose() -> np.ndarray:
    pose = np.zeros((4, 8, 6), np.float32)
    pose[..., 2] = 0.3
    pose[..., 3:] = FRAME_POSE[:3, 3]
    pose[MOVED_PIXEL + (3,)] += 0.5
    return pose


def frame_spec(top: list[dict], front: list[dict], labels: list[dict], timestamp: int) -> dict:
    return {
        "timestamp": timestamp, "pose": FRAME_POSE.tolist(), "labels": labels,
        "lidars": [
            {"name": TOP, "extrinsic": TOP_EXTRINSIC.tolist(), "inclination_range": [-0.15, 0.15],
             "beam_inclinations": TOP_INCLINATIONS, "returns": [range_image(4, 8, p).tolist() for p in top],
             "pixel_pose": top_pixel_pose().tolist()},
            {"name": FRONT, "extrinsic": FRONT_EXTRINSIC.tolist(), "inclination_range": list(FRONT_RANGE),
             "returns": [range_image(2, 4, p).tolist() for p in front]},
        ],
    }


LABELS = [
    {"type": 1, "box": [10.0, 2.0, 0.9, 4.5, 2.0, 1.6, 0.1], "id": "veh", "difficulty": 0, "tracking_difficulty": 0,
     "num_points": 120},
    {"type": 2, "box": [6.0, -3.0, 0.9, 0.8, 0.8, 1.8, -1.2], "id": "ped", "difficulty": 0, "tracking_difficulty": 1,
     "num_points": 4},
    {"type": 0, "box": [20.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], "id": "unk", "difficulty": 0, "tracking_difficulty": 0,
     "num_points": 50},
    {"type": 3, "box": [15.0, 6.0, 2.5, 0.2, 0.8, 0.8, 0.0], "id": "sign", "difficulty": 0, "tracking_difficulty": 0,
     "num_points": 9},
    {"type": 4, "box": [-8.0, 4.0, 0.8, 1.8, 0.7, 1.7, 2.0], "id": "cyc", "difficulty": 2, "tracking_difficulty": 2,
     "num_points": 30},
]
# Frame 0: three TOP first-return pixels (one in a no-label zone), one second return, one FRONT pixel.
TOP_R1 = {(0, 1): (12.5, 0.8, 0.1, -1), (1, 4): (30.0, 2.5, 0.0, -1), (3, 6): (7.0, 0.3, 0.2, 1)}
TOP_R2 = {(1, 4): (31.5, 0.4, 0.6, -1)}
FRONT_R1 = {(0, 2): (5.0, 0.5, 0.05, -1)}
SEGMENTS = {
    ("training", SEG_TRAIN): [frame_spec([TOP_R1, TOP_R2], [FRONT_R1, {}], LABELS, 1_000_000),
                              frame_spec([{(2, 0): (20.0, 1.0, 0.0, -1)}, {}], [{}, {}], LABELS[:2], 1_100_000)],
    ("validation", SEG_VAL): [frame_spec([{(2, 3): (9.0, 0.7, 0.1, -1)}, {}], [{}, {}], LABELS[4:], 2_000_000)],
}


def expected_xyz(pixels: dict, w: int, h: int, extrinsic: np.ndarray, inclinations: list[float] | None,
                 pixel_poses: np.ndarray | None = None) -> np.ndarray:
    """Vehicle-frame points of ``pixels`` in row-major order (the derivation in the module docstring)."""
    if inclinations is None:
        lo, hi = FRONT_RANGE
        inclinations = [lo + (k + 0.5) / h * (hi - lo) for k in range(h)]
    rows_incl = inclinations[::-1]
    out = []
    for (row, col) in sorted(pixels):
        r = pixels[(row, col)][0]
        az = ((w - col - 0.5) / w * 2 - 1) * np.pi - np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
        inc = rows_incl[row]
        p = extrinsic @ np.array([r * np.cos(inc) * np.cos(az), r * np.cos(inc) * np.sin(az), r * np.sin(inc), 1.0])
        if pixel_poses is not None:
            roll, pitch, yaw, *t = pixel_poses[row, col]
            p = np.linalg.inv(FRAME_POSE) @ transform(yaw, tuple(t)) @ p
        out.append(p[:3])
    return np.array(out).reshape(-1, 3)


@pytest.fixture(scope="module")
def download(tmp_path_factory) -> Path:
    """Two segments in Waymo's download layout: training/ (2 frames) and validation/ (1 frame)."""
    if WAYMO_PYTHON is None:
        pytest.skip("no Python with waymo-open-dataset: `make waymo-env`")
    root = tmp_path_factory.mktemp("waymo_download")
    specs = tmp_path_factory.mktemp("specs")
    args = []
    for (folder, name), frames in SEGMENTS.items():
        spec = specs / f"{name}.json"
        spec.write_text(json.dumps({"context": name.split("_")[0], "frames": frames}))
        (root / folder).mkdir()
        args += [str(spec), str(root / folder / f"{name}.tfrecord")]
    subprocess.run([WAYMO_PYTHON, str(WRITER), *args], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return root


@pytest.fixture(scope="module")
def converted(download, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("waymo_root")
    assert data_main(["waymo-convert", "--tfrecords", str(download), "--out", str(out), "--quiet"]) == 0
    return out


@needs_waymo
def test_points_keep_every_lidar_and_both_returns_with_intensity_elongation_and_nlz(converted):
    raw = np.load(wf.WaymoLayout(converted).frame_path(SEG_TRAIN, 0))
    assert raw.dtype == np.float32 and raw.shape == (5, 6)
    # Rows: TOP first return (row-major), TOP second return, FRONT first return (its second is empty).
    want = np.concatenate([
        expected_xyz(TOP_R1, 8, 4, TOP_EXTRINSIC, TOP_INCLINATIONS, top_pixel_pose()),
        expected_xyz(TOP_R2, 8, 4, TOP_EXTRINSIC, TOP_INCLINATIONS, top_pixel_pose()),
        expected_xyz(FRONT_R1, 4, 2, FRONT_EXTRINSIC, None),
    ])
    np.testing.assert_allclose(raw[:, :3], want, atol=2e-3)
    features = [TOP_R1[k][1:] for k in sorted(TOP_R1)] + [TOP_R2[(1, 4)][1:], FRONT_R1[(0, 2)][1:]]
    np.testing.assert_array_equal(raw[:, 3:], np.array(features, np.float32))
    # The moved pixel really is compensated: 0.5 m along world x is this much in the vehicle frame.
    shift = np.linalg.inv(FRAME_POSE)[:3, :3] @ [0.5, 0, 0]
    unmoved = expected_xyz({MOVED_PIXEL: TOP_R1[MOVED_PIXEL]}, 8, 4, TOP_EXTRINSIC, TOP_INCLINATIONS)
    np.testing.assert_allclose(raw[0, :3], unmoved[0] + shift, atol=2e-3)


@needs_waymo
def test_frame_infos_keep_boxes_classes_difficulty_and_points_per_box(converted):
    layout = wf.WaymoLayout(converted)
    infos = wf.read_segment_infos(layout, SEG_TRAIN)
    assert [i["frame_id"] for i in infos] == [f"{SEG_TRAIN}_000", f"{SEG_TRAIN}_001"]
    first = infos[0]
    assert first["point_cloud"] == {"num_features": 5, "lidar_sequence": SEG_TRAIN, "sample_idx": 0}
    assert first["num_points_of_each_lidar"] == [4, 1]
    np.testing.assert_allclose(first["pose"], FRAME_POSE, atol=1e-5)
    annos = first["annos"]
    kept = [lb for lb in LABELS if lb["type"] != 0]  # unknown dropped; Sign kept as OpenPCDet keeps it
    assert list(annos["name"]) == ["Vehicle", "Pedestrian", "Sign", "Cyclist"]
    np.testing.assert_allclose(annos["gt_boxes_lidar"], [lb["box"] for lb in kept], atol=1e-6)
    assert list(annos["difficulty"]) == [lb["difficulty"] for lb in kept]
    assert list(annos["tracking_difficulty"]) == [lb["tracking_difficulty"] for lb in kept]
    assert list(annos["num_points_in_gt"]) == [lb["num_points"] for lb in kept]
    assert list(annos["obj_ids"]) == ["veh", "ped", "sign", "cyc"]
    # Splits from the download's folders; the split infos hold every frame.
    assert wf.read_image_set(layout.image_set_path("train")) == [SEG_TRAIN]
    assert wf.read_image_set(layout.image_set_path("val")) == [SEG_VAL]
    with open(layout.infos_path("train"), "rb") as f:
        assert [i["frame_id"] for i in pickle.load(f)] == [f"{SEG_TRAIN}_000", f"{SEG_TRAIN}_001"]


@needs_waymo
def test_converted_root_goes_through_sparsekd_data_into_training(converted, capsys):
    assert data_main(["waymo", "--root", str(converted), "--workers", "1", "--quiet"]) == 0
    assert "waymo train: 2 frames, objects: Cyclist 1, Pedestrian 2, Vehicle 2" in capsys.readouterr().out
    info = load_split(converted, "waymo", "train")[0]
    assert list(info.annos.names) == ["Vehicle", "Pedestrian", "Cyclist"]
    assert list(info.annos.difficulty) == [1, 2, 2]  # 4-point pedestrian and labelled cyclist: LEVEL_2
    points = load_points(info, converted)
    assert points.shape == (4, 5)  # the NLZ point is dropped, as OpenPCDet's loader drops it
    np.testing.assert_allclose(points[:, 3], np.tanh([0.8, 2.5, 0.4, 0.5]), rtol=1e-6)
    dataset = DetectionDataset(load_split(converted, "waymo", "train"), converted, ["Vehicle", "Pedestrian", "Cyclist"],
                               ["x", "y", "z", "intensity", "elongation"], [-75.2, -75.2, -2, 75.2, 75.2, 4],
                               training=False)
    sample = dataset[0]
    # The zoo's range ends at z = 4 m: the 12.5 m return of the top beam (z = 2.2 + 12.5 sin 0.15 = 4.07 m)
    # is cropped, the other three stay; all three objects are inside.
    assert sample.points.shape == (3, 5) and len(sample.gt_boxes) == 3
    assert sample.points[:, 2].max() < 4.0


@needs_waymo
def test_top_lidar_only_with_two_worker_processes(download, converted, tmp_path):
    assert data_main(["waymo-convert", "--tfrecords", str(download), "--out", str(tmp_path),
                      "--lidars", "top", "--workers", "2", "--quiet"]) == 0
    layout = wf.WaymoLayout(tmp_path)
    full = np.load(wf.WaymoLayout(converted).frame_path(SEG_TRAIN, 0))
    np.testing.assert_array_equal(np.load(layout.frame_path(SEG_TRAIN, 0)), full[:4])  # the TOP rows
    assert wf.read_segment_infos(layout, SEG_TRAIN)[0]["num_points_of_each_lidar"] == [4]
    assert wf.read_image_set(layout.image_set_path("val")) == [SEG_VAL]
    assert len(wf.read_segment_infos(layout, SEG_VAL)) == 1


@needs_waymo
def test_an_interrupted_conversion_resumes_where_it_stopped(download, converted, tmp_path, capfd):
    shutil.copytree(converted, tmp_path, dirs_exist_ok=True)  # a finished conversion, then cut short below
    args = ["waymo-convert", "--tfrecords", str(download), "--out", str(tmp_path), "--quiet"]
    layout = wf.WaymoLayout(tmp_path)
    done = np.load(layout.frame_path(SEG_TRAIN, 0))
    first_infos = wf.read_segment_infos(layout, SEG_TRAIN)
    # Cut short in frame 1 of the training segment: no segment pickle, frame 1's .npy never finished.
    layout.segment_infos_path(SEG_TRAIN).unlink()
    layout.frame_path(SEG_TRAIN, 1).unlink()
    os.utime(layout.frame_path(SEG_TRAIN, 0), (1, 1))
    capfd.readouterr()
    assert data_main(args) == 0
    out = capfd.readouterr().out  # the conversion runs in the Waymo Python: its output is the process's
    assert "converted 1 segment(s), 2 frames (1 frames kept from an earlier run); 1 segment(s) already done" in out
    assert os.stat(layout.frame_path(SEG_TRAIN, 0)).st_mtime == 1  # kept, not rewritten
    np.testing.assert_array_equal(np.load(layout.frame_path(SEG_TRAIN, 0)), done)
    assert layout.frame_path(SEG_TRAIN, 1).is_file()
    again = wf.read_segment_infos(layout, SEG_TRAIN)
    assert [i["num_points_of_each_lidar"] for i in again] == [i["num_points_of_each_lidar"] for i in first_infos]
    assert not list(layout.data_dir.rglob(".*partial"))


def test_without_the_waymo_package_the_command_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(waymo_env.ENV_VAR, raising=False)
    if waymo_env.has_waymo_package(sys.executable):
        pytest.skip("this Python has the Waymo package itself")
    (tmp_path / "in").mkdir()
    assert data_main(["waymo-convert", "--tfrecords", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                      "--waymo-python", sys.executable]) == 1
    err = capsys.readouterr().err
    assert "cannot import waymo_open_dataset" in err
    assert "make waymo-env" in err and "pip install waymo-open-dataset-tf-2-12-0==1.6.7" in err


def test_tfrecords_without_a_split_are_named(tmp_path):
    from sparsekd_core.data.waymo_tfrecord import find_segments

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / f"{SEG_TRAIN}.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match="--split"):
        find_segments(tmp_path / "raw", tmp_path / "out")
    # OpenPCDet's lists decide, as for users who keep its raw_data/ folder and ImageSets.
    wf.write_image_set(tmp_path / "out" / "ImageSets" / "val.txt", [SEG_TRAIN])
    assert [s.split for s in find_segments(tmp_path / "raw", tmp_path / "out")] == ["val"]
    with pytest.raises(FileNotFoundError, match="no \\*.tfrecord"):
        find_segments(tmp_path / "out", tmp_path / "out")
