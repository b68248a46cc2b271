"""gt database: objects cropped with their points, stored relative to the box centre, read back exactly."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from sparsekd_core.data.gt_database import DbFrame, GtDatabase, GtDatabaseWriter, build_gt_database
from sparsekd_core.geometry.boxes import points_in_boxes


def synthetic_frame(frame_id: str, rng: np.random.Generator, names=("Car", "Pedestrian", "DontCare", "Cyclist"),
                    num_features: int = 4) -> DbFrame:
    """Boxes on a 10 m grid with random yaw; 40..80 points inside each, plus background clutter."""
    boxes, pts = [], []
    for i, name in enumerate(names):
        dims = {"Car": (4.2, 1.8, 1.5), "Pedestrian": (0.7, 0.7, 1.7), "Cyclist": (1.8, 0.6, 1.7)}.get(name, (1, 1, 1))
        box = np.array([10.0 * (i + 1), rng.uniform(-5, 5), -0.8, *dims, rng.uniform(-np.pi, np.pi)], np.float32)
        boxes.append(box)
        local = rng.uniform(-0.45, 0.45, size=(int(rng.integers(40, 80)), 3)) * box[3:6]
        c, s = np.cos(box[6]), np.sin(box[6])
        world = np.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c, local[:, 2]], 1)
        pts.append(world + box[:3])
    clutter = rng.uniform([-60, -40, -3], [60, 40, 2], size=(2000, 3))
    xyz = np.concatenate(pts + [clutter]).astype(np.float32)
    feats = rng.uniform(0, 1, size=(len(xyz), num_features - 3)).astype(np.float32)
    return DbFrame(frame_id, np.concatenate([xyz, feats], 1), np.stack(boxes), list(names),
                   np.array([0, 1, -1, 2][: len(names)]))


def test_objects_hold_exactly_their_box_points(tmp_path):
    rng = np.random.default_rng(0)
    frames = [synthetic_frame(f"{i:06d}", rng) for i in range(3)]
    dbinfos = build_gt_database(frames, tmp_path, "gt_database/points.bin", "dbinfos.pkl", progress=False)

    assert set(dbinfos) == {"Car", "Pedestrian", "Cyclist"}  # DontCare never enters
    assert all(len(v) == 3 for v in dbinfos.values())
    db = GtDatabase.load("dbinfos.pkl", tmp_path)
    for name, objs in db.objects.items():
        for obj in objs:
            frame = frames[int(obj.frame_id)]
            np.testing.assert_array_equal(obj.box, frame.boxes[obj.gt_idx])
            assert obj.name == frame.names[obj.gt_idx] == name
            expected = frame.points[points_in_boxes(frame.points, frame.boxes[obj.gt_idx:obj.gt_idx + 1])[:, 0]]
            stored = db.points(obj)
            assert obj.num_points == len(stored) == len(expected) >= 40
            restored = stored.copy()
            restored[:, :3] += obj.box[:3]
            np.testing.assert_allclose(restored, expected, atol=1e-5)
            assert obj.difficulty == frame.difficulty[obj.gt_idx]


def test_class_filter_and_reload_after_pickling(tmp_path):
    rng = np.random.default_rng(1)
    dbinfos = build_gt_database([synthetic_frame("a", rng), synthetic_frame("b", rng)], tmp_path,
                                "db.bin", tmp_path / "sub" / "dbinfos.pkl", classes=["Car"], progress=False)
    assert list(dbinfos) == ["Car"] and len(dbinfos["Car"]) == 2
    db = GtDatabase.load(tmp_path / "sub" / "dbinfos.pkl", tmp_path)
    first = db.points(db.objects["Car"][1])
    clone = pickle.loads(pickle.dumps(db))  # what a DataLoader worker receives: no open memory map
    assert clone._maps == {}
    np.testing.assert_array_equal(clone.points(clone.objects["Car"][1]), first)
    assert db.counts() == {"Car": 2}


def test_reads_openpcdet_per_object_files(tmp_path):
    """OpenPCDet writes one .bin per object and no offset/feature count: the layout loads as well."""
    pts = np.arange(15, dtype=np.float32).reshape(3, 5)
    pts.tofile(tmp_path / "seg_0_Vehicle_0.bin")
    record = {"name": "Vehicle", "path": "seg_0_Vehicle_0.bin", "sequence_name": "seg", "sample_idx": 0,
              "gt_idx": 0, "box3d_lidar": np.zeros(9, np.float32), "num_points_in_gt": 3, "difficulty": 1}
    with open(tmp_path / "db.pkl", "wb") as f:
        pickle.dump({"Vehicle": [record]}, f)
    db = GtDatabase.load("db.pkl", tmp_path)
    obj = db.objects["Vehicle"][0]
    assert obj.box.shape == (7,)  # the velocity columns are kept apart
    np.testing.assert_array_equal(obj.velocity, [0.0, 0.0])
    np.testing.assert_array_equal(db.points(obj), pts)


def test_velocities_are_stored_after_the_box_and_read_back(tmp_path):
    """With velocities a record's box3d_lidar is (9,), x y z dx dy dz yaw vx vy, as OpenPCDet's nuScenes
    'withvelo' database; a NaN velocity there (the devkit could not estimate it) reads as 0."""
    rng = np.random.default_rng(3)
    frame = synthetic_frame("a", rng, names=("Car", "Pedestrian"))
    frame.velocity = np.array([[4.0, -1.5], [0.5, 0.25]], np.float32)
    dbinfos = build_gt_database([frame], tmp_path, "db.bin", "dbinfos.pkl", progress=False)
    np.testing.assert_array_equal(dbinfos["Car"][0]["box3d_lidar"], [*frame.boxes[0], 4.0, -1.5])
    db = GtDatabase.load("dbinfos.pkl", tmp_path)
    np.testing.assert_array_equal(db.objects["Car"][0].box, frame.boxes[0])
    np.testing.assert_array_equal(db.objects["Car"][0].velocity, [4.0, -1.5])
    np.testing.assert_array_equal(db.objects["Pedestrian"][0].velocity, [0.5, 0.25])
    record = {**dbinfos["Car"][0], "box3d_lidar": np.array([*frame.boxes[0], np.nan, np.nan], np.float32)}
    with open(tmp_path / "nan.pkl", "wb") as f:
        pickle.dump({"Car": [record]}, f)
    np.testing.assert_array_equal(GtDatabase.load("nan.pkl", tmp_path).objects["Car"][0].velocity, [0.0, 0.0])
    # Without velocities the records stay (7,) boxes and the objects have none.
    plain = build_gt_database([synthetic_frame("b", rng)], tmp_path / "p", "db.bin", "dbinfos.pkl", progress=False)
    assert plain["Car"][0]["box3d_lidar"].shape == (7,)
    assert GtDatabase.load("dbinfos.pkl", tmp_path / "p").objects["Car"][0].velocity is None


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="sparsekd-data"):
        GtDatabase.load("missing.pkl", tmp_path)
    rng = np.random.default_rng(2)
    with GtDatabaseWriter(tmp_path, "x.bin") as writer:
        writer.add(synthetic_frame("a", rng, num_features=4))
        with pytest.raises(ValueError, match="same columns"):
            writer.add(synthetic_frame("b", rng, num_features=5))
        bad = synthetic_frame("c", rng)
        bad.names = bad.names[:2]
        with pytest.raises(ValueError, match="must match"):
            writer.add(bad)
        bad = synthetic_frame("d", rng)
        bad.velocity = np.zeros((2, 2))
        with pytest.raises(ValueError, match="2 velocities; they must match"):
            writer.add(bad)
