"""Small model configs for training-step tests: a few seconds a step on one CPU thread, and the toy run that trains
TINY_VOXEL."""
from __future__ import annotations

from pathlib import Path

#: cp_voxel_xxs_sim on 0.2 m voxels over a 12.8 m square: goes through spconv and the dense 2D part
TINY_VOXEL = """\
base: cp_voxel_xxs_sim
voxelization:
  voxel_size: [0.2, 0.2, 0.1]
  point_cloud_range: [0.0, -6.4, -3.0, 12.8, 6.4, 1.0]
"""


def write_tiny_voxel_run(root: Path, n_train: int, n_val: int) -> tuple[Path, Path]:
    """TINY_VOXEL as ``root/tiny.yaml`` and a toy KITTI tree of its classes over its range in ``root/kitti``
    (train/synthetic.py); returns (model YAML, data root) for TrainOptions."""
    from sparsekd_core.config import load_model_config
    from sparsekd_core.train.synthetic import write_toy_kitti

    model = root / "tiny.yaml"
    model.write_text(TINY_VOXEL)
    cfg = load_model_config(model)
    write_toy_kitti(root / "kitti", cfg.voxelization.point_cloud_range, cfg.class_names, n_train=n_train, n_val=n_val)
    return model, root / "kitti"
