"""sparsekd-bag-detect: a bag written here with rosbags alone goes through the detector and comes
back as a bag with the same clouds plus markers at the same timestamps, in both storages."""
from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ros_helpers import CLASSES, StandInDetector, kitti_points, stamp, write_cloud_bag
from sparsekd_ros.bag_detect import DETECTIONS_TOPIC, MARKERS_TOPIC, detect_bag, main
from sparsekd_ros.bag_io import BagError, BagWriter, ensure_type

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)  # decode the output independently of rclpy


def _read_all(path):
    with Reader(path) as reader:
        out = {}
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, raw, conn.msgtype))
        return out


def _input_bag(tmp_path, storage, n=4, bad_index=None, extra=None):
    pts = kitti_points()[:2000]
    clouds = [(5_000_000_000 + i * 100_000_000, pts + i, stamp(i), "velodyne") for i in range(n)]
    bag = write_cloud_bag(tmp_path / "in", clouds, topic="/points", storage=storage, extra_topics=extra)
    if bad_index is None:
        return bag
    # Rewrite with one truncated cloud: bytes cut from a real message, as a broken driver might send.
    msgs = _read_all(bag)["/points"]
    broken = tmp_path / "broken"
    with BagWriter(broken, storage) as writer:
        for i, (t, raw, msgtype) in enumerate(msgs):
            if i == bad_index:
                msg = TYPESTORE.deserialize_cdr(raw, msgtype)
                msg.data = msg.data[:-16]
                raw = TYPESTORE.serialize_cdr(msg, msgtype)
            writer.write("/points", t, raw, msgtype)
    return broken


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_keeps_clouds_and_adds_markers(tmp_path, storage):
    bag = _input_bag(tmp_path, storage)
    det = StandInDetector()
    summary = detect_bag(bag, tmp_path / "out", det, progress=False)
    assert summary["clouds"] == 4 and summary["boxes"] == 4 and summary["skipped"] == 0
    got, sent = _read_all(tmp_path / "out"), _read_all(bag)
    assert [raw for _, raw, _ in got["/points"]] == [raw for _, raw, _ in sent["/points"]]  # clouds unchanged
    assert [t for t, _, _ in got[MARKERS_TOPIC]] == [t for t, _, _ in sent["/points"]]  # same bag times
    assert (DETECTIONS_TOPIC in got) == summary["vision_msgs"]
    for i, (t, raw, msgtype) in enumerate(got[MARKERS_TOPIC]):
        assert msgtype == "visualization_msgs/msg/MarkerArray"
        markers = TYPESTORE.deserialize_cdr(raw, msgtype).markers
        assert markers[0].action == 3  # DELETEALL
        line = markers[1]
        assert line.header.frame_id == "velodyne" and line.header.stamp.sec == stamp(i).sec
        # The stand-in puts its box at the mean of the points it received: the bag's points + i.
        centre = np.mean([[p.x, p.y, p.z] for p in line.points], axis=0)
        np.testing.assert_allclose(centre, kitti_points()[:2000, :3].mean(axis=0) + i, atol=1e-3)
        assert markers[2].text == f"{CLASSES[0]} 0.90"
    assert (storage == "mcap") == any((tmp_path / "out").glob("*.mcap"))  # output storage follows the input


def test_min_and_max_range_crop_what_the_model_sees(tmp_path):
    """--min-range drops the robot's own body (points nearer than it), --max-range the far ones, as in the node."""
    bag = _input_bag(tmp_path, "sqlite3", n=1)
    det = StandInDetector()
    detect_bag(bag, tmp_path / "all", det, progress=False)
    detect_bag(bag, tmp_path / "cropped", det, progress=False, max_range=30.0, min_range=10.0)
    every, cropped = det.seen
    r_all, r = np.hypot(every[:, 0], every[:, 1]), np.hypot(cropped[:, 0], cropped[:, 1])
    assert (r_all < 10.0).sum() > 100 and (r_all > 30.0).sum() > 100  # both crops have something to drop
    assert r.min() >= 10.0 and r.max() <= 30.0
    assert len(cropped) == int(((r_all >= 10.0) & (r_all <= 30.0)).sum())


def test_malformed_cloud_is_copied_and_counted_other_topics_on_request(tmp_path):
    bag = _input_bag(tmp_path, "sqlite3", n=3, bad_index=1)
    summary = detect_bag(bag, tmp_path / "out", StandInDetector(), progress=False)
    assert summary["clouds"] == 2 and summary["skipped"] == 1 and "data holds" in summary["problems"][0]
    got = _read_all(tmp_path / "out")
    assert len(got["/points"]) == 3 and len(got[MARKERS_TOPIC]) == 2

    with_tf = _input_bag(tmp_path / "x", "sqlite3", n=2, extra={"/note": [5_000_000_000, 5_050_000_000]})
    summary = detect_bag(with_tf, tmp_path / "out2", StandInDetector(), copy_other_topics=True, progress=False)
    got = _read_all(tmp_path / "out2")
    assert summary["copied"] == 2 and [TYPESTORE.deserialize_cdr(r, m).data for _, r, m in got["/note"]] == [
        "at 5000000000", "at 5050000000"]
    summary = detect_bag(with_tf, tmp_path / "out3", StandInDetector(), progress=False)
    assert "/note" not in _read_all(tmp_path / "out3") and summary["copied"] == 0


def test_errors_say_what_to_do(tmp_path):
    bag = _input_bag(tmp_path, "sqlite3", n=1)
    with pytest.raises(BagError, match="no PointCloud2 topic /lidar; its cloud topics are \\['/points'\\]"):
        detect_bag(bag, tmp_path / "out", StandInDetector(), topics=["/lidar"], progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="already exists"):
        detect_bag(bag, tmp_path / "exists", StandInDetector(), progress=False)
    assert main([str(tmp_path / "missing"), str(tmp_path / "o"), "--model", "x"]) == 2


def test_a_min_range_beyond_the_max_range_is_refused_before_anything_is_read(tmp_path, capsys):
    bag = _input_bag(tmp_path, "sqlite3", n=1)
    assert main([str(bag), str(tmp_path / "out"), "--model", "x", "--min-range", "30", "--max-range", "20"]) == 2
    assert "min_range (30 m) must be below max_range (20 m)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_types_missing_from_rosbags_are_registered_from_installed_msg_files():
    store = get_typestore(Stores.EMPTY)
    ensure_type(store, "visualization_msgs/msg/MarkerArray")
    msgdef, _ = store.generate_msgdef("visualization_msgs/msg/MarkerArray", ros_version=2)
    assert "MSG: geometry_msgs/Point" in msgdef and "MSG: visualization_msgs/Marker" in msgdef
    with pytest.raises(BagError, match="no_such_msgs/msg/Thing.msg"):
        ensure_type(store, "no_such_msgs/msg/Thing")


def test_cli_with_a_real_model(tmp_path, capsys):
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint("cp_voxel_xxs_sim", tmp_path / "m.pth")
    bag = _input_bag(tmp_path, "mcap", n=2)
    rc = main([str(bag), str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu", "--score-threshold", "0.0",
               "--storage", "sqlite3", "--class-score-thresholds", "Car:0.05"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.startswith("2 clouds, ") and "0 skipped" in out
    got = _read_all(tmp_path / "out")
    assert len(got["/points"]) == 2 and len(got[MARKERS_TOPIC]) == 2
    n_boxes = int(out.split(", ")[1].split()[0])
    markers = [TYPESTORE.deserialize_cdr(r, m).markers for _, r, m in got[MARKERS_TOPIC]]
    assert sum(len(m.points) for ms in markers for m in ms if m.type == 5) == 24 * n_boxes  # 12 edges per box
    bad = main([str(bag), str(tmp_path / "out_b"), "--model", str(ckpt), "--device", "cpu",
                "--class-score-thresholds", "Truck:0.5"])
    assert bad == 2 and "Truck" in capsys.readouterr().err
