"""``--view-turn``: the check that sparsekd-eval and sparsekd-gap share of whether a model reads an object's heading
from its returns or from which way its training streets ran (inference.Detector.view_turn)."""
from __future__ import annotations

import argparse

import numpy as np


def add_view_turn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--view-turn", type=float, default=0.0, metavar="DEG",
                        help="a check, not a setting: the model sees every cloud turned DEG degrees about the "
                             "sensor's z axis (counter-clockwise from above) and its boxes are turned back before "
                             "they are scored. A model that reads heading from the returns scores the same at 90 as "
                             "at 0; one that learnt which way its training streets ran heads people who walk "
                             "across that way wrongly at 0 and rightly at 90 (docs/results.md \"Heading from the "
                             "street\"). Needs a model that sees all around the sensor (default 0: no turn)")


def apply_view_turn(detector, degrees: float) -> None:
    """Set ``detector.view_turn``; ValueError when the model's range is not a square centred on the sensor, which a
    turn would move away from the objects it is scored on."""
    if degrees:
        r = np.asarray(detector.point_cloud_range, dtype=np.float64)
        if not (np.isclose(-r[0], r[3]) and np.isclose(-r[1], r[4]) and np.isclose(r[3], r[4])):
            raise ValueError(f"--view-turn needs a model that sees all around the sensor: {detector.name} sees "
                             f"x {r[0]:g}..{r[3]:g}, y {r[1]:g}..{r[4]:g} m, which a turn moves off the objects "
                             "it is scored on; use one with a square range centred on the sensor (e.g. cp_pillar_s)")
    detector.view_turn = degrees
