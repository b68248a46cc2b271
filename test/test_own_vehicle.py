"""The sensor's own vehicle: boxes lying on its footprint are dropped; road users beside it are kept."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scripted_detector import scripted_detector, some_points
from sparsekd_core.cli.eval import build_parser as eval_parser
from sparsekd_core.cli.own_vehicle_option import own_vehicle_from
from sparsekd_core.own_vehicle import CAR_ROOF, OVERLAP, OwnVehicle


def box(x, y, length, width, yaw=0.0):
    return [x, y, -0.9, length, width, 1.5, yaw]


def test_boxes_on_the_vehicle_are_its_own_and_road_users_beside_it_are_not():
    boxes = np.array([
        box(0.0, 0.0, 4.0, 1.7),            # a car box right on the sensor
        box(0.35, -1.0, 3.8, 1.6),          # KITTI's own-car box: 1 m right of the sensor, 63% on the footprint
        box(-2.0, 0.3, 0.8, 0.7, 0.4),      # a pedestrian box on the boot, turned
        box(-1.1, 1.2, 1.0, 0.65),          # a pedestrian box on KITTI's rear roof corner (its rack): half on it
        box(0.5, 1.5, 0.6, 0.6),            # a pedestrian 0.3 m from the door and mirror (y 1.2..1.8): 0% on it
        box(-0.5, -2.15, 4.2, 1.8),         # a car parked alongside, 0.35 m from the body (5% on the rig's reach)
        box(6.0, 0.0, 4.5, 1.9),            # the car ahead
        box(2.6, 0.0, 0.6, 0.6),            # a pedestrian just in front of the bumper
    ])
    assert CAR_ROOF.covers(boxes).tolist() == [True, True, True, True, False, False, False, False]
    assert CAR_ROOF.covers(np.zeros((0, 7))).shape == (0,)


def test_the_overlap_rule_is_a_share_of_the_boxs_own_area():
    # A 1 x 1 m box straddling the footprint's left edge (y_max 1.2): the share on it is (1.2 - (y - 0.5)).
    for y, on in ((1.4, 0.3), (1.5, 0.2), (1.6, 0.1)):
        covered = CAR_ROOF.covers(np.array([box(0.0, y, 1.0, 1.0)]))[0]
        assert covered == (on >= OVERLAP), (y, on)


def test_footprints_are_checked_and_four_zeros_mean_none():
    assert OwnVehicle.parse([0, 0, 0, 0]) is None and OwnVehicle.parse([]) is None
    assert OwnVehicle.parse([-2.4, 2.0, -1.2, 1.2]) == CAR_ROOF
    with pytest.raises(ValueError, match="takes 4 numbers"):
        OwnVehicle.parse([-2.4, 2.0, -0.9])
    with pytest.raises(ValueError, match="must hold the sensor"):
        OwnVehicle(1.0, 3.0, -0.9, 0.9)  # a footprint ahead of the sensor: x_min > 0
    with pytest.raises(ValueError, match="must hold the sensor"):
        OwnVehicle(-2.0, 2.0, 0.9, -0.9)  # y bounds swapped
    with pytest.raises(ValueError, match="finite"):
        OwnVehicle(-2.0, math.nan, -0.9, 0.9)


def test_the_detector_drops_what_lies_on_the_vehicle_and_keeps_the_rest(tmp_path):
    det = scripted_detector(tmp_path, {"Car": 0.9, "Pedestrian": 0.8})
    det.score_threshold = 0.3
    cloud = some_points()
    assert det.own_vehicle is None  # the library assumes no vehicle
    found = det(cloud)
    assert sorted(found.names) == ["Car", "Pedestrian"]
    car = found.boxes[list(found.names).index("Car")]
    ped = found.boxes[list(found.names).index("Pedestrian")]
    assert ped[0] - car[0] > 4.0  # the scripted cells lie 5 m apart
    # A vehicle whose footprint reaches just past the car's box: the car goes, the pedestrian stays.
    det.own_vehicle = OwnVehicle(-1.0, car[0] + car[3], min(car[1], 0.0) - car[4], max(car[1], 0.0) + car[4])
    assert list(det(cloud).names) == ["Pedestrian"]
    det.own_vehicle = None
    assert sorted(det(cloud).names) == ["Car", "Pedestrian"]
    with pytest.raises(TypeError, match="OwnVehicle or None"):
        det.own_vehicle = [-1.0, 1.0, -1.0, 1.0]


def test_the_commands_default_to_the_nodes_car_roof_and_take_none():
    args = eval_parser().parse_args(["--dataset", "d", "--checkpoint", "c"])
    assert own_vehicle_from(args) == CAR_ROOF
    args = eval_parser().parse_args(["--dataset", "d", "--checkpoint", "c", "--own-vehicle", "0", "0", "0", "0"])
    assert own_vehicle_from(args) is None
    args = eval_parser().parse_args(["--dataset", "d", "--checkpoint", "c", "--own-vehicle", "1", "2", "0", "1"])
    with pytest.raises(ValueError, match="must hold the sensor"):
        own_vehicle_from(args)
