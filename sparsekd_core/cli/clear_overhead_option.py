"""``--clear-overhead``: the setting that sparsekd-eval, sparsekd-gap and sparsekd-detect share of which classes'
boxes are dropped when returns lie just above them (inference.Detector.clear_overhead,
sparsekd_core/clear_overhead.py)."""
from __future__ import annotations

import argparse

from sparsekd_core.cli.class_list_text import apply_class_list


def add_clear_overhead_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clear-overhead", default=None, metavar="CLASS[,CLASS]|none",
                        help="drop these classes' boxes where 3 or more returns lie 0.5-1.3 m above the box, over "
                             "its footprint: a person has open air over the head, a sign post or a tree trunk that "
                             "fires as one does not (docs/results.md \"Clear overhead\"); a person standing under an "
                             "awning is dropped too. 'none' checks nothing (default: the checkpoint's "
                             "head.post.clear_overhead)")


def apply_clear_overhead(detector, value: str | None) -> None:
    """Set ``detector.clear_overhead`` from the option's text (None: leave the checkpoint's); ValueError naming
    the model's classes when a name is not one of them."""
    apply_class_list(detector, "clear_overhead", value)
