"""Edge returns (mixed pixels): a real beam that grazes an object's silhouette returns a range between the object and
what lies behind it.

A LiDAR beam is not an ideal ray: its footprint (the HDL-64E's beams diverge about 2 mrad, 4 cm at 20 m) straddles the
edge of a person, a post or a car where the next firing, 0.17 degrees on, already sees the wall behind. The receiver
then mixes both echoes and reports a range in between. Real sweeps are full of such returns around every silhouette,
scattered along the ray behind its edge; the simulator's ideal rays never give one. Without them a simulated person's
returns lie on a clean curve that a flat board can imitate, where a real person's fill a ragged patch: a quarter of
the simulated pedestrians read flatter than any real one, and so did a quarter of the real false pedestrians
(``sparsekd-gap``'s thickness lines; docs/results.md "Flat people"). ``sparsekd-sim --edge-returns SHARE`` moves
that share of the edge rays' returns back towards their farther neighbour: 0.5 took the simulated flat share from 26%
to 10% (40 frames, session 54).

Only horizontal neighbours (the same beam, the previous and next firing) are compared: that is the direction the
beam sweeps and where the footprint most often straddles an edge. A neighbour with no return (sky, out of range)
gives no mixing: with nothing behind, the echo is the object's alone. The mixed return belongs to no object (it is
neither the person nor the wall), so it is written as a world point.
"""
from __future__ import annotations

import numpy as np

#: A ray is on an edge when a horizontal neighbour's return lies at least this much farther (metres).
EDGE_STEP = 0.3
#: The mixed range lies uniformly between the ray's own and its farther neighbour's, at most this far back (metres).
MIXED_REACH = 1.0


def mix_edge_returns(t: np.ndarray, valid: np.ndarray, beams: int, share: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ranges, mixed) for one revolution's rays in firing order (column by column, ``beams`` rays each).

    t: (R,) ranges; valid: (R,) which rays returned. ``share`` of the valid rays on an edge get a range drawn
    uniformly between their own and min(farther neighbour's, own + MIXED_REACH); the others keep theirs.
    mixed: (R,) bool, the rays whose range was moved."""
    t = np.asarray(t, np.float32)
    if share <= 0.0 or t.size == 0:
        return t, np.zeros(t.shape, bool)
    grid = np.where(valid, t, np.nan).reshape(-1, beams)  # columns x beams; the revolution wraps around
    farther = np.full(grid.shape, np.inf, np.float32)
    for step in (1, -1):
        neighbour = np.roll(grid, step, axis=0)
        behind = neighbour - grid >= EDGE_STEP  # False where either is NaN
        farther = np.where(behind, np.minimum(farther, neighbour), farther)
    farther = farther.ravel()
    edge = valid & np.isfinite(farther)
    mixed = edge & (rng.random(t.size) < share)
    near = t[mixed]
    back = np.minimum(farther[mixed], near + MIXED_REACH) - near
    out = t.copy()
    out[mixed] = near + rng.random(len(near), dtype=np.float32) * back
    return out, mixed
