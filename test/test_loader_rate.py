"""The loader-rate probe (bench/loader_rate.py) on a small synthetic KITTI root."""
from __future__ import annotations

import numpy as np

from sparsekd_core.bench.loader_rate import measure_loader_rate, measure_loader_rate_for_root
from test_dataset import kitti_dataset, kitti_root  # noqa: F401 - the fixture is used by name


def test_loader_rate_counts_samples_per_second(kitti_root):  # noqa: F811
    rate = measure_loader_rate(kitti_dataset(kitti_root), batch_size=2, workers=0, n_batches=3)
    assert rate > 0 and np.isfinite(rate)


def test_loader_rate_for_root_reports_the_training_pipeline(kitti_root):  # noqa: F811
    report = measure_loader_rate_for_root(kitti_root, workers=(0,), n_batches=2, batch_size=2)
    assert report["layout"] == "kitti" and report["model"] == "kitti_cp_voxel" and report["frames"] == 6
    assert report["gt_sampling"] is True and report["mean_points_per_sample"] > 1000
    assert set(report["samples_per_s"]) == {"workers=0"} and report["samples_per_s"]["workers=0"] > 0
