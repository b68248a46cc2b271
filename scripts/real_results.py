#!/usr/bin/env python3
"""The real-LiDAR table of README and docs/results.md: how models trained on simulated scenes do on real KITTI.

For each checkpoint it runs, with the project's own commands (their JSON output is kept beside the table):

    sparsekd-eval --checkpoint C --dataset REAL --json ...                 # scored on the model's own range
    sparsekd-eval --checkpoint C --dataset REAL --all-objects --json ...   # every labelled object
    sparsekd-gap --side real=REAL:val --checkpoint C --json ...            # boxes, false boxes/frame (and sim=SIM:val)

and prints a markdown table: Car / Pedestrian / Cyclist KITTI AP R40 moderate (BEV / 3D) on both areas and without
the small-set cap (nine frames hold 8 moderate cars: officially a perfect detector scores 17.5 there), boxes and
false boxes per frame at the node's defaults (--score-threshold, 0.3, and the model's operating point, the per-class
thresholds its checkpoint records) on the real frames and on simulated val frames, and the same APs on the simulated
val frames.

    cp -r ../shared/data/kitti_real /tmp/kitti_real && sparsekd-data kitti --root /tmp/kitti_real --splits val
    python scripts/real_results.py --real /tmp/kitti_real --sim data/sim360/kitti --out runs/real \\
        cp_voxel_s cp_pillar_v0.64 runs/sim360/voxel_teacher/final.pth runs/sim360/pillar_teacher/final.pth

The real frames are for measuring only: nothing is trained or tuned on them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CLASSES = ("Car", "Pedestrian", "Cyclist")


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _tag(ckpt: str) -> str:
    """The output files' prefix: a bundled name as it is, a run's final.pth by its run directory, another file by
    its directory and name (two files of one folder, or same-named files of two runs, keep apart)."""
    if not ckpt.endswith(".pth"):
        return ckpt
    path = Path(ckpt)
    return path.parent.name if path.stem == "final" else f"{path.parent.name}_{path.stem}"


def moderate(path: Path, key: str = "kitti") -> dict[str, tuple[float, float]]:
    """Class -> (BEV, 3D) KITTI AP R40 moderate from a sparsekd-eval JSON (``kitti_uncapped``: the estimate
    free of the small-set cap; the official figures where no class was short)."""
    report = json.loads(path.read_text())
    summary = report.get(key, report["kitti"])["summary"]
    return {c: (summary.get(f"{c}/bev/moderate", float("nan")), summary.get(f"{c}/3d/moderate", float("nan")))
            for c in CLASSES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint paths or bundled model names")
    parser.add_argument("--real", required=True, help="real KITTI-format root with val infos (kitti_real)")
    parser.add_argument("--sim", required=True, help="simulated KITTI-format root with val infos")
    parser.add_argument("--sim-frames", type=int, default=150,
                        help="simulated val frames scored (default 150); every real frame is")
    parser.add_argument("--out", default="runs/real", help="folder for the JSON outputs (default runs/real)")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="threshold the boxes per frame are counted at (default 0.3, the node's default)")
    parser.add_argument("--min-points", type=int, default=None, metavar="N",
                        help="boxes need N returns inside (default: each checkpoint's own head.post.min_points)")
    args = parser.parse_args(argv)
    support = [] if args.min_points is None else ["--min-points", str(args.min_points)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def tool(name: str) -> list[str]:  # sparsekd-eval, sparsekd-gap: their modules, in this interpreter
        return [sys.executable, "-m", f"sparsekd_core.cli.{name.removeprefix('sparsekd-')}"]
    tags = [_tag(ckpt) for ckpt in args.checkpoints]
    if len(set(tags)) < len(tags):
        parser.error(f"two checkpoints would write the same files in {out} ({', '.join(tags)}): rename one")
    rows = []
    for ckpt, tag in zip(args.checkpoints, tags):
        own, every, sim, gap_real, gap_sim = (out / f"{tag}_{k}.json"
                                              for k in ("real", "real_all", "sim", "gap_real", "gap_sim"))
        run([*tool("sparsekd-eval"), "--checkpoint", ckpt, "--dataset", args.real, "--device", "cpu", "--quiet",
             *support, "--json", str(own)])
        run([*tool("sparsekd-eval"), "--checkpoint", ckpt, "--dataset", args.real, "--device", "cpu", "--quiet",
             *support, "--all-objects", "--json", str(every)])
        run([*tool("sparsekd-eval"), "--checkpoint", ckpt, "--dataset", args.sim, "--device", "cpu", "--quiet",
             "--max-frames", str(args.sim_frames), *support, "--json", str(sim)])
        # one sparsekd-gap call a side: its --max-frames holds for every side, and every real frame counts
        for side, root, frames, path in (("real", args.real, 0, gap_real), ("sim", args.sim, args.sim_frames, gap_sim)):
            run([*tool("sparsekd-gap"), "--side", f"{side}={root}:val", "--checkpoint", ckpt, "--score-threshold",
                 str(args.score_threshold), "--max-frames", str(frames), *support, "--quiet", "--json", str(path)])
        real_side, sim_side = (json.loads(p.read_text())["sides"][0] for p in (gap_real, gap_sim))
        rows.append((tag, moderate(own), moderate(own, "kitti_uncapped"), moderate(every), moderate(sim),
                     real_side, sim_side))

    def cells(ap):
        return " | ".join(f"{ap[c][0]:.1f} / {ap[c][1]:.1f}" for c in CLASSES)

    head = " | ".join(f"{c} BEV / 3D" for c in CLASSES)
    print("KITTI AP R40 moderate, BEV / 3D. Real: the real KITTI frames, objects in the model's range; "
          "real, uncapped: the same, frames repeated until every class holds 41 objects (sparsekd-eval's "
          "estimate free of the small-set cap); real, all objects: every labelled object; "
          "sim: simulated val frames.\n")
    print(f"| model | area | {head} | boxes / frame at {args.score_threshold:g} and the operating point | "
          "false boxes / frame |")
    print("| --- | --- | " + " | ".join("---:" for _ in CLASSES) + " | ---: | ---: |")
    for tag, own, uncapped, every, sim, real_side, sim_side in rows:
        print(f"| {tag} | real | {cells(own)} | {real_side['boxes_per_frame']:.1f} | "
              f"{real_side['false_boxes_per_frame']:.1f} |")
        print(f"| | real, uncapped | {cells(uncapped)} | | |")
        print(f"| | real, all objects | {cells(every)} | | |")
        print(f"| | sim | {cells(sim)} | {sim_side['boxes_per_frame']:.1f} | {sim_side['false_boxes_per_frame']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
