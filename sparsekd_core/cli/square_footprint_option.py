"""``--square-footprint``: the setting that sparsekd-eval, sparsekd-gap and sparsekd-detect share of which classes'
boxes come out with length = width (inference.Detector.square_footprint, sparsekd_core/square_footprint.py)."""
from __future__ import annotations

import argparse

from sparsekd_core.cli.class_list_text import apply_class_list


def add_square_footprint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--square-footprint", default=None, metavar="CLASS[,CLASS]|none",
                        help="publish these classes' boxes with a square footprint, length = width = their mean, "
                             "heading kept: a person whose returns do not show which way they face is then covered "
                             "whichever heading the model guessed (docs/results.md \"Square footprints\"). 'none' "
                             "gives every box as decoded (default: the checkpoint's head.post.square_footprint)")


def apply_square_footprint(detector, value: str | None) -> None:
    """Set ``detector.square_footprint`` from the option's text (None: leave the checkpoint's); ValueError naming
    the model's classes when a name is not one of them."""
    apply_class_list(detector, "square_footprint", value)
