"""Which simulator made a street.

``STREETS_VERSION`` goes up by one whenever the same seed and options give different frames (other shapes, sizes,
placement, clutter or sensor model). Figures measured on simulated frames carry it (``sim_meta.json``, the demo
drive's key that bundled checkpoints record), so that a score measured on one simulator's streets is never shown
beside a score measured on another's.

1: the simulator until issue 11's realism work (box-like vehicles, KITTI-like street furniture).
"""
STREETS_VERSION = 1
