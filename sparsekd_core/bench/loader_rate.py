"""Data-loading throughput: samples per second the training DataLoader delivers (``sparsekd-bench --data``).

Lives above both the dataset (data/dataset.py) and the training layer's recipe for turning a root
into a dataset (train/data.py), so neither of those imports the other to offer this probe.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from sparsekd_core.config import load_model_config
from sparsekd_core.data.dataset import DetectionDataset, make_dataloader
from sparsekd_core.train.data import DataSource, build_datasets, detect_layout, ensure_infos

__all__ = ["measure_loader_rate", "measure_loader_rate_for_root"]


def measure_loader_rate(dataset: DetectionDataset, batch_size: int = 4, workers: int = 2, n_batches: int = 20,
                        progress: bool = False) -> float:
    """Samples per second the DataLoader delivers (reading, augmenting, cropping, collating), with
    ``workers`` processes. Worker start-up and the first batch are excluded: the figure is the steady
    rate a training step has to keep up with."""
    if len(dataset) == 0:
        raise ValueError("measure_loader_rate: the dataset is empty")
    loader = make_dataloader(dataset, batch_size, workers, num_samples=batch_size * (n_batches + 1))
    batches = iter(loader)
    next(batches)
    start, samples = time.perf_counter(), 0
    for batch in tqdm(batches, total=n_batches, desc="loader", unit="batch", disable=not progress):
        samples += batch.batch_size
    return samples / max(time.perf_counter() - start, 1e-9)


def measure_loader_rate_for_root(root: str | Path, model: str | None = None, batch_size: int = 4,
                                 workers: Sequence[int] = (0, 2), n_batches: int = 20, progress: bool = False) -> dict:
    """Loader throughput of a dataset root as training sees it (for ``sparsekd-bench --data ROOT``).

    The training dataset is built exactly as ``sparsekd-train`` builds it (train/data.py: cached infos,
    built when missing; the reference augmentation with gt-sampling) for ``model`` (default: the teacher
    of the root's layout, kitti_cp_voxel or cp_voxel, which fixes classes, point features and range).
    Returns a JSON-ready dict with samples/s for each worker count.
    """
    layout = detect_layout(root)
    source = DataSource(Path(root), layout)
    ensure_infos(source, progress=progress)
    model = model or ("kitti_cp_voxel" if layout == "kitti" else "cp_voxel")
    dataset, _ = build_datasets(source, load_model_config(model), need_val=False)
    probe = [dataset[i] for i in range(min(len(dataset), 4))]
    rates = {f"workers={w}": round(measure_loader_rate(dataset, batch_size, w, n_batches, progress), 2)
             for w in workers}
    return {"root": str(root), "layout": layout, "model": model, "frames": len(dataset),
            "mean_points_per_sample": int(np.mean([len(s.points) for s in probe])),
            "gt_sampling": dataset.augment is not None and dataset.augment.sampler is not None,
            "batch_size": batch_size, "batches": n_batches, "samples_per_s": rates}
