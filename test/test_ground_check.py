"""The node's mounting check on real KITTI sweeps: silent when the sensor sits where the model expects,
a warning that names sensor_to_model (with the value to set) when it is raised or tilted."""
from __future__ import annotations

import re

import numpy as np
import pytest

from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_ros.ground_check import GroundCheck

NO_MOUNTING = (0.0,) * 6


@pytest.fixture(scope="module")
def sweep(shared_data):
    return np.fromfile(shared_data / "kitti_real/training/velodyne/avod_000004.bin", np.float32).reshape(-1, 4)


def test_a_kitti_sweep_matches_a_kitti_model(sweep):
    report = GroundCheck(-1.73, "recorded").check(sweep, NO_MOUNTING)
    assert report.ok and "ground seen at z -1.75 m" in report.text and "model expects -1.73 m (recorded)" in report.text


def test_a_raised_sensor_is_told_which_parameter_to_set(sweep):
    raised = sweep.copy()
    raised[:, 2] -= 0.77  # the same scene from 2.50 m up
    report = GroundCheck(-1.73, "recorded").check(raised, NO_MOUNTING)
    assert not report.ok
    assert "0.79 m lower than the model expects" in report.text and "sensor sits higher" in report.text
    z = float(re.search(r"Set sensor_to_model z to ([+-][0-9.]+)", report.text).group(1))
    assert z == pytest.approx(0.77, abs=0.05)
    assert "sensor_to_model:=[0,0,0.79,0,0,0]" in report.text
    # with that value set, the points reach the model where it expects them
    moved = RigidTransform.from_xyz_rpy(0, 0, z).apply_points(raised)
    assert GroundCheck(-1.73, "recorded").check(moved, (0, 0, z, 0, 0, 0)).ok


def test_a_tilted_sensor_is_told_to_level_it(sweep):
    mounting = RigidTransform.from_xyz_rpy(0, 0, 0, 0, np.radians(7), 0)  # pitched 7 deg nose-down
    report = GroundCheck(-1.73, "recorded").check(mounting.inverse().apply_points(sweep), NO_MOUNTING)
    assert not report.ok and "sensor_to_model roll/pitch" in report.text
    roll, pitch = (float(v) for v in re.search(r"about ([+-][0-9.]+) / ([+-][0-9.]+) rad", report.text).groups())
    assert pitch == pytest.approx(np.radians(7), abs=0.02) and abs(roll) < 0.02


def test_unknown_model_ground_only_logs_and_the_check_is_periodic(sweep, monkeypatch):
    report = GroundCheck(None, "not known for its classes").check(sweep, NO_MOUNTING)
    assert report.ok and "unknown (not known for its classes)" in report.text
    clock = [100.0]
    monkeypatch.setattr("sparsekd_ros.ground_check.time.monotonic", lambda: clock[0])
    check = GroundCheck(-1.73, "x", period_s=30.0)
    assert check.due() and not check.due()  # the first cloud, then not before 30 s
    clock[0] += 29.0
    assert not check.due()
    clock[0] += 2.0
    assert check.due()
    once = GroundCheck(-1.73, "x", period_s=0.0)
    assert once.due() and not once.due()
    clock[0] += 1000.0
    assert not once.due()
