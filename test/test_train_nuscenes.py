"""Training on nuScenes: the layout found and its infos built on the fly, OpenPCDet's nuScenes augmentation with the
velocity labels carried through it, and sparsekd-train runs of every nuScenes zoo model and of SparseKD between them,
evaluated with the devkit, on the tiny v1.0-mini-format set nuscenes_minimal.py writes.

The zoo models run as CPU-sized variants: the same config (base: the zoo entry) over a smaller range, with fewer
voxels per sample.

What the set gives to check against: every train object moves (2, -1, 0) m/s in the global frame (TRAIN_MOTION per
0.5 s), so every training box's speed is sqrt(5) m/s before augmentation; flips and rotations keep a speed and the
scaling multiplies speeds and extents alike, so after augmentation every box of a sample, gt-sampled ones too (the
database is cut from the same frames), moves at sqrt(5) times that sample's scale factor.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.cli.train import main as train_main
from sparsekd_core.config import load_model_config
from sparsekd_core.data.augment import AugmentConfig
from sparsekd_core.data.infos import dbinfos_relpath, infos_path
from sparsekd_core.data.nuscenes_format import NUSCENES_CLASSES
from sparsekd_core.kd.label import class_thresholds
from sparsekd_core.kd.recipe import load_kd_recipe
from sparsekd_core.train.data import DataSource, build_datasets, default_augment, detect_layout, ensure_infos
from sparsekd_core.train.recipe import load_recipe

import nuscenes_minimal as nm

TRAIN_SPEED = float(np.hypot(*nm.TRAIN_MOTION[:2])) / (nm.KEY_DT * 1e-6)  # sqrt(5) m/s
# The CPU-sized variants: each zoo model over about +-13 m (grids that still divide by the backbones' strides).
CPU_SIZED = {
    "nuscenes_cp_voxel": "[-14.4, -14.4, -5.0, 14.4, 14.4, 3.0]",
    "nuscenes_cp_voxel_s": "[-14.4, -14.4, -5.0, 14.4, 14.4, 3.0]",
    "nuscenes_cp_pillar": "[-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]",
    "nuscenes_cp_pillar_v0.3": "[-13.2, -13.2, -5.0, 13.2, 13.2, 3.0]",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nus(tmp_path_factory, shared_data):
    """The raw set, its layout found and its infos built as sparsekd-train builds them; the CPU-sized configs."""
    root = tmp_path_factory.mktemp("nuscenes_train")
    nm.write_minimal_nuscenes(root, shared_data)
    assert detect_layout(root) == "nuscenes"  # from the tables' folder, before any infos exist
    ensure_infos(DataSource(root, "nuscenes"), workers=1, progress=False)
    assert infos_path(root, "nuscenes", "train").is_file() and infos_path(root, "nuscenes", "val").is_file()
    assert (root / dbinfos_relpath("nuscenes")).is_file()
    assert detect_layout(root) == "nuscenes"  # now from the cached infos
    configs = tmp_path_factory.mktemp("nuscenes_configs")
    for name, box in CPU_SIZED.items():
        (configs / f"{name}.yaml").write_text(
            f"base: {name}\nvoxelization:\n  point_cloud_range: {box}\n  max_voxels_train: 6000\n"
            f"  max_voxels_test: 12000\n")
    return root, configs


def test_two_table_versions_need_the_one_to_train_on(tmp_path):
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "v1.0-trainval").mkdir()
    assert detect_layout(tmp_path) == "nuscenes"
    with pytest.raises(ValueError, match=r"v1.0-mini', 'v1.0-trainval'.*sparsekd-data nuscenes"):
        ensure_infos(DataSource(tmp_path, "nuscenes"), workers=1, progress=False)


def test_default_augmentation_is_openpcdets(nus):
    root, _ = nus
    aug = default_augment("nuscenes", list(NUSCENES_CLASSES), root)
    # OpenPCDet's dataset_configs/nuscenes_dataset.yaml
    assert aug["flip_axes"] == ["x", "y"]
    assert aug["rotation_range"] == [-0.3925, 0.3925] and aug["scale_range"] == [0.95, 1.05]
    assert aug["gt_sampling"] == {
        "dbinfos_path": dbinfos_relpath("nuscenes"), "filter_difficulty": [],
        "sample_groups": {"car": 2, "truck": 3, "bus": 4, "trailer": 6, "construction_vehicle": 7,
                          "pedestrian": 2, "motorcycle": 6, "bicycle": 6, "traffic_cone": 2, "barrier": 2}}
    assert AugmentConfig.from_dict(aug).gt_sampling.default_min_points == 5  # filter_by_min_points 5 for every class
    # The voxel 0.075 model's own DATA_AUGMENTOR: +-pi/4, 0.9..1.1, a 0.5 m translation, over that default.
    train, _ = build_datasets(DataSource(root, "nuscenes"), load_model_config("nuscenes_cp_voxel"), need_val=False)
    cfg = train.augment.config
    assert cfg.rotation_range == pytest.approx((-math.pi / 4, math.pi / 4))
    assert cfg.scale_range == (0.9, 1.1) and cfg.translation_std == (0.5, 0.5, 0.5)
    assert cfg.flip_axes == ("x", "y") and cfg.gt_sampling.sample_groups["construction_vehicle"] == 7
    pillar, _ = build_datasets(DataSource(root, "nuscenes"), load_model_config("nuscenes_cp_pillar"), need_val=False)
    assert pillar.augment.config.rotation_range == (-0.3925, 0.3925) and pillar.augment.config.translation_std is None


def test_training_samples_carry_velocities_through_augmentation(nus):
    root, _ = nus
    cfg = load_model_config("nuscenes_cp_voxel")
    train, _ = build_datasets(DataSource(root, "nuscenes"), cfg, need_val=False)
    plain, _ = build_datasets(DataSource(root, "nuscenes"), cfg, augment=None, need_val=False)
    base = plain[0]
    assert base.gt_boxes.shape[1] == 9 and len(base.gt_boxes) > 10
    np.testing.assert_allclose(np.hypot(base.gt_boxes[:, 7], base.gt_boxes[:, 8]), TRAIN_SPEED, rtol=1e-4)
    factors, pasted = [], 0
    for epoch in range(4):
        train.set_epoch(epoch)
        for index in range(len(train)):
            sample = train[index]
            speeds = np.hypot(sample.gt_boxes[:, 7], sample.gt_boxes[:, 8])
            factor = speeds[0] / TRAIN_SPEED
            assert 0.9 - 1e-4 <= factor <= 1.1 + 1e-4
            np.testing.assert_allclose(speeds, factor * TRAIN_SPEED, rtol=1e-4)  # one scale for the whole sample
            factors.append(factor)
            pasted += len(sample.gt_boxes) - len(plain[index].gt_boxes)
    assert np.ptp(factors) > 0.02 and pasted > 0  # scales were drawn, objects pasted (with their velocities)


def _train(args: list[str], out) -> dict:
    """sparsekd-train for 2 steps: one epoch of the 2 train frames, one per step, so the run completes (the
    devkit's evaluation of the whole val split at the end, unless --no-eval)."""
    assert train_main([*args, "--epochs", "1", "--batch-size", "1", "--max-steps", "2", "--out", str(out),
                       "--workers", "0", "--device", "cpu", "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def teachers(nus, tmp_path_factory):
    """Two steps of each CPU-sized nuScenes teacher, evaluated with the devkit at the end."""
    root, configs = nus
    out = tmp_path_factory.mktemp("nuscenes_teachers")
    runs = {}
    for name in ("nuscenes_cp_voxel", "nuscenes_cp_pillar"):
        runs[name] = _train(["--model", str(configs / f"{name}.yaml"), "--data", str(root)], out / name)
        runs[name]["path"] = out / name / "final.pth"
    return runs


@pytest.mark.parametrize("name", ["nuscenes_cp_voxel", "nuscenes_cp_pillar"])
def test_teachers_train_and_are_scored_by_the_devkit(teachers, name):
    summary = teachers[name]
    assert summary["status"] == "completed" and summary["steps"] == 2 and summary["layout"] == "nuscenes"
    assert np.isfinite(summary["final_losses"]["total"])
    result = summary["final_metrics"]["result"]
    assert result["benchmark"] == "nuscenes" and result["num_frames"] == 2  # the whole mini_val split
    assert set(summary["metrics"]) == {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE"}
    assert 0.0 <= summary["metrics"]["NDS"] <= 100.0
    ckpt = read_checkpoint(summary["path"])
    assert ckpt["config"]["head"]["velocity"] and len(ckpt["config"]["head"]["class_groups"]) == 6
    assert ckpt["config"]["sweeps"] == 10


def test_a_student_trains_alone(nus, tmp_path):
    """The pillar student without a teacher (the voxel student trains in its SparseKD recipe's test below)."""
    root, configs = nus
    summary = _train(["--model", str(configs / "nuscenes_cp_pillar_v0.3.yaml"), "--data", str(root), "--no-eval"],
                     tmp_path / "student")
    assert summary["steps"] == 2 and summary["layout"] == "nuscenes" and np.isfinite(summary["final_losses"]["total"])
    assert {"hm", "loc"} <= set(summary["final_losses"]) and "kd_hm" not in summary["final_losses"]


@pytest.mark.parametrize("recipe", ["nuscenes_cp_voxel_s_sparsekd", "nuscenes_cp_pillar_v0.3_sparsekd"])
def test_sparsekd_recipes_distil_a_student_with_velocity(nus, teachers, tmp_path, recipe):
    """The recipe's KD settings on the CPU-sized pair: TGI, label KD (teacher boxes with their velocities join the
    ground truth), logit KD over the six heads (voxel: regression KD over all 10 codes, velocity included)."""
    root, configs = nus
    r = load_recipe(recipe)
    kd = load_kd_recipe(r.kd).for_student(load_model_config(r.model))
    assert kd.tgi.enabled and kd.label.enabled and kd.logit.enabled
    assert len(class_thresholds(kd.label.score_thresholds, len(NUSCENES_CLASSES))) == 10
    assert (r.epochs, r.batch_size, r.dataset) == (20, 4, "nuscenes")
    summary = _train(["--recipe", recipe, "--model", str(configs / f"{r.model}.yaml"), "--data", str(root),
                      "--teacher", str(teachers[r.teacher_model]["path"]), "--no-eval"], tmp_path / recipe)
    assert summary["steps"] == 2
    losses = summary["final_losses"]
    assert {"hm", "loc", "kd_hm", "kd_reg"} <= set(losses) and all(np.isfinite(v) for v in losses.values())
    assert losses["kd_hm"] > 0
    assert (losses["kd_reg"] > 0) == (r.model == "nuscenes_cp_voxel_s")  # the pillar recipe has no regression KD
    assert summary["kd_recipe"]["tgi"]["enabled"]
