"""Shared test fixtures: paths to the real sample frames, small synthetic clouds.

Fast DDS reads its profile file once per process, when the first participant is created, and some
tests create participants in this process: the large-data profile is set here, before any of them.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from sparsekd_ros.demo.processes import dds_profile, dds_profile_env

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"

for _name, _value in dds_profile_env(dds_profile()).items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"real sample frames not found at {SHARED_DATA}: clone the project beside ../shared")
    return SHARED_DATA


def real_sweep(shared_data: Path, frame_id: str) -> np.ndarray:
    """One of the shared real KITTI sweeps (``kitti_real/training/velodyne/<frame_id>.bin``), x y z intensity."""
    from sparsekd_core.data.kitti_format import read_points

    return read_points(shared_data / "kitti_real" / "training" / "velodyne" / f"{frame_id}.bin")


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: spconv's multi-threaded CPU convolution races (see test_train_resume), and
    for the small training runs of the tests one thread is also faster."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_cloud(n: int, features: int, seed: int = 0, xy: float = 20.0) -> np.ndarray:
    """n random points with x, y in [-xy, xy], z in [-1.5, 1.5] and features in [0, 1)."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((n, features), np.float32)
    pts[:, 0] = rng.uniform(-xy, xy, n)
    pts[:, 1] = rng.uniform(-xy, xy, n)
    pts[:, 2] = rng.uniform(-1.5, 1.5, n)
    if features > 3:
        pts[:, 3:] = rng.uniform(0, 1, (n, features - 3))
    return pts


def trained_looking(model):
    """Distinct BN scales and statistics, so channel choices and exactness checks mean something."""
    import torch

    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) * 1.5 + 0.25
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model
