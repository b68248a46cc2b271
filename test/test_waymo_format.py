"""Waymo processed layout (OpenPCDet's): points .npy, per-segment and split infos, sampled interval."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from sparsekd_core.data import waymo_format as wf


def _write_segment(layout: wf.WaymoLayout, segment: str, frames: int, rng: np.random.Generator) -> list[dict]:
    infos = []
    for k in range(frames):
        pts = rng.normal(size=(50 + k, 5)).astype(np.float32)
        nlz = np.where(np.arange(len(pts)) % 10 == 0, 3.0, -1.0)  # every 10th point in a no-label zone
        wf.write_frame_points(layout.frame_path(segment, k), pts, nlz)
        boxes = np.array([[10.0 + k, 2, 1, 4.5, 1.8, 1.5, 0.1], [5, -3, 1, 0.6, 0.6, 1.7, 1.0],
                          [20, 0, 3, 0.1, 0.8, 0.8, 0.0]])
        annos = wf.make_annos(["Vehicle", "Pedestrian", "Sign"], boxes, [120, 4, 9], obj_ids=["a", "b", "c"])
        infos.append(wf.make_frame_info(segment, k, np.eye(4), annos, num_points=len(pts)))
    wf.write_segment_infos(layout, segment, infos)
    return infos


def test_layout_paths_follow_openpcdet(tmp_path):
    layout = wf.WaymoLayout(tmp_path)
    seg = "segment-123_with_camera_labels"
    assert layout.frame_path(seg + ".tfrecord", 7) == tmp_path / "waymo_processed_data_v0_5_0" / seg / "0007.npy"
    assert layout.segment_infos_path(seg).name == seg + ".pkl"
    assert layout.infos_path("val") == tmp_path / "waymo_infos_val.pkl"
    assert wf.frame_id(seg, 7) == seg + "_007"


def test_points_round_trip_with_nlz_and_tanh(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 3, size=(30, 5)).astype(np.float32)
    nlz = np.full(30, -1.0)
    nlz[:4] = 0
    wf.write_frame_points(tmp_path / "0000.npy", pts, nlz)
    raw = np.load(tmp_path / "0000.npy")
    assert raw.dtype == np.float32 and raw.shape == (30, 6)
    kept = wf.read_frame_points(tmp_path / "0000.npy")
    assert kept.shape == (26, 5)
    np.testing.assert_allclose(kept[:, 3], np.tanh(pts[4:, 3]), rtol=1e-6)
    np.testing.assert_array_equal(kept[:, [0, 1, 2, 4]], pts[4:, [0, 1, 2, 4]])
    everything = wf.read_frame_points(tmp_path / "0000.npy", drop_nlz=False, tanh_intensity=False)
    np.testing.assert_array_equal(everything, pts)
    with pytest.raises(ValueError, match="N, 6"):
        np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.float32))
        wf.read_frame_points(tmp_path / "bad.npy")


def test_infos_round_trip_and_sampled_interval(tmp_path):
    layout = wf.WaymoLayout(tmp_path)
    rng = np.random.default_rng(0)
    train = _write_segment(layout, "segment-a", 5, rng) + _write_segment(layout, "segment-b", 4, rng)
    wf.write_infos(layout, "train", train)
    wf.write_image_set(layout.image_set_path("train"), ["segment-a", "segment-b", "segment-missing"])
    assert layout.image_set_path("train").read_text().splitlines()[0] == "segment-a.tfrecord"

    infos = wf.read_infos(layout, "train")
    assert len(infos) == 9
    first = infos[0]
    assert first["point_cloud"] == {"num_features": 5, "lidar_sequence": "segment-a", "sample_idx": 0}
    assert first["frame_id"] == "segment-a_000" and first["pose"].dtype == np.float32
    annos = first["annos"]
    assert list(annos["name"]) == ["Vehicle", "Pedestrian"]  # Sign dropped
    assert annos["gt_boxes_lidar"].shape == (2, 7)
    np.testing.assert_allclose(annos["dimensions"], [[4.5, 1.8, 1.5], [0.6, 0.6, 1.7]])
    np.testing.assert_array_equal(annos["num_points_in_gt"], [120, 4])
    np.testing.assert_array_equal(wf.difficulty_level(annos), [1, 2])  # 4 points -> LEVEL_2

    sampled = wf.read_infos(layout, "train", sampled_interval=3)
    assert [i["frame_id"] for i in sampled] == ["segment-a_000", "segment-a_003", "segment-b_001"]
    from_segments = wf.read_infos(layout, "train", sampled_interval=2, from_segments=True)
    assert [i["frame_id"] for i in from_segments] == [i["frame_id"] for i in infos[::2]]

    points = wf.load_frame(layout, infos[6])  # segment-b frame 1: 51 points, 6 in a no-label zone
    assert points.shape == (45, 5)
    with open(layout.infos_path("train"), "rb") as f:
        assert len(pickle.load(f)) == 9  # readers do not modify the file
    with pytest.raises(ValueError, match="sampled_interval"):
        wf.read_infos(layout, "train", sampled_interval=0)


def test_errors_name_the_problem(tmp_path):
    layout = wf.WaymoLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match="waymo_infos_val.pkl"):
        wf.read_infos(layout, "val")
    with pytest.raises(ValueError, match="one entry per object"):
        wf.make_annos(["Vehicle"], np.zeros((2, 7)), [1, 2])
    with pytest.raises(ValueError, match="make_annos"):
        wf.make_frame_info("s", 0, np.eye(4), {"name": np.array([])})
