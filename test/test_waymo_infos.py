"""Waymo infos from a small processed layout written with waymo_format's writers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.gt_database import GtDatabase
from sparsekd_core.data.infos import dbinfos_relpath, load_points, load_split
from sparsekd_core.data.waymo_infos import build_waymo_infos, create_waymo_infos, read_split_dicts
from sparsekd_core.geometry.boxes import points_in_boxes

# name, dims, points inside, labelled difficulty
OBJECTS = (("Vehicle", (4.5, 1.9, 1.6), 80, 0), ("Vehicle", (5.0, 2.0, 2.0), 4, 0),
           ("Pedestrian", (0.8, 0.8, 1.8), 30, 2), ("Cyclist", (1.8, 0.7, 1.7), 25, 1), ("Sign", (0.5, 0.2, 0.8), 9, 0))


def write_waymo_root(root: Path, segments=("seg_a", "seg_b"), frames: int = 4, seed: int = 0,
                     split_pickle: bool = True) -> dict[str, np.ndarray]:
    """Each frame: the OBJECTS on a line (random y/yaw), points inside each plus a ground grid whose
    second half lies in a no-label zone, raw intensity 0..3. Returns {frame id: raw (N, 6) points}."""
    rng = np.random.default_rng(seed)
    layout = wf.WaymoLayout(root)
    raw_points, all_infos = {}, []
    for seg in segments:
        seg_infos = []
        for idx in range(frames):
            boxes, pts = [], []
            for k, (_, dims, n, _) in enumerate(OBJECTS):
                box = np.array([-30.0 + 12 * k, rng.uniform(-10, 10), dims[2] / 2, *dims, rng.uniform(-3, 3)])
                inner = rng.uniform(-0.4, 0.4, size=(n, 3)) * box[3:6]
                c, s = np.cos(box[6]), np.sin(box[6])
                pts.append(np.stack([inner[:, 0] * c - inner[:, 1] * s, inner[:, 0] * s + inner[:, 1] * c,
                                     inner[:, 2]], 1) + box[:3])
                boxes.append(box)
            gx, gy = np.meshgrid(np.arange(-60, 60, 1.0), np.arange(-40, 40, 1.0))
            pts.append(np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, -0.05)], 1))
            xyz = np.concatenate(pts)
            nlz = np.where(xyz[:, 1] > 20, 1.0, -1.0)  # a no-label zone on the left
            nlz[: sum(o[2] for o in OBJECTS)] = -1
            feats = np.column_stack([rng.uniform(0, 3, len(xyz)), rng.uniform(0, 0.2, len(xyz))])
            raw = np.column_stack([xyz, feats, nlz]).astype(np.float32)
            wf.write_frame_points(layout.frame_path(seg, idx), raw)
            raw_points[wf.frame_id(seg, idx)] = raw
            annos = wf.make_annos([o[0] for o in OBJECTS], np.stack(boxes), [o[2] for o in OBJECTS],
                                  difficulty=[o[3] for o in OBJECTS])
            seg_infos.append(wf.make_frame_info(seg, idx, np.eye(4), annos, num_points=len(raw)))
        wf.write_segment_infos(layout, seg, seg_infos)
        all_infos += seg_infos
    wf.write_image_set(layout.image_set_path("train"), segments)
    if split_pickle:
        wf.write_infos(layout, "train", all_infos)
    return raw_points


def test_interval_classes_and_levels(tmp_path):
    write_waymo_root(tmp_path)
    infos = build_waymo_infos(tmp_path, "train", interval=2, workers=2, progress=False)
    assert [i.frame_id for i in infos] == [wf.frame_id(s, k) for s in ("seg_a", "seg_b") for k in (0, 2)]
    for info in infos:
        a = info.annos
        assert list(a.names) == ["Vehicle", "Vehicle", "Pedestrian", "Cyclist"]  # Sign dropped
        np.testing.assert_array_equal(a.num_points_in_gt, [80, 4, 30, 25])
        # LEVEL_2: the 4-point vehicle (<= 5 points) and the pedestrian labelled difficulty 2.
        np.testing.assert_array_equal(a.difficulty, [1, 2, 2, 1])
        assert info.point_features == ("x", "y", "z", "intensity", "elongation")
        assert info.lidar_path == f"{wf.PROCESSED_DATA_TAG}/{info.sequence}/{info.sample_idx:04d}.npy"


def test_points_drop_no_label_zones_and_squash_intensity(tmp_path):
    raw = write_waymo_root(tmp_path, segments=("seg_a",), frames=1)
    (info,) = build_waymo_infos(tmp_path, "train", workers=1, progress=False)
    points = load_points(info, tmp_path)
    source = raw[info.frame_id]
    keep = source[:, 5] == -1
    assert keep.sum() < len(source)
    np.testing.assert_allclose(points[:, :3], source[keep, :3])
    np.testing.assert_allclose(points[:, 3], np.tanh(source[keep, 3]), rtol=1e-6)
    np.testing.assert_allclose(points[:, 4], source[keep, 4])


def test_create_writes_infos_and_database(tmp_path):
    write_waymo_root(tmp_path)
    (summary,) = create_waymo_infos(tmp_path, splits=("train",), interval=1, workers=2, progress=False)
    assert summary.frames == 8
    assert summary.objects == {"Vehicle": 16, "Pedestrian": 8, "Cyclist": 8}
    assert summary.db_objects == summary.objects
    infos = load_split(tmp_path, "waymo", "train")
    assert len(infos) == 8 and all(i.dataset == "waymo" for i in infos)
    np.testing.assert_array_equal(infos[3].annos.difficulty, [1, 2, 2, 1])
    db = GtDatabase.load(dbinfos_relpath("waymo"), tmp_path)
    by_frame = {i.frame_id: i for i in infos}
    for obj in db.objects["Vehicle"][:4] + db.objects["Cyclist"][:2]:
        pts = db.points(obj)
        assert pts.shape[1] == 5  # x y z tanh(intensity) elongation, as the scene points
        info = by_frame[obj.frame_id]
        scene = load_points(info, tmp_path)
        expected = scene[points_in_boxes(scene, obj.box[None])[:, 0]]
        pts[:, :3] += obj.box[:3]
        np.testing.assert_allclose(pts, expected, atol=1e-5)
        assert obj.difficulty == info.annos.difficulty[obj.gt_idx]


def test_segment_pickles_and_missing_counts(tmp_path):
    """Without waymo_infos_train.pkl the per-segment pickles of ImageSets are read; labels without point
    counts get them counted from the points."""
    write_waymo_root(tmp_path, split_pickle=False, frames=2)
    dicts = read_split_dicts(tmp_path, "train")
    assert len(dicts) == 4
    layout = wf.WaymoLayout(tmp_path)
    seg = wf.read_segment_infos(layout, "seg_a")
    for d in seg:
        del d["annos"]["num_points_in_gt"]
    wf.write_segment_infos(layout, "seg_a", seg)
    infos = build_waymo_infos(tmp_path, "train", workers=1, progress=False)
    counted = infos[0].annos.num_points_in_gt
    assert np.all(counted >= [80, 4, 30, 25])  # points inside, ground points at the box bottom may add
    assert infos[0].annos.difficulty[1] == 2 and infos[0].annos.difficulty[2] == 2
    np.testing.assert_array_equal(infos[2].annos.num_points_in_gt, [80, 4, 30, 25])  # seg_b untouched


def test_missing_layout_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="--root"):
        read_split_dicts(tmp_path, "val")
    write_waymo_root(tmp_path, segments=("seg_a",), frames=1)
    (tmp_path / wf.PROCESSED_DATA_TAG / "seg_a" / "0000.npy").unlink()
    with pytest.raises(FileNotFoundError, match="0000.npy"):
        build_waymo_infos(tmp_path, "train", workers=1, progress=False)


def test_cli_interval_and_no_db(tmp_path, capsys):
    from sparsekd_core.cli.data import main

    write_waymo_root(tmp_path)
    assert main(["waymo", "--root", str(tmp_path), "--splits", "train", "--interval", "4", "--no-db", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "waymo train: 2 frames, objects: Cyclist 2, Pedestrian 2, Vehicle 4" in out and "gt database" not in out
    assert not (tmp_path / dbinfos_relpath("waymo")).exists()
    assert main(["waymo", "--root", str(tmp_path), "--splits", "train", "--interval", "0"]) == 2
