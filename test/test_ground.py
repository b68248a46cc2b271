"""The ground height under a LiDAR (geometry/ground.py) on the real KITTI sweeps of ../shared/data/kitti_real,
as mounted (HDL-64E 1.73 m above the road) and moved to a raised, tilted mounting."""
from __future__ import annotations

import numpy as np
import pytest

from sparsekd_core.geometry.ground import estimate_ground
from sparsekd_core.geometry.transforms import RigidTransform

KITTI_GROUND_Z = -1.73  # KITTI's HDL-64E sits 1.73 m above the road


def _sweeps(shared_data):
    files = sorted((shared_data / "kitti_real" / "training" / "velodyne").glob("*.bin"))
    assert len(files) == 9
    return [np.fromfile(f, np.float32).reshape(-1, 4) for f in files]


def test_kitti_ground_is_found_1_73_m_below_the_sensor(shared_data):
    estimates = [estimate_ground(p) for p in _sweeps(shared_data)]
    heights = np.array([g.height for g in estimates])
    # every sweep within 0.12 m (real roads slope and the car pitches), their median within 0.05 m
    assert np.all(np.abs(heights - KITTI_GROUND_Z) < 0.12), heights
    assert abs(np.median(heights) - KITTI_GROUND_Z) < 0.05, heights
    assert all(g.tilt_deg < 4.0 and g.inliers > 0.3 * g.cells for g in estimates)


def test_a_raised_and_tilted_sensor_is_seen_and_undone(shared_data):
    sweep = _sweeps(shared_data)[4]
    # The same scene from a sensor 0.77 m higher (2.50 m above the road) and pitched 4 deg nose-down:
    # sensor_to_model is the transform from that sensor's frame to KITTI's.
    sensor_to_model = RigidTransform.from_xyz_rpy(0, 0, 0.77, 0, np.radians(4), 0)
    raised = sensor_to_model.inverse().apply_points(sweep)
    seen = estimate_ground(raised)
    assert seen.height == pytest.approx(KITTI_GROUND_Z - 0.77, abs=0.12)
    assert seen.pitch_deg == pytest.approx(4.0, abs=0.8) and abs(seen.roll_deg) < 1.0
    back = estimate_ground(sensor_to_model.apply_points(raised))
    assert back.height == pytest.approx(estimate_ground(sweep).height, abs=0.02)


def test_too_little_ground_is_no_estimate():
    assert estimate_ground(np.zeros((0, 4), np.float32)) is None
    assert estimate_ground(np.array([[10, 0, -1.7, 0], [11, 0, -1.7, 0]], np.float32)) is None
