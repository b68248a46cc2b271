"""KITTI infos: the real frame 000008 and small synthetic KITTI roots written with kitti_format's writers."""
from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparsekd_core.data import kitti_format as kf
from sparsekd_core.data.gt_database import GtDatabase
from sparsekd_core.data.infos import (
    dbinfos_relpath, frame_info_from_dict, frame_info_to_dict, infos_path, load_points, load_split,
)
from sparsekd_core.data.kitti_infos import create_kitti_infos, kitti_frame_ids, kitti_frame_info
from sparsekd_core.geometry.boxes import points_in_boxes

KITTI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti"
SIZES = {"Car": (4.2, 1.8, 1.5), "Van": (5.0, 2.0, 2.1), "Pedestrian": (0.7, 0.7, 1.75), "Cyclist": (1.8, 0.6, 1.7)}


def copy_real_frame(dest: Path) -> Path:
    """The shared data is read-only: infos and the database are written next to a copy."""
    for sub in ("velodyne_reduced", "label_2", "calib"):
        (dest / "training" / sub).mkdir(parents=True)
        for f in (KITTI / "training" / sub).iterdir():
            shutil.copy(f, dest / "training" / sub / f.name)
    return dest


def write_synthetic_kitti(root: Path, frame_ids, rng: np.random.Generator, image_sets: dict | None = None,
                          classes=("Car", "Car", "Pedestrian", "Cyclist", "Van")):
    """Frames with the real frame's calib: objects in front of the car on a ground plane, points on a
    ground grid and inside every object, one DontCare region. Returns {frame id: LiDAR boxes written}."""
    calib = kf.read_calib(KITTI / "training" / "calib" / "000008.txt")
    written = {}
    for fid in frame_ids:
        boxes, pts, objects = [], [], []
        for k, name in enumerate(classes):
            l, w, h = SIZES[name]
            x = 8.0 + 8.0 * k + rng.uniform(-1, 1)
            y = rng.uniform(-0.45, 0.45) * x  # inside the camera's field of view
            box = np.array([x, y, -1.73 + h / 2, l, w, h, rng.uniform(-np.pi, np.pi)])
            inner = rng.uniform(-0.4, 0.4, size=(int(rng.integers(30, 90)), 3)) * box[3:6]
            c, s = np.cos(box[6]), np.sin(box[6])
            pts.append(np.stack([inner[:, 0] * c - inner[:, 1] * s, inner[:, 0] * s + inner[:, 1] * c, inner[:, 2]], 1)
                       + box[:3])
            objects.append(kf.make_object(name, box, calib))
            boxes.append(box)
        gx, gy = np.meshgrid(np.arange(-10, 80, 0.5), np.arange(-45, 45, 0.5))  # reaches past KITTI's range
        pts.append(np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, -1.75)], 1))
        xyz = np.concatenate(pts)
        points = np.concatenate([xyz, rng.uniform(0, 1, (len(xyz), 1))], 1).astype(np.float32)
        objects.append(kf.KittiObject("DontCare", -1, -1, -10, [800, 160, 830, 185], [-1, -1, -1],
                                      [-1000, -1000, -1000], -10))
        kf.write_points(root / "training" / "velodyne" / f"{fid}.bin", points)
        kf.write_label(root / "training" / "label_2" / f"{fid}.txt", objects)
        kf.write_calib(root / "training" / "calib" / f"{fid}.txt", calib)
        written[fid] = np.stack(boxes)
    for split, ids in (image_sets or {}).items():
        kf.write_image_set(root / "ImageSets" / f"{split}.txt", ids)
    return written


def test_real_frame_without_imagesets(caplog):
    with caplog.at_level(logging.WARNING):
        assert kitti_frame_ids(KITTI, "train") == ["000008"]
    assert "no" in caplog.text and "ImageSets" in caplog.text and "all 1 frames" in caplog.text
    info = kitti_frame_info(KITTI, "000008")
    a = info.annos
    assert info.lidar_path == "training/velodyne_reduced/000008.bin"
    assert list(a.names) == ["Car"] * 6 + ["DontCare"] * 4
    points = load_points(info, KITTI)
    assert points.shape == (17238, 4) and info.point_features == ("x", "y", "z", "intensity")
    cars = a.names == "Car"
    counted = points_in_boxes(points, a.boxes_lidar[cars]).sum(axis=0)
    assert np.all(counted > 0)  # every car, converted to the LiDAR frame, holds lidar points
    np.testing.assert_array_equal(a.num_points_in_gt[cars], counted)
    assert np.all(a.num_points_in_gt[~cars] == -1) and not a.boxes_lidar[~cars].any()
    labels = kf.read_label(KITTI / "training" / "label_2" / "000008.txt")
    np.testing.assert_array_equal(a.difficulty, kf.object_difficulty(labels))
    # By the official rule from the label lines: car 0 is 88 % truncated (no difficulty), the last car is
    # 62 px tall, unoccluded and untruncated (easy).
    assert a.difficulty[0] == -1 and a.difficulty[5] == 0
    np.testing.assert_allclose(a.bbox, np.stack([o.bbox for o in labels]), atol=1e-3)
    np.testing.assert_allclose(a.truncated[:3], [0.88, 0.0, 0.34], atol=1e-6)
    np.testing.assert_array_equal(a.occluded[:3], [3, 1, 3])
    # Boxes in front of the sensor at plausible heights (LiDAR frame, z up, sensor 1.73 m above ground).
    assert np.all(a.boxes_lidar[cars, 0] > 0) and np.all(np.abs(a.boxes_lidar[cars, 2] + 0.8) < 0.4)


def test_pickled_form_round_trips_and_projects_onto_the_label_boxes():
    info = kitti_frame_info(KITTI, "000008")
    back = frame_info_from_dict(pickle.loads(pickle.dumps(frame_info_to_dict(info))))
    for field in ("names", "boxes_lidar", "num_points_in_gt", "difficulty", "bbox", "truncated", "occluded", "alpha"):
        np.testing.assert_array_equal(getattr(back.annos, field), getattr(info.annos, field))
    for m in ("P2", "R0_rect", "Tr_velo_to_cam"):
        np.testing.assert_array_equal(getattr(back.calib, m), getattr(info.calib, m))
    assert (back.frame_id, back.lidar_path, back.image_shape) == ("000008", info.lidar_path, (375, 1242))
    gt = back.annos.as_dict()
    assert set(gt) == {"names", "boxes_lidar", "num_points_in_gt", "difficulty", "bbox", "truncated", "occluded",
                       "alpha"} and all(len(v) == 10 for v in gt.values())
    # 2D/3D consistency through the cached calib: untruncated cars project onto their label's 2D box.
    a = back.annos
    sel = (a.names == "Car") & (a.truncated < 0.1)
    projected, valid = kf.boxes_to_image_bbox(a.boxes_lidar[sel], back.calib)
    assert valid.all() and sel.sum() == 4  # the label has 4 cars with truncation 0
    for p, q in zip(projected, a.bbox[sel]):
        inter = max(0, min(p[2], q[2]) - max(p[0], q[0])) * max(0, min(p[3], q[3]) - max(p[1], q[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
        assert inter / union > 0.7


def test_create_infos_and_database_on_the_real_frame(tmp_path):
    root = copy_real_frame(tmp_path / "kitti")
    summaries = create_kitti_infos(root, splits=("train",), workers=1, progress=False)
    assert len(summaries) == 1
    s = summaries[0]
    assert (s.frames, s.objects, s.db_objects) == (1, {"Car": 6, "DontCare": 4}, {"Car": 6})
    assert s.infos_path == infos_path(root, "kitti", "train") and s.infos_path.is_file()
    assert "Car 6" in "\n".join(s.lines())
    (info,) = load_split(root, "kitti", "train")
    db = GtDatabase.load(dbinfos_relpath("kitti"), root)
    points = load_points(info, root)
    inside = points_in_boxes(points, info.annos.boxes_lidar)
    for obj in db.objects["Car"]:
        assert obj.num_points == info.annos.num_points_in_gt[obj.gt_idx] == len(db.points(obj))
        pts = db.points(obj)
        pts[:, :3] += obj.box[:3]
        np.testing.assert_allclose(pts, points[inside[:, obj.gt_idx]], atol=1e-5)  # the frame's rows, in order


def test_synthetic_root_with_imagesets(tmp_path):
    rng = np.random.default_rng(0)
    written = write_synthetic_kitti(tmp_path, ["000000", "000001", "000002"], rng,
                                    {"train": ["000000", "000002"], "val": ["000001"]})
    summaries = {s.split: s for s in create_kitti_infos(tmp_path, workers=2, progress=False)}
    assert summaries["train"].frames == 2 and summaries["val"].frames == 1
    assert summaries["train"].objects == {"Car": 4, "Cyclist": 2, "DontCare": 2, "Pedestrian": 2, "Van": 2}
    assert summaries["train"].db_objects == {"Car": 4, "Pedestrian": 2, "Cyclist": 2, "Van": 2}
    assert summaries["val"].db_objects is None
    val = load_split(tmp_path, "kitti", "val")
    assert [i.frame_id for i in val] == ["000001"] and val[0].lidar_path == "training/velodyne/000001.bin"
    a = val[0].annos
    care = a.names != "DontCare"
    # The label file has 2 decimals: boxes come back within 1 cm / 0.01 rad.
    np.testing.assert_allclose(a.boxes_lidar[care, :6], written["000001"][:, :6], atol=2e-2)
    np.testing.assert_allclose(np.cos(a.boxes_lidar[care, 6] - written["000001"][:, 6]), 1, atol=1e-3)
    assert np.all(a.num_points_in_gt[care] >= 30)
    assert np.all(a.difficulty[care] >= 0)  # near, unoccluded, untruncated objects have a difficulty


def test_openpcdet_infos_load(tmp_path):
    """OpenPCDet's KITTI infos: gt_boxes_lidar without DontCare rows, 4x4 calib, no lidar_path."""
    rng = np.random.default_rng(1)
    write_synthetic_kitti(tmp_path, ["000003"], rng)
    ours = frame_info_to_dict(kitti_frame_info(tmp_path, "000003"))
    theirs = {k: v for k, v in ours.items()}
    theirs["point_cloud"] = {"num_features": 4, "lidar_idx": "000003"}
    theirs["annos"] = dict(ours["annos"], gt_boxes_lidar=ours["annos"]["gt_boxes_lidar"][:-1])
    theirs["calib"] = {k: ours["calib"][k] for k in ("P2", "R0_rect", "Tr_velo_to_cam")}
    info = frame_info_from_dict(theirs)
    assert info.lidar_path == "training/velodyne/000003.bin"
    np.testing.assert_array_equal(info.annos.boxes_lidar, kitti_frame_info(tmp_path, "000003").annos.boxes_lidar)
    assert load_points(info, tmp_path).shape[1] == 4


def test_missing_root_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="--root"):
        kitti_frame_ids(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="sparsekd-data"):
        load_split(tmp_path, "kitti", "train")


def test_cli_builds_and_summarises(tmp_path, capsys):
    from sparsekd_core.cli.data import main

    root = copy_real_frame(tmp_path / "kitti")
    assert main(["kitti", "--root", str(root), "--splits", "train", "val", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "kitti train: 1 frames, objects: Car 6, DontCare 4" in out
    assert "kitti train gt database: Car 6" in out and "kitti val: 1 frames" in out
    assert infos_path(root, "kitti", "val").is_file() and (root / dbinfos_relpath("kitti")).is_file()
    # frames kept for measuring: val infos alone, no gt database (README's kitti_real copy)
    val_only = copy_real_frame(tmp_path / "val_only")
    assert main(["kitti", "--root", str(val_only), "--splits", "val", "--quiet"]) == 0
    assert infos_path(val_only, "kitti", "val").is_file() and not (val_only / dbinfos_relpath("kitti")).exists()
    assert "no gt database" in capsys.readouterr().err
    assert main(["kitti", "--root", str(tmp_path / "nowhere"), "--quiet"]) == 1
    assert "--root" in capsys.readouterr().err
    assert main(["kitti", "--root", str(root), "--interval", "5"]) == 2
