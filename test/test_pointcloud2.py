"""PointCloud2 codec: every layout case against messages packed by hand with struct, and against
sensor_msgs_py when it is importable."""
from __future__ import annotations

import array
import struct
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sparsekd_ros.pointcloud2 import (
    MalformedCloud,
    check_cloud,
    cloud_to_points,
    create_cloud,
    create_cloud_xyz32,
    make_fields,
    points_to_cloud,
    read_points,
    read_points_numpy,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
F32, F64, U8, I16, U16, U32 = (PointField.FLOAT32, PointField.FLOAT64, PointField.UINT8, PointField.INT16,
                               PointField.UINT16, PointField.UINT32)
_STRUCT = {PointField.INT8: "b", U8: "B", I16: "h", U16: "H", PointField.INT32: "i", U32: "I", F32: "f", F64: "d"}


def pack_cloud(
    spec: list[tuple[str, int, int]],
    rows: list[list[tuple]],
    point_step: int,
    big_endian: bool = False,
    row_padding: int = 0,
    is_dense: bool = False,
) -> PointCloud2:
    """A cloud built byte by byte with struct (independent of the codec).

    spec: (name, offset, datatype) per field; rows: height lists of width points, each a tuple of
    values in spec order; unused bytes are 0xAB so reading garbage would show.
    """
    end = ">" if big_endian else "<"
    height, width = len(rows), len(rows[0])
    row_step = width * point_step + row_padding
    data = bytearray(b"\xab" * (row_step * height))
    for r, row in enumerate(rows):
        for c, point in enumerate(row):
            base = r * row_step + c * point_step
            for (name, offset, datatype), value in zip(spec, point):
                struct.pack_into(end + _STRUCT[datatype], data, base + offset, value)
    return PointCloud2(
        header=Header(frame_id="lidar"),
        height=height,
        width=width,
        fields=[PointField(name=n, offset=o, datatype=d, count=1) for n, o, d in spec],
        is_bigendian=big_endian,
        point_step=point_step,
        row_step=row_step,
        data=array.array("B", bytes(data)),
        is_dense=is_dense,
    )


def test_packed_float32_roundtrip_is_exact():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(1000, 4)).astype(np.float32)
    msg = points_to_cloud(pts, ("x", "y", "z", "intensity"), Header(frame_id="velodyne"))
    assert msg.point_step == 16 and msg.row_step == 16000 and msg.height == 1 and msg.width == 1000
    assert msg.header.frame_id == "velodyne"
    out = cloud_to_points(msg)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, pts)
    # The result owns its memory: scaling or editing it never touches the message.
    out[:] = 0
    np.testing.assert_array_equal(cloud_to_points(msg), pts)


@pytest.mark.parametrize("big_endian", [False, True])
def test_any_order_mixed_types_padding_and_endianness(big_endian):
    # Fields out of order, mixed datatypes, gaps between fields, a 40-byte point.
    spec = [("intensity", 0, U8), ("ring", 2, U16), ("z", 4, F32), ("x", 8, F64), ("y", 20, I16), ("t", 24, U32)]
    points = [(200, 7, 0.5, 10.25, -3, 99), (17, 1, -1.5, -2.0, 4, 1)]
    msg = pack_cloud(spec, [points], point_step=40, big_endian=big_endian)
    out = cloud_to_points(msg, ("x", "y", "z", "intensity", "ring"), intensity_scale=1 / 255)
    expected = np.array([[10.25, -3, 0.5, 200 / 255, 7], [-2.0, 4, -1.5, 17 / 255, 1]], np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    structured = read_points(msg, field_names=["x", "t"])
    assert structured["x"].tolist() == [10.25, -2.0] and structured["t"].tolist() == [99, 1]
    assert structured.dtype["x"].isnative


def test_organised_cloud_with_row_padding():
    spec = [("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("intensity", 12, F32)]
    rows = [[(r * 10 + c, -c, r, 0.1 * c) for c in range(3)] for r in range(2)]
    msg = pack_cloud(spec, rows, point_step=16, row_padding=8)
    assert msg.row_step == 56 and len(msg.data) == 112
    out = cloud_to_points(msg)
    expected = np.array([p for row in rows for p in row], np.float32)
    np.testing.assert_allclose(out, expected)
    grid = read_points(msg, reshape_organized_cloud=True)
    assert grid.shape == (2, 3) and grid["x"][1, 2] == 12.0
    np.testing.assert_allclose(read_points_numpy(msg), expected)


def test_nonfinite_xyz_rows_are_dropped_whatever_is_dense_says():
    spec = [("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("intensity", 12, F32)]
    nan, inf = float("nan"), float("inf")
    pts = [(1, 1, 1, 1), (nan, 0, 0, 2), (0, inf, 0, 3), (0, 0, -inf, 4), (2, 2, 2, nan), (3, 3, 3, 5)]
    for dense in (False, True):
        out = cloud_to_points(pack_cloud(spec, [pts], 16, is_dense=dense))
        # x/y/z NaN or inf -> dropped; a NaN intensity alone keeps the point.
        assert out[:, 0].tolist() == [1, 2, 3]
        assert out[0, 3] == 1 and np.isnan(out[1, 3]) and out[2, 3] == 5
    kept = cloud_to_points(pack_cloud(spec, [pts], 16), drop_nonfinite=False)
    assert len(kept) == 6
    # sensor_msgs_py semantics: skip_nans drops NaN in any selected field, only for non-dense clouds.
    assert len(read_points(pack_cloud(spec, [pts], 16), skip_nans=True)) == 4
    assert len(read_points(pack_cloud(spec, [pts], 16, is_dense=True), skip_nans=True)) == 6


def test_feature_mapping_missing_optional_is_zero_missing_xyz_is_an_error():
    spec = [("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("reflectance", 12, F32)]
    msg = pack_cloud(spec, [[(1, 2, 3, 0.5)]], 16)
    out = cloud_to_points(msg, ("x", "y", "z", "intensity", "elongation"), intensity_field="reflectance")
    assert out.tolist() == [[1, 2, 3, 0.5, 0]]
    assert cloud_to_points(msg, ("x", "y", "z", "intensity")).tolist() == [[1, 2, 3, 0]]  # no "intensity" field
    no_z = pack_cloud([("x", 0, F32), ("y", 4, F32)], [[(1, 2)]], 8)
    with pytest.raises(MalformedCloud, match="no 'z' field"):
        cloud_to_points(no_z, ("x", "y", "z"))
    with pytest.raises(ValueError, match="must include x, y and z"):
        cloud_to_points(msg, ("intensity",))


def test_empty_cloud_decodes_to_zero_rows():
    msg = points_to_cloud(np.zeros((0, 4), np.float32))
    assert msg.width == 0 and len(msg.data) == 0
    assert cloud_to_points(msg).shape == (0, 4)
    assert cloud_to_points(msg, ("x", "y", "z")).shape == (0, 3)


def _good() -> PointCloud2:
    return points_to_cloud(np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize(
    "break_it, match",
    [
        (lambda m: setattr(m, "data", m.data[:-4]), "data holds 44 bytes but row_step\\*height"),
        (lambda m: setattr(m, "width", 4), "row_step 48 is smaller than width\\*point_step"),
        (lambda m: setattr(m, "fields", make_fields(["y", "z", "i"])), "no 'x' field"),
        (lambda m: (setattr(m, "point_step", 12), setattr(m, "row_step", 36)), "'intensity'.*beyond point_step 12"),
        (lambda m: setattr(m, "point_step", 0), "beyond point_step 0"),
        (lambda m: setattr(m.fields[3], "datatype", 9), "unknown datatype 9"),
        (lambda m: setattr(m.fields[3], "name", "x"), "duplicate field names"),
        (lambda m: (setattr(m, "width", 0), setattr(m, "row_step", 0)), "width\\*height is 0 but data holds 48"),
    ],
)
def test_malformed_clouds_say_what_is_wrong(break_it, match):
    msg = _good()
    check_cloud(msg)
    break_it(msg)
    with pytest.raises(MalformedCloud, match=match):
        cloud_to_points(msg)
    assert issubclass(MalformedCloud, ValueError)


def test_create_cloud_matches_struct_packing_for_mixed_fields():
    fields = [PointField(name="x", offset=0, datatype=F32, count=1),
              PointField(name="ring", offset=4, datatype=U16, count=1),
              PointField(name="t", offset=8, datatype=F64, count=1)]
    pts = np.array([[1.5, 3, 0.25], [-2.0, 65535, 1e-3]])
    msg = create_cloud(Header(frame_id="f"), fields, pts)
    assert msg.point_step == 16 and msg.row_step == 32 and not msg.is_dense
    expected = struct.pack("<fH2xd", 1.5, 3, 0.25) + struct.pack("<fH2xd", -2.0, 65535, 1e-3)
    assert bytes(msg.data) == expected
    structured = read_points(msg)
    again = create_cloud(Header(), fields, structured)
    assert bytes(again.data) == expected
    wide = create_cloud(Header(), fields, pts, point_step=24)
    assert wide.point_step == 24 and len(wide.data) == 48
    np.testing.assert_allclose(read_points_numpy(wide, ["t"])[:, 0], [0.25, 1e-3])


def test_create_cloud_organised_and_xyz32():
    grid = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    msg = create_cloud(Header(), make_fields(["x", "y", "z"]), grid)
    assert (msg.height, msg.width, msg.row_step) == (2, 3, 36)
    np.testing.assert_array_equal(cloud_to_points(msg, ("x", "y", "z")), grid.reshape(-1, 3))
    xyz = create_cloud_xyz32(Header(), grid.reshape(-1, 3))
    assert [f.name for f in xyz.fields] == ["x", "y", "z"] and xyz.point_step == 12
    with pytest.raises(ValueError, match="do not fit 3 fields"):
        create_cloud(Header(), make_fields(["x", "y", "z"]), np.zeros((4, 2)))
    with pytest.raises(MalformedCloud, match="one datatype"):
        read_points_numpy(create_cloud(Header(), [PointField(name="x", offset=0, datatype=F32, count=1),
                                                  PointField(name="r", offset=4, datatype=U8, count=1)],
                                       np.zeros((2, 2))))


def test_real_frames_roundtrip():
    kitti = np.fromfile(DATA / "kitti/training/velodyne_reduced/000008.bin", np.float32).reshape(-1, 4)
    nus = np.fromfile(DATA / "nuscenes/lidar_top.bin", np.float32).reshape(-1, 5)
    waymo = np.load(DATA / "waymo_like/benchmark_pc.npy")
    np.testing.assert_array_equal(cloud_to_points(points_to_cloud(kitti)), kitti)
    ring_cloud = points_to_cloud(nus, ("x", "y", "z", "intensity", "ring"))
    out = cloud_to_points(ring_cloud, ("x", "y", "z", "intensity"), intensity_scale=1 / 255)
    np.testing.assert_allclose(out[:, 3], nus[:, 3] / 255, rtol=1e-6)
    assert out[:, 3].max() <= 1.0
    xyz_only = cloud_to_points(points_to_cloud(waymo, ("x", "y", "z")), ("x", "y", "z", "intensity", "elongation"))
    assert xyz_only.shape == (len(waymo), 5) and not xyz_only[:, 3:].any()


def test_rosbags_message_decodes_like_the_rclpy_one():
    """A cloud read from a bag with rosbags (data is an ndarray, not array.array) decodes the same."""
    from rclpy.serialization import serialize_message
    from rosbags.typesys import Stores, get_typestore

    pts = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    msg = points_to_cloud(pts, header=Header(frame_id="lidar"))
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    theirs = typestore.deserialize_cdr(serialize_message(msg), "sensor_msgs/msg/PointCloud2")
    assert isinstance(theirs.data, np.ndarray)
    np.testing.assert_array_equal(cloud_to_points(theirs), pts)


def test_cross_check_with_sensor_msgs_py():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2", reason="sensor_msgs_py is not installed here")
    spec = [("intensity", 0, F32), ("z", 4, F32), ("x", 8, F32), ("y", 12, F32)]
    pts = [(0.1 * i, i, -i, 2 * i) for i in range(20)] + [(1.0, float("nan"), 0, 0)]
    for big in (False, True):
        msg = pack_cloud(spec, [pts], 20, big_endian=big)
        for names in (None, ["x", "y", "z"]):
            for skip in (False, True):
                np.testing.assert_array_equal(
                    read_points_numpy(msg, names, skip_nans=skip), pc2.read_points_numpy(msg, names, skip_nans=skip)
                )
    xyz = np.random.default_rng(2).normal(size=(30, 3)).astype(np.float32)
    assert bytes(create_cloud_xyz32(Header(), xyz).data) == bytes(pc2.create_cloud_xyz32(Header(), xyz).data)
    fields = make_fields(["x", "y", "z", "intensity"])
    pts4 = np.c_[xyz, xyz[:, 0]]
    ours, theirs = create_cloud(Header(), fields, pts4), pc2.create_cloud(Header(), fields, pts4)
    assert bytes(ours.data) == bytes(theirs.data) and ours.point_step == theirs.point_step


@pytest.mark.parametrize("big_endian", [False, True])
def test_common_driver_layouts_take_the_matrix_path(big_endian):
    """Packed x y z intensity and an Ouster-style padded point (all float32 features, aligned)."""
    packed = [("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("intensity", 12, F32)]
    pts = [(1.5, -2.0, 0.25, 7.0), (3.0, 4.0, -1.0, 0.5)]
    out = cloud_to_points(pack_cloud(packed, [pts], 16, big_endian=big_endian))
    np.testing.assert_array_equal(out, np.array(pts, np.float32))
    ouster = [("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("intensity", 16, F32), ("t", 20, U32), ("ring", 24, U16)]
    rows = [(1.5, -2.0, 0.25, 7.0, 123456, 5), (3.0, 4.0, -1.0, 0.5, 9, 63)]
    msg = pack_cloud(ouster, [rows], 32, big_endian=big_endian)
    np.testing.assert_array_equal(cloud_to_points(msg), np.array([r[:4] for r in rows], np.float32))
    # Features out of field order still land in the requested columns.
    np.testing.assert_array_equal(cloud_to_points(msg, ("intensity", "z", "y", "x")),
                                  np.array([r[3::-1] for r in rows], np.float32))
