#!/usr/bin/env python
"""Freeze a few simulated HDL-64E frames for a bundled student's test (test/test_bundled_models.py).

The simulator moves on while bundled weights stay what they are, so a test of the weights reads frames of the
streets they were trained in, frozen when they were bundled. Each frame is a snapshot (``SnapshotScene``, scene 0,
frame 0) of one seed, cropped to the model's point-cloud range, coordinates in steps of 2 mm (int16, less an x
offset) and intensity in 1/255, with each labelled object's box, KITTI class and number of returns, and whether the
sensor's own vehicle is under it (streets version 3 on):

    python scripts/freeze_streets.py --model cp_pillar_v0.64_sim360 --seeds 783,785,791,792 \\
        --out test/data/bundled_streets_v4_360.npz

(seeds whose ego vehicle and its rig send returns; crop to the widest range of the models the file tests).

Check that the student finds the same boxes in the frozen frames as in the float32 ones before committing them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sparsekd_core.config import load_model_config
from sparsekd_core.data.sim.scene import SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sizes import KITTI_CLASSES
from sparsekd_core.data.sim.version import STREETS_VERSION

QUANTUM_M = 0.002  # int16 steps of 2 mm reach +-65.5 m around the x offset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="zoo config whose point-cloud range crops the frames")
    ap.add_argument("--seeds", default="783,785,791,792", help="one snapshot per seed (default %(default)s)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    r = load_model_config(args.model).voxelization.point_cloud_range
    x_offset = (r[0] + r[3]) / 2
    if max(r[3] - x_offset, abs(r[1]), abs(r[4])) / QUANTUM_M >= 2**15:
        ap.error(f"{args.model}'s range {r} does not fit int16 steps of {QUANTUM_M} m")
    arrays = {"quantum_m": np.float64(QUANTUM_M), "x_offset_m": np.float64(x_offset),
              "streets_version": np.int64(STREETS_VERSION)}
    for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
        frame = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0).frame(0)
        p = frame.points
        keep = ((p[:, 0] >= r[0]) & (p[:, 0] < r[3]) & (p[:, 1] >= r[1]) & (p[:, 1] < r[4])
                & (p[:, 2] >= r[2]) & (p[:, 2] < r[5]))
        p = p[keep]
        arrays[f"xyz_{i}"] = np.round((p[:, :3] - [x_offset, 0.0, 0.0]) / QUANTUM_M).astype(np.int16)
        arrays[f"intensity_{i}"] = np.round(np.clip(p[:, 3], 0, 1) * 255).astype(np.uint8)
        arrays[f"boxes_{i}"] = frame.boxes.astype(np.float32)
        arrays[f"classes_{i}"] = np.array([KITTI_CLASSES[k] for k in frame.kinds])
        arrays[f"num_points_{i}"] = frame.num_points.astype(np.int32)
        arrays[f"ego_body_{i}"] = np.bool_(frame.meta.get("ego_body", False))  # the sensor's own vehicle is there
        print(f"seed {seed}: {keep.sum()} points, {len(frame.boxes)} objects, ego body {frame.meta.get('ego_body')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
