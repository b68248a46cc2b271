"""Training on BEV windows (data/window.py, CenterPointDetector.bev_window): aligned draws, exact crops of the
maps a model computes on the whole range, targets where the cropped maps put them, and a training run on them."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.data.dataset import collate_samples
from sparsekd_core.data.window import BevWindow, common_alignment
from sparsekd_core.models.detector import bev_windows, build_detector


def small(name: str, half: float):
    """A zoo config on a +-``half`` m range (CPU-sized maps for a test)."""
    cfg = copy.deepcopy(load_model_config(name))
    r = cfg.voxelization.point_cloud_range
    cfg.voxelization.point_cloud_range = [-half, -half, r[2], half, half, r[5]]
    return cfg


def street_points(rng, n=6000, half=10.0):
    """Ground points and a few box-shaped clusters, x y z intensity."""
    ground = np.column_stack([rng.uniform(-half, half, (n, 2)), rng.normal(-1.73, 0.02, n), rng.uniform(0, 0.4, n)])
    blobs = []
    for cx, cy in rng.uniform(-half + 2, half - 2, (6, 2)):
        m = 400
        blobs.append(np.column_stack([cx + rng.uniform(-1.9, 1.9, m), cy + rng.uniform(-0.8, 0.8, m),
                                      rng.uniform(-1.7, -0.3, m), rng.uniform(0, 0.6, m)]))
    return np.concatenate([ground, *blobs]).astype(np.float32)


def test_windows_are_aligned_and_crop_points_and_boxes():
    window = BevWindow((5.12, 5.12), 2.56, (-10.24, -10.24, -3.0, 10.24, 10.24, 1.0), margin=1.0)
    rng = np.random.default_rng(0)
    offsets = np.array([window.draw(rng) for _ in range(200)])
    steps = offsets / 2.56
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-5)  # on the coarsest cell boundary
    assert offsets.min() == 0 and offsets.max() == pytest.approx(20.48 - 5.12)  # every position, inside the range
    points = np.array([[-10.0, -10.0, 0, 0], [-4.0, -4.0, 0, 0], [-4.5, -4.5, 0, 0], [1.0, 1.0, 0, 0]], np.float32)
    boxes = np.array([[-8.0, -8.0, 0, 4, 2, 1.5, 0], [-3.0, -9.0, 0, 4, 2, 1.5, 0]], np.float32)
    kept_points, moved, keep = window.apply(points, boxes, np.array([True, True]), np.array([0.0, 0.0], np.float32))
    # window [-10.24, -5.12) plus the 1 m margin is [-11.24, -4.12): the first and the third point (in the margin)
    np.testing.assert_array_equal(kept_points, points[[0, 2]])
    np.testing.assert_array_equal(keep, [True, False])  # the second box's centre is outside the window
    np.testing.assert_allclose(moved[0, :2], [-8.0, -8.0])  # offset 0: window coordinates = model coordinates
    _, moved, _ = window.apply(points, boxes, np.array([True, True]), np.array([2.56, 5.12], np.float32))
    np.testing.assert_allclose(moved[:, :2], boxes[:, :2] - [2.56, 5.12])
    with pytest.raises(ValueError, match="multiple of 2.56"):
        BevWindow((5.0, 5.12), 2.56, (-10.24, -10.24, -3.0, 10.24, 10.24, 1.0))


def test_models_of_different_grids_share_the_step_on_which_their_cells_line_up():
    """A window shared by a teacher and a student starts on a cell boundary of both maps: the least common multiple
    of their coarsest cells, which need not be the larger of the two."""
    assert common_alignment([2.56, 1.28]) == pytest.approx(2.56)  # nested: the coarser one
    assert common_alignment([2.048, 1.28]) == pytest.approx(10.24)  # 5 and 8 of them
    assert common_alignment([0.6, 0.8]) == pytest.approx(2.4)
    assert common_alignment([0.32]) == pytest.approx(0.32)
    with pytest.raises(ValueError, match="positive"):
        common_alignment([1.28, 0.0])
    # the 0.512 m student of the 0.32 m teacher: every window offset lies on both models' coarsest cell boundaries
    from sparsekd_core.train.trainer import training_window

    student_cfg = load_model_config("cp_pillar_v0.512_sim360")
    student, teacher = build_detector(student_cfg), build_detector(load_model_config("cp_pillar_sim360"))
    window = training_window(student_cfg, student, teacher)
    assert window.align == pytest.approx(10.24) and window.size == (30.72, 30.72)
    offsets = np.array([window.draw(np.random.default_rng(s)) for s in range(50)])
    for cell in (student.bev_alignment, teacher.bev_alignment):
        steps = offsets / cell
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    assert len(np.unique(offsets[:, 0])) > 1 and offsets.max() <= 81.92 - 30.72 + 1e-4
    with pytest.raises(ValueError, match="multiple of 10.24"):  # a window the two grids cannot both start
        BevWindow((25.6, 25.6), window.align, window.point_cloud_range)


@pytest.mark.parametrize("name,half,size", [("cp_pillar_v0.64_sim360", 10.24, 10.24), ("cp_voxel_s_sim360", 9.6, 9.6)])
def test_a_window_of_the_map_is_the_map_of_the_window(name, half, size):
    """The windowed forward equals the whole-range forward cropped to the window, away from the window's edges
    (where zero padding replaces the neighbours' features; the range's own edges are padded the same way)."""
    torch.manual_seed(0)
    model = build_detector(small(name, half)).eval()
    points = torch.from_numpy(street_points(np.random.default_rng(1), half=half - 0.1))
    with torch.no_grad():
        full = model([points]).head.heatmap
        offset = torch.tensor([[model.bev_alignment * 2, model.bev_alignment]], dtype=torch.float32)
        with bev_windows([model], offset, (size, size)):
            win = model([points]).head.heatmap
    cell = model.cfg.voxelization.voxel_size[0] * model.cfg.head.feature_stride  # metres per heatmap cell
    ox, oy = int(round(float(offset[0, 0]) / cell)), int(round(float(offset[0, 1]) / cell))
    h, w = win.shape[-2:]
    assert (h, w) == (int(round(size / cell)),) * 2
    crop = full[..., oy:oy + h, ox:ox + w]
    edge = 6 if model.cfg.is_pillar else 3  # receptive field of the 2D backbone + head, in output cells
    inner = (slice(None), slice(None), slice(edge, h - edge), slice(edge, w - edge))
    assert win[inner].numel() > 0
    torch.testing.assert_close(win[inner], crop[inner], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(win, crop, atol=1e-4)  # the edges do differ: the test sees the crop


def test_targets_in_window_coordinates_land_on_the_cropped_map():
    model = build_detector(small("cp_pillar_v0.64_sim360", 10.24))
    box = torch.tensor([[[3.3, -2.1, -0.9, 3.9, 1.6, 1.5, 0.3]]])
    labels = torch.tensor([[0]])
    full = model.assign_targets(box, labels, (32, 32))[0]  # one task head
    offset = torch.tensor([[5.12, 2.56]])
    moved = box.clone()
    moved[..., :2] -= offset
    win = model.assign_targets(moved, labels, (16, 16))[0]
    ox, oy = 8, 4  # 5.12 / 0.64, 2.56 / 0.64
    torch.testing.assert_close(win.heatmap, full.heatmap[..., oy:oy + 16, ox:ox + 16])
    torch.testing.assert_close(win.boxes[0, 0], full.boxes[0, 0])  # same offsets, z, size, heading codes
    assert int(win.indices[0, 0]) == (int(full.indices[0, 0]) // 32 - oy) * 16 + int(full.indices[0, 0]) % 32 - ox


TINY_PAIR = {"student": """\
base: cp_pillar_v0.64_sim360
voxelization:
  point_cloud_range: [-10.24, -10.24, -3.0, 10.24, 10.24, 1.0]
train: {epochs: 1, batch_size: 2, bev_window: [5.12, 5.12], precise_bn_batches: 1}
""", "teacher": """\
base: cp_pillar_sim360
voxelization:
  point_cloud_range: [-10.24, -10.24, -3.0, 10.24, 10.24, 1.0]
train: {epochs: 1, batch_size: 2}
"""}


def distil_on_windows(tmp_path, monkeypatch, student_yaml: str, teacher_yaml: str):
    """A SparseKD sparsekd-train run of the two configs on a toy KITTI set in ``tmp_path``: (student config, run
    summary, the (voxel size, heatmap shape) of every forward in training mode or on a window)."""
    from sparsekd_core.checkpoint import save_checkpoint
    from sparsekd_core.models.detector import CenterPointDetector
    from sparsekd_core.train.synthetic import write_toy_kitti
    from sparsekd_core.train.trainer import Trainer, TrainOptions

    torch.set_num_threads(1)
    (tmp_path / "student.yaml").write_text(student_yaml)
    (tmp_path / "teacher.yaml").write_text(teacher_yaml)
    student_cfg = load_model_config(tmp_path / "student.yaml")
    save_checkpoint(tmp_path / "teacher.pth", build_detector(load_model_config(tmp_path / "teacher.yaml")))
    write_toy_kitti(tmp_path / "kitti", student_cfg.voxelization.point_cloud_range, student_cfg.class_names,
                    n_train=4, n_val=1)
    maps = []
    original = CenterPointDetector.forward_voxels

    def recording(self, vb):
        out = original(self, vb)
        if self.training or self.bev_window is not None:
            maps.append((self.cfg.voxelization.voxel_size[0], tuple(out.head.heatmap.shape[-2:])))
        return out

    monkeypatch.setattr(CenterPointDetector, "forward_voxels", recording)
    opts = TrainOptions(model=str(tmp_path / "student.yaml"), data=str(tmp_path / "kitti"), out=str(tmp_path / "run"),
                        teacher=str(tmp_path / "teacher.pth"), kd="sparsekd", workers=0, device="cpu",
                        evaluate=False, progress=False, augment=None, seed=3)
    return student_cfg, Trainer(opts).run(), maps


def test_distilling_on_windows(tmp_path, monkeypatch):
    """sparsekd-train with train.bev_window: windows aligned to the coarser student's cells, drawn per sample
    (reproducibly), and a SparseKD run in which student and teacher both compute the windows' maps."""
    from sparsekd_core.train.data import DataSource, build_datasets
    from sparsekd_core.train.trainer import training_window

    student_cfg, summary, maps = distil_on_windows(tmp_path, monkeypatch, TINY_PAIR["student"], TINY_PAIR["teacher"])
    teacher = build_detector(load_model_config(tmp_path / "teacher.yaml"))
    window = training_window(student_cfg, build_detector(student_cfg), teacher)
    assert window.align == pytest.approx(2.56) and window.size == (5.12, 5.12)  # the student's 4 x 0.64 m
    assert summary["status"] == "completed"
    # precise BN: the final weights' BatchNorm statistics come from a batch of whole frames, not the windows
    from sparsekd_core.checkpoint import read_checkpoint

    last = read_checkpoint(sorted((tmp_path / "run").glob("ckpt_*.pth"))[-1])["state_dict"]
    final = read_checkpoint(tmp_path / "run" / "final.pth")["state_dict"]
    bn = [k for k in final if k.endswith("running_var")]
    assert bn and any(not torch.equal(final[k], last[k]) for k in bn)
    assert all(torch.equal(final[k], last[k]) for k in final if k.endswith("weight"))
    # 2 steps; each: the student's 8 x 8 window map (5.12 m / 0.64 m) and the teacher's 16 x 16 (/ 0.32 m)
    # (precise BN then runs the student on whole 32 x 32 maps, in training mode)
    assert sorted(set(maps)) == [(0.32, (16, 16)), (0.64, (8, 8)), (0.64, (32, 32))]
    assert maps.count((0.64, (8, 8))) == 2 and maps.count((0.32, (16, 16))) == 2

    train_ds, _ = build_datasets(DataSource(tmp_path / "kitti", "kitti"), student_cfg, augment=None, need_val=False)
    train_ds.window = window
    first, again = train_ds[0], train_ds[0]
    np.testing.assert_array_equal(first.window_offset, again.window_offset)  # drawn from (seed, epoch, frame)
    corner = np.array(student_cfg.voxelization.point_cloud_range[:2]) + first.window_offset
    assert np.all(first.points[:, :2] >= corner - window.margin - 1e-4)
    assert np.all(first.points[:, :2] < corner + 5.12 + window.margin + 1e-4)
    assert np.all((first.gt_boxes[:, :2] >= student_cfg.voxelization.point_cloud_range[:2])
                  & (first.gt_boxes[:, :2] < np.array(student_cfg.voxelization.point_cloud_range[:2]) + 5.12))
    batch = collate_samples([train_ds[0], train_ds[1]])
    assert batch.window_offset.shape == (2, 2)
    with pytest.raises(ValueError, match="some samples have a BEV window"):
        collate_samples([first, type(first)(first.points, first.gt_boxes, first.gt_labels, "x")])


def test_training_step_benchmark_times_a_window_as_training_does(tmp_path, monkeypatch):
    """sparsekd-bench --train on a model that trains on windows: the step is timed on one window (the maps the
    student and the teacher compute are the window's), with the synthetic scene laid out inside it."""
    from sparsekd_core.models.detector import CenterPointDetector
    from sparsekd_core.train.bench import measure_train_step

    torch.set_num_threads(1)
    for name, text in TINY_PAIR.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    seen = []
    forward_voxels = CenterPointDetector.forward_voxels

    def spy(self, vb):  # the BEV map each model computes
        out = forward_voxels(self, vb)
        seen.append((self.cfg.name, tuple(out.bev_input.shape[-2:])))
        return out

    monkeypatch.setattr(CenterPointDetector, "forward_voxels", spy)
    r = measure_train_step(str(tmp_path / "student.yaml"), str(tmp_path / "teacher.yaml"), "sparsekd", batch_size=2,
                           steps=1, warmup=0, n_points=500, device="cpu", amp=False)
    assert r["bev_window_m"] == [5.12, 5.12] and r["step_s_median"] > 0
    assert 500 <= r["points_per_sample"] <= 500 + 4 * 60
    # 5.12 m windows: 8 x 8 student cells of 0.64 m, 16 x 16 teacher cells of 0.32 m (the whole range: 32 and 64)
    assert sorted(set(seen)) == [("student", (8, 8)), ("teacher", (16, 16))]


def test_distilling_a_student_whose_grid_does_not_nest_in_the_teachers(tmp_path, monkeypatch):
    """sparsekd-train --kd sparsekd with a 0.512 m student of a 0.32 m teacher on windows: both compute their
    window's map (20 x 20 and 32 x 32 cells of 10.24 m), the KD heatmap term is on, and the run completes (precise
    BN then runs the student on its whole 40 x 40 map)."""
    student_yaml = TINY_PAIR["student"].replace("cp_pillar_v0.64_sim360", "cp_pillar_v0.512_sim360")
    _, summary, maps = distil_on_windows(tmp_path, monkeypatch,
                                         student_yaml.replace("bev_window: [5.12, 5.12]", "bev_window: [10.24, 10.24]"),
                                         TINY_PAIR["teacher"])
    assert summary["status"] == "completed"
    assert sorted(set(maps)) == [(0.32, (32, 32)), (0.512, (20, 20)), (0.512, (40, 40))]
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    kd = [r["loss/kd_hm"] for r in logged if "loss/kd_hm" in r]
    assert kd and all(np.isfinite(kd)) and max(kd) > 0  # the teacher's heatmap, resized onto, reached the loss
