#!/usr/bin/env python3
"""The results table of the simulated-scene experiment (docs/results.md) from the runs that
scripts/sim_experiment.sh leaves in RUNS (default runs/sim).

    scripts/sim_results.py [--runs runs/sim] [--bench bench.json]

Per run: KITTI AP R40 moderate (3D and BEV; IoU 0.7 car, 0.5 pedestrian/cyclist) and Waymo LEVEL_2 mAPH on the
val split, training time and step time. The numbers come from the run's own final evaluation (summary.json) or,
where a run has one, from RUN/eval.json written by
``sparsekd-eval --checkpoint RUN/final.pth --dataset DATA --metric both --json RUN/eval.json``. Both score
objects centred inside the model's range. ``--bench`` adds params, GFLOPs and CPU latency per model from
``sparsekd-bench --models ... --frame F --json``. Prints Markdown.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

CLASSES = ("Car", "Pedestrian", "Cyclist")
ORDER = ("teacher_3ep", "teacher", "student_s0", "student_s1", "sparsekd_s0", "sparsekd_s1", "logit_s0", "pivotal_s0",
         "pivotal_label_s0", "feature_s0", "tgi_s0", "student_6ep_s0", "tgi_6ep_s0", "sparsekd_6ep_s0")
# runs only some families have (`scripts/sim_experiment.sh pillar long` for the 6-epoch students): no row when absent
OPTIONAL = ("teacher_3ep", "student_6ep_s0", "tgi_6ep_s0", "sparsekd_6ep_s0")
LABELS = {"teacher": "teacher", "teacher_3ep": "teacher after 3 epochs", "student": "student, no KD",
          "sparsekd": "SparseKD (pivotal logit + label + TGI)",
          "logit": "logit KD, full map", "pivotal": "pivotal logit KD", "pivotal_label": "pivotal logit + label KD",
          "feature": "FitNet feature KD", "tgi": "TGI alone (no KD loss)", "student_6ep": "student, no KD, 6 epochs",
          "tgi_6ep": "TGI alone, 6 epochs", "sparsekd_6ep": "SparseKD, 6 epochs"}


def metrics_of(run: Path) -> dict | None:
    """{'Car/3d': AP, ..., 'mean/3d', 'mean/bev', 'mAPH_L2'} or None when the run has no evaluation yet."""
    kitti = waymo = None
    eval_json = run / "eval.json"
    if eval_json.is_file():
        report = json.loads(eval_json.read_text())
        kitti, waymo = report.get("kitti"), report.get("waymo")
    else:
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
        final = (summary.get("final_metrics") or {}).get("result")
        if final:
            kitti, waymo = final, final.get("waymo")
    if not kitti:
        return None
    out = {}
    for m in ("3d", "bev"):
        vals = [kitti["summary"].get(f"{c}/{m}/moderate", float("nan")) for c in CLASSES]
        out.update({f"{c}/{m}": v for c, v in zip(CLASSES, vals)})
        out[f"mean/{m}"] = sum(vals) / len(vals)
    out["mAPH_L2"] = waymo["mean"]["LEVEL_2"]["mAPH"] if waymo else float("nan")
    return out


def run_facts(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    return {"model": summary.get("model", "?"), "kd": summary.get("kd", "?"), "seed": summary.get("seed", "?"),
            "steps": summary.get("steps", 0), "train_min": (summary.get("train_time_s") or float("nan")) / 60,
            "step_s": (summary.get("step_time_s") or {}).get("median", float("nan")),
            "status": summary.get("status", "running" if run.exists() else "not run")}


def fmt(v: float, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def family_table(runs: Path, family: str) -> list[str]:
    lines = ["| run | model | seed | Car 3D | Ped 3D | Cyc 3D | **mean 3D** | mean BEV | Waymo L2 mAPH | steps "
             "| train min | s/step |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[dict]] = {}
    for name in ORDER:
        run = runs / f"{family}_{name}"
        facts, m = run_facts(run), metrics_of(run)
        if m is None and not run.exists() and name in OPTIONAL:
            continue  # e.g. no teacher_3ep in a family whose teacher trains in one go
        if m is None:
            lines.append(f"| {name} | {facts['model']} | | {facts['status']} | | | | | | | | |")
            continue
        groups.setdefault(name.rsplit("_s", 1)[0], []).append(m)
        lines.append(
            f"| {LABELS[name.rsplit('_s', 1)[0]]} | {facts['model']} "
            f"| {facts['seed']} | " + " | ".join(fmt(m[f'{c}/3d']) for c in CLASSES)
            + f" | **{fmt(m['mean/3d'])}** | {fmt(m['mean/bev'])} | {fmt(m['mAPH_L2'])} | {facts['steps']} "
            f"| {fmt(facts['train_min'])} | {fmt(facts['step_s'], 2)} |")
    two = {k: v for k, v in groups.items() if len(v) > 1}
    if two:
        lines.append("")
        lines.append("Mean over seeds (± half the spread): " + "; ".join(
            f"{LABELS[k]} {statistics.mean(x['mean/3d'] for x in v):.1f} ± "
            f"{(max(x['mean/3d'] for x in v) - min(x['mean/3d'] for x in v)) / 2:.1f} (3D), "
            f"{statistics.mean(x['mAPH_L2'] for x in v):.1f} mAPH" for k, v in two.items()))
    return lines


def bench_table(bench: Path) -> list[str]:
    rows = json.loads(bench.read_text())["zoo"]
    lines = ["| model | params M | GFLOPs | CPU latency ms (median) | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | {r['latency_ms_median']:.0f} "
                     f"| {r['peak_memory_mb']:.0f} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/sim"))
    p.add_argument("--bench", type=Path, default=None, help="sparsekd-bench --json output for the sim models")
    args = p.parse_args()
    for family in ("voxel", "pillar", "anchor"):
        if not any(args.runs.glob(f"{family}_*")):
            continue  # a family nobody has run here (scripts/sim_experiment.sh FAMILY)
        print(f"### {family}\n")
        print("\n".join(family_table(args.runs, family)) + "\n")
    if args.bench:
        print("### cost per model\n")
        print("\n".join(bench_table(args.bench)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
