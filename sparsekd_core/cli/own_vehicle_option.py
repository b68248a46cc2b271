"""``--own-vehicle``: the option every detecting command shares with the node's ``own_vehicle`` parameter."""
from __future__ import annotations

import argparse

from sparsekd_core.own_vehicle import CAR_ROOF, OwnVehicle


def add_own_vehicle_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--own-vehicle", type=float, nargs=4, default=CAR_ROOF.as_list(),
                        metavar=("X_MIN", "X_MAX", "Y_MIN", "Y_MAX"),
                        help="footprint of the vehicle carrying the sensor, in the model frame (m, x forward, y left): "
                             "boxes lying on it by a quarter of their area are its own returns and are dropped "
                             f"(default {' '.join(f'{v:g}' for v in CAR_ROOF.as_list())}: a car with the sensor on "
                             "its roof, as the node; 0 0 0 0: none, for a sensor on no vehicle)")


def own_vehicle_from(args: argparse.Namespace) -> OwnVehicle | None:
    """The parsed footprint (None for four zeros); ValueError naming the problem."""
    return OwnVehicle.parse(args.own_vehicle)
