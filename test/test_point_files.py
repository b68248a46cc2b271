"""Point files: the real KITTI / nuScenes / Waymo-like frames and .pcd/.ply written with open3d come out
as float32 (N, F) with the right field names; intensity scaling and model columns."""
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from sparsekd_core.data.point_files import (
    bin_columns,
    intensity_scale,
    list_point_files,
    model_points,
    parse_fields,
    read_point_file,
)
from sparsekd_ros.frame_files import read_frame

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
KITTI_BIN = DATA / "kitti" / "training" / "velodyne_reduced" / "000008.bin"
NUSCENES_BIN = DATA / "nuscenes" / "lidar_top.bin"
WAYMO_NPY = DATA / "waymo_like" / "benchmark_pc.npy"


def _raw(path: Path, cols: int) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, cols)


def test_real_frames_in_their_layouts():
    kitti = read_point_file(KITTI_BIN)
    assert kitti.fields == ("x", "y", "z", "intensity") and kitti.points.shape == (17238, 4)
    assert kitti.points.dtype == np.float32
    np.testing.assert_array_equal(kitti.points, _raw(KITTI_BIN, 4))
    assert 0.0 <= kitti.points[:, 3].min() and kitti.points[:, 3].max() <= 1.0  # KITTI reflectance

    nus = read_point_file(NUSCENES_BIN)  # 'lidar_top' in the name: nuScenes layout
    assert nus.fields == ("x", "y", "z", "intensity", "ring") and nus.points.shape == (34688, 5)
    assert set(np.unique(nus.points[:, 4])) <= set(range(32))  # HDL-32E rings
    assert nus.points[:, 3].max() > 1.0  # 0..255 intensity

    waymo = read_point_file(WAYMO_NPY)
    assert waymo.fields == ("x", "y", "z") and waymo.points.shape == (198130, 3)


def test_fields_name_bin_and_npy_columns(tmp_path):
    # The nuScenes file read as KITTI would give garbage rows; --fields decides the layout.
    nus = read_point_file(NUSCENES_BIN, "x,y,z,intensity,ring")
    np.testing.assert_array_equal(nus.points, _raw(NUSCENES_BIN, 5))
    copy = tmp_path / "sweep.bin"  # a name that does not say nuScenes: 34688 * 5 values split into 4 too
    copy.write_bytes(NUSCENES_BIN.read_bytes())
    assert bin_columns(copy) == 4
    assert read_point_file(copy, ["x", "y", "z", "i", "ring"]).fields == ("x", "y", "z", "i", "ring")
    np.save(tmp_path / "a.npy", _raw(KITTI_BIN, 4)[:, :3].copy())
    assert read_point_file(tmp_path / "a.npy", "x,y,z").points.shape == (17238, 3)
    with pytest.raises(ValueError, match="has 3 columns but --fields names 4"):
        read_point_file(tmp_path / "a.npy", "x,y,z,intensity")
    (tmp_path / "odd.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(ValueError, match="fit neither 4"):
        read_point_file(tmp_path / "odd.bin")


def test_waymo_processed_npy_drops_nlz_and_squashes_intensity(tmp_path):
    rows = np.c_[_raw(KITTI_BIN, 4)[:10, :3], np.full(10, 2.0), np.zeros(10), np.r_[np.full(7, -1.0), 1, 1, 1]]
    np.save(tmp_path / "0000.npy", rows.astype(np.float32))
    frame = read_point_file(tmp_path / "0000.npy")
    assert frame.fields == ("x", "y", "z", "intensity", "elongation") and len(frame) == 7
    np.testing.assert_allclose(frame.points[:, 3], np.tanh(2.0), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
@pytest.mark.parametrize("ascii_", [False, True])
def test_pcd_and_ply_written_by_open3d(tmp_path, suffix, ascii_):
    src = _raw(NUSCENES_BIN, 5)[:2000]
    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(src[:, :3].copy()))
    cloud.point["ring"] = o3d.core.Tensor(src[:, 4:5].copy())
    cloud.point["intensity"] = o3d.core.Tensor(src[:, 3:4].copy())
    cloud.point["colors"] = o3d.core.Tensor(np.ones((2000, 3), np.float32))  # not a LiDAR feature: left out
    path = tmp_path / f"cloud{suffix}"
    assert o3d.t.io.write_point_cloud(str(path), cloud, write_ascii=ascii_)
    frame = read_point_file(path)
    assert frame.fields == ("x", "y", "z", "intensity", "ring")
    rtol = 1e-5 if ascii_ else 0.0  # ASCII PLY keeps 6 significant digits
    np.testing.assert_allclose(frame.points, src, rtol=rtol, atol=0.0)


def test_pcd_reflectance_alias_and_bad_files(tmp_path):
    pts = np.random.default_rng(0).uniform(-5, 5, (50, 3)).astype(np.float32)
    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(pts))
    cloud.point["reflectance"] = o3d.core.Tensor(np.full((50, 1), 0.25, np.float32))
    o3d.t.io.write_point_cloud(str(tmp_path / "r.pcd"), cloud)
    frame = read_point_file(tmp_path / "r.pcd")
    assert frame.fields == ("x", "y", "z", "intensity") and np.all(frame.points[:, 3] == 0.25)
    with pytest.raises(ValueError, match="does not exist"):
        read_point_file(tmp_path / "missing.pcd")
    (tmp_path / "x.las").write_text("x")
    with pytest.raises(ValueError, match="unsupported point file"):
        read_point_file(tmp_path / "x.las")


def test_list_point_files(tmp_path):
    for name in ("b.pcd", "a.bin", "c.ply", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_point_files(tmp_path)] == ["a.bin", "b.pcd", "c.ply"]
    assert [p.name for p in list_point_files(tmp_path, (".bin", ".npy"))] == ["a.bin"]
    with pytest.raises(ValueError, match="no .npy frames directly"):
        list_point_files(tmp_path, (".npy",))
    with pytest.raises(ValueError, match="is not a .bin, .npy, .pcd or .ply frame file"):
        list_point_files(tmp_path / "notes.txt")


def test_parse_fields():
    assert parse_fields(" x, y ,z,intensity ") == ("x", "y", "z", "intensity")
    with pytest.raises(ValueError, match="start with x,y,z"):
        parse_fields("intensity,x,y,z")
    with pytest.raises(ValueError, match="twice"):
        parse_fields("x,y,z,i,i")


def test_intensity_scale_rule():
    assert intensity_scale(np.array([0.0, 0.99])) == 1.0
    assert intensity_scale(np.array([0.0, 3.0, 255.0, np.nan])) == pytest.approx(1 / 255)
    assert intensity_scale(np.array([4000.0])) == pytest.approx(1 / 65535)
    assert intensity_scale(np.array([200.0]), 0.5) == 0.5
    assert intensity_scale(np.array([200.0]), "0.25") == 0.25
    with pytest.raises(ValueError, match="'auto' or a number"):
        intensity_scale(np.array([1.0]), "half")


def test_model_points_picks_scales_and_fills():
    nus = read_point_file(NUSCENES_BIN)
    pts, missing, factor = model_points(nus.points, nus.fields, ("x", "y", "z", "intensity", "elongation"))
    assert pts.shape == (34688, 5) and missing == ["elongation"] and factor == pytest.approx(1 / 255)
    np.testing.assert_allclose(pts[:, 3], nus.points[:, 3] / 255, rtol=1e-6)
    assert pts[:, 3].max() <= 1.0 and np.all(pts[:, 4] == 0)
    kitti = read_point_file(KITTI_BIN)
    pts, missing, factor = model_points(kitti.points, kitti.fields, ("x", "y", "z", "intensity"))
    assert missing == [] and factor == 1.0
    np.testing.assert_array_equal(pts, kitti.points)


def test_frame_files_is_a_user_of_point_files():
    pts, names = read_frame(NUSCENES_BIN, 5)
    frame = read_point_file(NUSCENES_BIN)
    assert names == frame.fields
    np.testing.assert_array_equal(pts, frame.points)
    pts, names = read_frame(NUSCENES_BIN, 4)  # the replay's --bin-columns 4 overrides the guess
    assert names == ("x", "y", "z", "intensity") and pts.shape == (34688 * 5 // 4, 4)
