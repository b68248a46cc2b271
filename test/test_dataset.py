"""DetectionDataset and collate_samples on small synthetic KITTI and Waymo roots."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsekd_core.data.dataset import Batch, DetectionDataset, Sample, collate_samples, make_dataloader
from sparsekd_core.data.infos import dbinfos_relpath, infos_path, load_points, load_split
from sparsekd_core.data.kitti_infos import create_kitti_infos
from sparsekd_core.data.waymo_infos import create_waymo_infos
from sparsekd_core.geometry.boxes import points_in_boxes
from test_kitti_infos import write_synthetic_kitti
from test_waymo_infos import write_waymo_root

KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")
KITTI_RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)
AUGMENT = {
    "gt_sampling": {"dbinfos_path": dbinfos_relpath("kitti"), "sample_groups": {"Car": 6, "Pedestrian": 4},
                    "min_points": {"Car": 5, "Pedestrian": 5}, "filter_difficulty": [-1]},
    "flip_axes": ["x"], "rotation_range": [-0.78, 0.78], "scale_range": [0.95, 1.05],
}


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    ids = [f"{i:06d}" for i in range(8)]
    write_synthetic_kitti(root, ids, np.random.default_rng(0), {"train": ids[:6], "val": ids[6:]})
    create_kitti_infos(root, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def waymo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo")
    write_waymo_root(root, frames=2)
    create_waymo_infos(root, splits=("train",), workers=1, progress=False)
    return root


def kitti_dataset(root, training=True, augment=AUGMENT, split="train", seed=0):
    return DetectionDataset(infos_path(root, "kitti", split), root, KITTI_CLASSES, ("x", "y", "z", "intensity"),
                            KITTI_RANGE, augment, training, seed)


def test_eval_sample_is_cropped_filtered_and_labelled(kitti_root):
    ds = kitti_dataset(kitti_root, training=False, split="val")
    info = ds.infos[0]
    s = ds[0]
    assert isinstance(s, Sample) and s.frame_id == info.frame_id == "000006"
    lo, hi = np.array(KITTI_RANGE[:3]), np.array(KITTI_RANGE[3:])
    raw = load_points(info, kitti_root)
    in_range = np.all((raw[:, :3] >= lo) & (raw[:, :3] < hi), axis=1)
    assert 0 < len(s.points) == in_range.sum() < len(raw)
    assert s.points.dtype == np.float32 and s.points.shape[1] == 4
    # Van and DontCare are dropped, Car/Pedestrian/Cyclist labelled 0/1/2 in the order of class_names.
    names = info.annos.names
    keep = np.isin(names, KITTI_CLASSES)
    np.testing.assert_array_equal(s.gt_boxes, info.annos.boxes_lidar[keep])
    np.testing.assert_array_equal(s.gt_labels, [KITTI_CLASSES.index(n) for n in names[keep]])
    assert s.gt_labels.dtype == np.int64 and list(s.gt_labels) == [0, 0, 1, 2]
    # Evaluation mode is deterministic (no augmentation).
    np.testing.assert_array_equal(ds[0].points, s.points)


def test_training_sample_is_augmented_reproducibly(kitti_root):
    ds = kitti_dataset(kitti_root)
    a, b = ds[1], ds[1]
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.gt_boxes, b.gt_boxes)
    ds.set_epoch(1)
    c = ds[1]
    assert not np.array_equal(a.gt_boxes, c.gt_boxes)
    other_seed = kitti_dataset(kitti_root, seed=5)[1]
    assert not np.array_equal(a.gt_boxes, other_seed.gt_boxes)
    for s in (a, c):
        assert np.sum(s.gt_labels == 0) > 2  # cars pasted from the database (the scene has 2)
        assert np.sum(s.gt_labels == 0) <= 6 and np.sum(s.gt_labels == 1) <= 4
        assert np.all((s.gt_labels >= 0) & (s.gt_labels < 3))
        assert np.all((s.gt_boxes[:, 0] >= 0) & (s.gt_boxes[:, 0] < 70.4) & (np.abs(s.gt_boxes[:, 1]) < 40))
        assert np.all(points_in_boxes(s.points, s.gt_boxes).sum(axis=0) >= 5)  # every box has its points
        assert np.all((s.points[:, 2] >= -3) & (s.points[:, 2] < 1))


def test_waymo_features_and_subset(waymo_root):
    full = DetectionDataset(infos_path(waymo_root, "waymo", "train"), waymo_root, ("Vehicle", "Pedestrian", "Cyclist"),
                            ("x", "y", "z", "intensity", "elongation"), (-75.2, -75.2, -2, 75.2, 75.2, 4),
                            {"flip_axes": ["x", "y"]}, training=True)
    s = full[0]
    assert s.points.shape[1] == 5
    assert np.all((s.points[:, 3] >= 0) & (s.points[:, 3] < 1))  # tanh-squashed intensity
    assert sorted(s.gt_labels.tolist()) == [0, 0, 1, 2]
    subset = DetectionDataset(load_split(waymo_root, "waymo", "train"), waymo_root, ("Vehicle",),
                              ("x", "y", "z", "intensity"), (-75.2, -75.2, -2, 75.2, 75.2, 4), None, training=False)
    t = subset[0]
    np.testing.assert_array_equal(t.points, load_points(subset.infos[0], waymo_root)[:, :4])  # all in range
    assert t.gt_labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match="ring"):
        DetectionDataset(subset.infos, waymo_root, ("Vehicle",), ("x", "y", "z", "ring"), (0, 0, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="max > min"):
        DetectionDataset(subset.infos, waymo_root, ("Vehicle",), ("x", "y", "z"), (0, 0, 0, 1, -1, 1))


def test_training_drops_boxes_without_points(waymo_root):
    infos = load_split(waymo_root, "waymo", "train")
    info = infos[0]
    info.annos.num_points_in_gt[0] = 0
    args = (waymo_root, ("Vehicle",), ("x", "y", "z"), (-75.2, -75.2, -2, 75.2, 75.2, 4))
    assert len(DetectionDataset([info], *args, training=True)[0].gt_boxes) == 1
    assert len(DetectionDataset([info], *args, training=False)[0].gt_boxes) == 2


def test_collate_pads_and_indexes():
    rng = np.random.default_rng(0)
    samples = [Sample(rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(m, 7)).astype(np.float32),
                      np.arange(m, dtype=np.int64) % 3, f"f{n}") for n, m in ((5, 2), (3, 0), (7, 4))]
    batch = collate_samples(samples)
    assert isinstance(batch, Batch) and batch.batch_size == 3 and batch.frame_ids == ["f5", "f3", "f7"]
    assert batch.points.shape == (15, 5) and batch.points.dtype == torch.float32
    np.testing.assert_array_equal(batch.points[:, 0].numpy(), [0] * 5 + [1] * 3 + [2] * 7)
    np.testing.assert_array_equal(batch.points[5:8, 1:].numpy(), samples[1].points)
    assert batch.gt_boxes.shape == (3, 4, 7) and batch.gt_labels.shape == (3, 4)
    assert batch.num_boxes.tolist() == [2, 0, 4]
    assert batch.gt_labels[0].tolist() == [0, 1, -1, -1] and batch.gt_labels[1].tolist() == [-1] * 4
    np.testing.assert_array_equal(batch.gt_boxes[2].numpy(), samples[2].gt_boxes)
    assert not batch.gt_boxes[0, 2:].any()
    moved = batch.to("cpu")
    assert torch.equal(moved.points, batch.points)
    with pytest.raises(ValueError, match="widths"):
        collate_samples([samples[0], Sample(np.zeros((2, 5), np.float32), np.zeros((0, 7)), np.zeros(0), "x")])


def test_dataloader_with_workers(kitti_root):
    ds = kitti_dataset(kitti_root)
    batches = list(make_dataloader(ds, batch_size=2, workers=2))
    assert [b.batch_size for b in batches] == [2, 2, 2]
    assert sorted(sum((b.frame_ids for b in batches), [])) == [f"{i:06d}" for i in range(6)]
    # Workers draw the same augmentation as the main process: it depends on (seed, epoch, index) only.
    first = batches[0]
    idx = [i.frame_id for i in ds.infos].index(first.frame_ids[0])
    expected = ds[idx]
    np.testing.assert_array_equal(first.gt_boxes[0, : first.num_boxes[0]].numpy(), expected.gt_boxes)


def test_simulated_dataset_end_to_end(tmp_path):
    """sparsekd-sim output (both layouts) -> infos + gt database -> training samples with pasted objects."""
    from sparsekd_core.data.sim.generate import generate

    for preset, fmt in (("hdl64", "kitti"), ("waymo_top", "waymo")):  # each layout with its own sensor
        generate(tmp_path, frames=2, preset=preset, fmt=fmt, seed=0, val_fraction=0.0, progress=False, workers=1)
    (kitti,) = create_kitti_infos(tmp_path / "kitti", ("train",), workers=1, progress=False)
    (waymo,) = create_waymo_infos(tmp_path / "waymo", ("train",), workers=1, progress=False)
    assert kitti.frames == waymo.frames == 2
    assert kitti.db_objects.get("Car", 0) > 0 and waymo.db_objects.get("Vehicle", 0) > 0
    for info in load_split(tmp_path / "kitti", "kitti", "train"):
        care = info.annos.names != "DontCare"
        assert np.all(info.annos.num_points_in_gt[care] >= 1)  # the sim labels only objects it hit
    cases = (("kitti", KITTI_CLASSES, ("x", "y", "z", "intensity"), KITTI_RANGE),
             ("waymo", ("Vehicle", "Pedestrian", "Cyclist"), ("x", "y", "z", "intensity", "elongation"),
              (-75.2, -75.2, -2, 75.2, 75.2, 4)))
    for layout, classes, features, pc_range in cases:
        root = tmp_path / layout
        augment = {"gt_sampling": {"dbinfos_path": dbinfos_relpath(layout), "sample_groups": {classes[0]: 40}},
                   "flip_axes": ["x"]}
        ds = DetectionDataset(infos_path(root, layout, "train"), root, classes, features, pc_range, augment)
        plain = DetectionDataset(infos_path(root, layout, "train"), root, classes, features, pc_range, None, False)
        s, p = ds[0], plain[0]
        assert s.points.shape[1] == len(features) and len(s.points) > 10000
        assert np.sum(s.gt_labels == 0) > np.sum(p.gt_labels == 0)  # objects were pasted
        assert np.all(points_in_boxes(s.points, s.gt_boxes[s.gt_labels == 0]).sum(axis=0) >= 1)
