"""sparsekd-data nuscenes: a v1.0-mini-format set written here (nuscenes_minimal.py), read through the devkit.

Expected values are derived from the poses and boxes the dataset was written with: a box given in the LiDAR
frame must come back unchanged after the trip to the global frame (tables) and back (infos); a velocity
moves as a direction, v_lidar = R_sensor^T R_ego^T v_global; a sweep written as the key frame's cloud seen
from 50 / 100 ms earlier must land back on the key frame's cloud.
"""
from __future__ import annotations

import numpy as np
import pytest
from pyquaternion import Quaternion

from sparsekd_core.cli.data import main as data_main
from sparsekd_core.data import nuscenes_format as nf
from sparsekd_core.data.infos import dbinfos_relpath, frame_info_from_dict, load_points, load_split
from sparsekd_core.data.nuscenes_infos import load_nuscenes

import nuscenes_minimal as nm


@pytest.fixture(scope="module")
def nusc_root(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("nuscenes")
    written = nm.write_minimal_nuscenes(root, shared_data)
    assert data_main(["nuscenes", "--root", str(root), "--version", "v1.0-mini", "--workers", "1", "--quiet"]) == 0
    return root, written


def lidar_rotation(pose) -> np.ndarray:
    """R such that v_lidar = R v_global (rotation only)."""
    return (pose[1] * nm.SENSOR_ROTATION).rotation_matrix.T


def test_official_splits_and_the_summary(nusc_root, capsys):
    root, written = nusc_root
    train, val = load_split(root, "nuscenes", "train"), load_split(root, "nuscenes", "val")
    assert [i.frame_id for i in train] == written["train_samples"]  # scene-0061 is in the devkit's mini_train
    assert [i.frame_id for i in val] == written["val_samples"]  # scene-0103 in mini_val
    assert [i.sample_idx for i in train] == [0, 1] and train[0].sequence == "scene-0061"
    assert train[0].version == "v1.0-mini" and train[0].lidar_path == "samples/LIDAR_TOP/scene-0061_key0.pcd.bin"
    assert (root / dbinfos_relpath("nuscenes", "train")).is_file()
    # Real boxes with points, both key frames: the detection classes (devkit mapping), 'ignore' for the rest.
    kept = [b for b in written["real_boxes"] if b["num_lidar_pts"] > 0]
    assert list(train[0].annos.names) == [b["name"] for b in kept]
    assert "ignore" in train[0].annos.names


def test_boxes_come_back_in_the_lidar_frame(nusc_root):
    root, written = nusc_root
    info = load_split(root, "nuscenes", "train")[0]
    kept = [b for b in written["real_boxes"] if b["num_lidar_pts"] > 0]  # objects without points are never scored
    want = np.array([b["box"] for b in kept])
    got = info.annos.boxes_lidar
    np.testing.assert_allclose(got[:, :6], want[:, :6], atol=2e-4)
    yaw_error = np.angle(np.exp(1j * (got[:, 6] - want[:, 6])))
    np.testing.assert_allclose(yaw_error, 0.0, atol=2e-4)
    np.testing.assert_array_equal(info.annos.num_points_in_gt, [b["num_lidar_pts"] for b in kept])
    np.testing.assert_allclose(info.pose, nm.global_from_lidar(nm.ego_pose(nm.TRAIN_POSE, 0)), atol=1e-6)


def test_velocities_are_turned_into_the_lidar_frame(nusc_root):
    root, _ = nusc_root
    # Every train object moves TRAIN_MOTION (global) in 0.5 s: v_global = (2, -1, 0) m/s at both key frames.
    v_global = nm.TRAIN_MOTION / (nm.KEY_DT * 1e-6)
    for k, info in enumerate(load_split(root, "nuscenes", "train")):
        want = lidar_rotation(nm.ego_pose(nm.TRAIN_POSE, nm.KEY_DT * k)) @ v_global
        np.testing.assert_allclose(info.annos.velocity, np.tile(want[:2], (len(info.annos), 1)), atol=1e-4)
    # Val: the moving car's (5, 1) m/s; the cone, seen once, has none the devkit can estimate: 0.
    val = load_split(root, "nuscenes", "val")
    car = lidar_rotation(nm.ego_pose(nm.VAL_POSE, 0)) @ np.array([5.0, 1.0, 0.0])
    names = list(val[0].annos.names)
    assert names == ["car", "car", "pedestrian", "ignore"]  # the 0-point car is dropped
    np.testing.assert_allclose(val[0].annos.velocity[0], car[:2], atol=1e-4)
    np.testing.assert_allclose(val[1].annos.velocity[list(val[1].annos.names).index("traffic_cone")], [0, 0])


def test_sweeps_land_on_the_key_frame(nusc_root):
    root, written = nusc_root
    info = load_split(root, "nuscenes", "train")[0]
    assert [s.lidar_path for s in info.sweeps] == ["sweeps/LIDAR_TOP/scene-0061_sweep1.pcd.bin",
                                                   "sweeps/LIDAR_TOP/scene-0061_sweep2.pcd.bin"]
    np.testing.assert_allclose([s.time_lag for s in info.sweeps], [0.05, 0.1], atol=1e-9)
    for j, sweep in enumerate(info.sweeps, start=1):
        np.testing.assert_allclose(sweep.transform, nm.sweep_transform(j), atol=1e-9)

    real = written["real_points"]
    single = load_points(info, root)
    assert single.shape == (len(real), 5)
    np.testing.assert_allclose(single[:, :3], real[:, :3])
    np.testing.assert_allclose(single[:, 3], real[:, 3] / 255.0, rtol=1e-6)
    assert not single[:, 4].any()

    merged = load_points(info, root, sweeps=3)
    parts, start = [], len(real)
    for j in (1, 2):
        # The sweep drops the points within 1 m of its own sensor in x and y (its car), in its own frame.
        inv = np.linalg.inv(nm.sweep_transform(j))
        q = real[:, :3].astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]
        keep = ~((np.abs(q[:, 0]) < 1.0) & (np.abs(q[:, 1]) < 1.0))
        part = merged[start:start + int(keep.sum())]
        np.testing.assert_allclose(part[:, :3], real[keep, :3], atol=2e-3)
        np.testing.assert_allclose(part[:, 4], 0.05 * j, rtol=1e-6)
        parts.append(part)
        start += int(keep.sum())
    assert start == len(merged)
    assert len(load_points(info, root, sweeps=10)) == len(merged)  # only two sweeps exist: all of them


def test_openpcdet_nuscenes_infos_load_too():
    # OpenPCDet pads a scene's first key frames with copies whose transform_matrix is None, and keeps NaN velocities.
    d = {"lidar_path": "samples/LIDAR_TOP/a.pcd.bin", "token": "tok", "timestamp": 1.5,
         "sweeps": [{"lidar_path": "samples/LIDAR_TOP/a.pcd.bin", "sample_data_token": "sd", "transform_matrix": None,
                     "time_lag": 0}],
         "gt_boxes": np.array([[1, 2, 0, 4, 2, 1.5, 0.1, np.nan, np.nan]]), "gt_names": np.array(["car"]),
         "num_lidar_pts": np.array([12])}
    info = frame_info_from_dict(d)
    assert info.dataset == "nuscenes" and info.frame_id == "tok" and info.sweeps == ()
    np.testing.assert_array_equal(info.annos.velocity, [[0, 0]])
    np.testing.assert_allclose(info.annos.boxes_lidar, [[1, 2, 0, 4, 2, 1.5, 0.1]])


def test_input_problems_are_named(tmp_path, capsys):
    assert data_main(["nuscenes", "--root", str(tmp_path), "--version", "v1.0-mini", "--quiet"]) == 1
    assert "no nuScenes tables" in capsys.readouterr().err
    with pytest.raises(ValueError, match="splits"):
        nf.split_name("v1.0-mini", "test")
    with pytest.raises(ValueError, match="sweeps"):
        nf.read_points("x.pcd.bin", (), tmp_path, num_sweeps=0)
    (tmp_path / "bad.pcd.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(ValueError, match="x y z intensity ring"):
        nf.read_sweep_file(tmp_path / "bad.pcd.bin")


def test_the_devkit_reads_the_written_set(nusc_root):
    root, written = nusc_root
    nusc = load_nuscenes(root, "v1.0-mini")
    assert len(nusc.sample) == 4 and len(nusc.scene) == 2
    assert Quaternion(nusc.calibrated_sensor[0]["rotation"]) == nm.SENSOR_ROTATION
