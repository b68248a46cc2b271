"""``--class-score-thresholds``: the option every detecting command shares with the node's ``class_score_thresholds``
parameter (empty: the model's operating point; ``none``: one threshold for every class; else 'Name:score' items)."""
from __future__ import annotations

import argparse

from sparsekd_core.thresholds import parse_class_setting


def add_class_thresholds_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--class-score-thresholds", default="", metavar="NAME:S,...",
                        help="per-class minimum scores that replace --score-threshold for their class, lower or "
                             "higher, e.g. 'Pedestrian:0.25,Cyclist:0.25' (default: the model's operating point, "
                             "the per-class thresholds its checkpoint records, as the node; 'none': "
                             "--score-threshold for every class)")


def class_setting_from(args: argparse.Namespace) -> tuple[tuple[str, float], ...] | None:
    """The parsed setting (thresholds.parse_class_setting: None = the model's operating point); ValueError naming
    the problem. Parse it before loading a model, so that a typo fails at once."""
    return parse_class_setting(args.class_score_thresholds)
