"""Detector.view_turn and --view-turn (inference.py, cli/view_turn_option.py): the model sees a cloud turned about the
sensor's z axis and its boxes come back where the objects are, in the cloud's frame, where the own vehicle is."""
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import real_sweep
from sparsekd_core.cli import gap
from sparsekd_core.cli.view_turn_option import apply_view_turn
from sparsekd_core.detections import Detections
from sparsekd_core.geometry.transforms import RigidTransform
from sparsekd_core.inference import load_detector
from sparsekd_core.own_vehicle import OwnVehicle


@pytest.fixture(scope="module")
def detector():
    return load_detector("cp_pillar_s", device="cpu")


@pytest.fixture(scope="module")
def sweep(shared_data):
    """A real KITTI sweep (x y z intensity) with four parked cars the bundled student finds over 0.5. Turned a
    quarter, the students score the one 3 m beside the sensor low (session 59's 0.30, session 60's 0.19): what is
    tested is where its box comes back, not its score."""
    return real_sweep(shared_data, "avod_000003")


def cars(detector, points, turn: float, min_score: float = 0.5) -> Detections:
    detector.view_turn = turn
    try:
        d = detector(points)
    finally:
        detector.view_turn = 0.0
    return d.select(np.array([n == "Car" for n in d.names], bool) & (d.scores > min_score))


def test_a_full_turn_gives_the_boxes_of_no_turn(detector, sweep):
    plain, full = cars(detector, sweep, 0.0), cars(detector, sweep, 360.0)
    assert len(plain) == 4
    np.testing.assert_allclose(full.boxes, plain.boxes, atol=1e-3)
    np.testing.assert_allclose(full.scores, plain.scores, atol=1e-3)


def test_boxes_found_in_a_quarter_turn_come_back_on_the_same_cars(detector, sweep):
    plain, turned = cars(detector, sweep, 0.0), cars(detector, sweep, 90.0, min_score=0.15)
    assert len(plain) == 4 and len(turned) >= 4
    gap_m = np.hypot(*(plain.boxes[:, None, :2] - turned.boxes[None, :, :2]).transpose(2, 0, 1))
    nearest = gap_m.argmin(axis=1)
    assert len(set(nearest)) == 4  # each car its own box
    assert gap_m.min(axis=1).max() < 0.5  # a box turned back the wrong way would land metres off
    yaw_gap = np.abs((plain.boxes[:, 6] - turned.boxes[nearest, 6] + np.pi / 2) % np.pi - np.pi / 2)
    assert np.degrees(yaw_gap).max() < 30.0  # measured 0-16 degrees; a yaw not turned back is 90 off


def test_every_box_of_a_quarter_turn_is_the_models_box_for_the_cloud_turned_by_hand(detector, sweep):
    """Whatever the scores: the detector turned a quarter gives, box for box, what it finds in the cloud turned by
    hand (x, y -> -y, x), turned back (x, y, yaw -> y, -x, yaw - 90 degrees)."""
    by_hand = sweep.copy()
    by_hand[:, 0], by_hand[:, 1] = -sweep[:, 1], sweep[:, 0]
    expected = detector(by_hand)
    detector.view_turn = 90.0
    try:
        turned = detector(sweep)
    finally:
        detector.view_turn = 0.0
    assert len(expected) >= 10 and len(turned) == len(expected)
    back = expected.boxes.copy()
    back[:, 0], back[:, 1], back[:, 6] = expected.boxes[:, 1], -expected.boxes[:, 0], expected.boxes[:, 6] - np.pi / 2
    order, order_back = np.lexsort(turned.boxes[:, :2].T), np.lexsort(back[:, :2].T)
    np.testing.assert_allclose(turned.boxes[order, :6], back[order_back, :6], atol=1e-3)
    yaw_gap = (turned.boxes[order, 6] - back[order_back, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(yaw_gap, 0.0, atol=1e-3)
    np.testing.assert_allclose(turned.scores[order], expected.scores[order_back], atol=1e-4)


def test_the_own_vehicle_is_where_it_is_in_the_cloud_whatever_the_turn(detector, sweep):
    plain = cars(detector, sweep, 0.0)
    x, y = plain.boxes[np.hypot(plain.boxes[:, 0], plain.boxes[:, 1]).argmin(), :2]
    footprint = OwnVehicle.parse([min(x - 3.0, -0.5), max(x + 3.0, 0.5), min(y - 2.0, -0.5), max(y + 2.0, 0.5)])
    covered = footprint.covers(plain.boxes)
    assert 1 <= covered.sum() < len(plain)
    detector.own_vehicle = footprint
    try:
        turned = cars(detector, sweep, 90.0)
    finally:
        detector.own_vehicle = None
    # the cars under the footprint are dropped, in the cloud's frame (in the model's the footprint lies elsewhere)
    assert len(turned) == len(plain) - covered.sum()
    assert np.hypot(turned.boxes[:, 0] - x, turned.boxes[:, 1] - y).min() > 1.0


def test_centres_headings_and_velocities_turn_back():
    d = Detections(np.array([[0.0, 10.0, -1.0, 4.0, 2.0, 1.5, np.pi / 2 + 0.1]]), np.array([0.9]), np.array([0]),
                   ("Car",), velocities=np.array([[0.0, 5.0]]))
    back = RigidTransform.from_xyz_rpy(yaw=np.pi / 2).inverse().apply_detections(d)  # as Detector turns boxes back
    np.testing.assert_allclose(back.boxes[0], [10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.1], atol=1e-5)
    np.testing.assert_allclose(back.velocities[0], [5.0, 0.0], atol=1e-5)
    assert back.scores[0] == pytest.approx(0.9) and back.names == ["Car"]


def test_only_a_model_that_sees_all_around_may_be_turned(detector):
    front = SimpleNamespace(point_cloud_range=[0.0, -40.0, -3.0, 70.4, 40.0, 1.0], name="front_only", view_turn=0.0)
    with pytest.raises(ValueError, match="sees all around.*x 0..70.4"):
        apply_view_turn(front, 90.0)
    apply_view_turn(front, 0.0)  # no turn asks nothing of the range
    apply_view_turn(detector, 45.0)
    assert detector.view_turn == 45.0
    detector.view_turn = 0.0
    with pytest.raises(ValueError, match="finite"):
        detector.view_turn = float("nan")


def test_gap_needs_a_checkpoint_to_turn(tmp_path, capsys):
    assert gap.main(["--side", f"real={tmp_path}:val", "--view-turn", "90"]) == 2
    assert "--view-turn turns what a detector sees: give --checkpoint too" in capsys.readouterr().err
