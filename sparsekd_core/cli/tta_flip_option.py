"""``--tta-flip``: the setting that sparsekd-eval, sparsekd-gap and sparsekd-detect share of whether the network also
sees each cloud's mirror image (inference.Detector.tta_flip, sparsekd_core/models/tta_flip.py)."""
from __future__ import annotations

import argparse


def add_tta_flip_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tta-flip", default=None, choices=("on", "off"),
                        help="test-time flip: 'on' runs the network on each cloud and on its left-right mirror image "
                             "and averages the two views' maps before decoding (twice the network's work; on simulated "
                             "streets better car boxes, pedestrians and cyclists about the same); 'off' runs it once "
                             "(default: the checkpoint's head.post.tta_flip)")


def apply_tta_flip(detector, value: str | None) -> None:
    """Set ``detector.tta_flip`` from the option's text (None: leave the checkpoint's); ValueError saying why when
    the model cannot run it."""
    if value is not None:
        detector.tta_flip = value == "on"
