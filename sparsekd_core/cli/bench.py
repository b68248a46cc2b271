"""sparsekd-bench: figures for the model zoo (and, on request, training and data loading).

The ROS node's figures come from the ROS layer's own command, ``sparsekd-bench-node``: the library
never imports ROS (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..backends import BACKENDS
from ..bench.model_bench import DEFAULT_FRAME
from ..bench.stage_bench import DENSE_MODULES, STAGES
from ..config import ANCHOR_ZOO, PAPER_FIGURES, WAYMO_ZOO, zoo_teacher

RATIO_TOLERANCE = 0.15  # student/teacher GFLOPs ratio must be within 15% of the paper's

EPILOG = """examples:
  sparsekd-bench                          # the 8 Waymo zoo models on ../shared/data's Waymo-like frame
  sparsekd-bench --models cp_voxel,cp_voxel_s --runs 20 --device cuda
  sparsekd-bench --models {anchor_zoo}
                                          # the anchor-head zoo (SECOND, PointPillars and their students)
  sparsekd-bench --json > zoo.json        # machine-readable
  sparsekd-bench --train                  # training step time: teacher, student, student + SparseKD
  sparsekd-bench --skip-zoo --train --device cuda --train-batch 4 \
      --train-pairs cp_voxel:cp_voxel_s,cp_pillar:cp_pillar_v0.64   # the zoo pairs at the paper's batch
  sparsekd-bench --skip-zoo --train --train-precision both \
      --train-pairs cp_pillar_sim360:cp_pillar_v0.64_sim360          # mixed precision against fp32, one run
  sparsekd-bench --data DIR               # data loading samples/s for a dataset root
  sparsekd-bench --models cp_pillar_v0.64,cp_voxel_s --backend onnxruntime --breakdown
                                          # onnxruntime vs torch, per stage, dense part split by module

GFLOPs are multiply-accumulates counted as the SparseKD paper does (thop style; sparse convs from
spconv's reported indice pair counts); "GMACs all" counts every submanifold pair (see bench/flops.py).
Latency is numpy points in -> Detections out (voxelise, forward, decode + NMS), median over --runs after
--warmup runs, random weights. Peak memory: the model's own process peak RSS on CPU, max allocated on CUDA.

--backend times the Detector stage by stage on each backend (torch always included, as the baseline):
prepare, voxelise, sparse (voxel models' 3D backbone, torch everywhere), dense (what the exported graph
holds: pillar models VFE + scatter + 2D backbone + head, voxel models 2D backbone + head), decode, nms,
to_host; "total" is whole Detector calls. Each model and backend runs in its own process, one after the
other, so compare ratios from one run: CPU figures move with the machine's load.

The ROS node (PointCloud2 codec, node overhead, end-to-end latency per student): sparsekd-bench-node.
""".replace("{anchor_zoo}", ",".join(ANCHOR_ZOO))


def _bench_in_subprocess(model: str, frame: str, device: str, runs: int, warmup: int, fp16: bool = False,
                         module: str = "model_bench", extra: tuple[str, ...] = ()) -> dict:
    """One bench/<module>.py run in its own process (its own peak memory, no state shared between models)."""
    cmd = [sys.executable, "-m", f"sparsekd_core.bench.{module}", "--model", model, "--frame", frame,
           "--device", device, "--runs", str(runs), "--warmup", str(warmup), *extra] + (["--fp16"] if fp16 else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark of {model} ({' '.join(extra) or module}) failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def add_speedups(rows: list[dict]) -> list[dict]:
    """Each row's speed-up over the torch row of the same model: total and dense part (torch time / its time)."""
    base = {r["model"]: r for r in rows if r["backend"] == "torch" and "error" not in r}
    for r in rows:
        t = base.get(r["model"])
        if t is not None and "error" not in r:
            r["speedup_total"] = t["total_ms_median"] / r["total_ms_median"]
            r["speedup_dense"] = t["stage_ms_median"]["dense"] / max(r["stage_ms_median"]["dense"], 1e-9)
    return rows


def format_backend_table(rows: list[dict]) -> str:
    head = ("| model | backend | total ms | " + " | ".join(STAGES) + " | total vs torch | dense vs torch |\n"
            "| --- | --- | ---: | " + " | ".join("---:" for _ in STAGES) + " | ---: | ---: |")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | not run: {r['error']} |")
            continue
        st = r["stage_ms_median"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['total_ms_median']:.0f} | "
                     + " | ".join(f"{st[s]:.1f}" for s in STAGES)
                     + f" | {r.get('speedup_total', float('nan')):.2f}x"
                       f" | {r.get('speedup_dense', float('nan')):.2f}x |")
    by_module = [r for r in rows if "dense_ms_by_module" in r]
    if by_module:
        cols = DENSE_MODULES + ("other",)
        lines += ["", "Dense part by module, ms (onnxruntime: its profiler; 'other': layout reorders and copies)", "",
                  "| model | backend | " + " | ".join(cols) + " |", "| --- | --- | " + " | ".join("---:" for _ in cols)
                  + " |"]
        for r in by_module:
            m = r["dense_ms_by_module"]
            lines.append(f"| {r['model']} | {r['backend']} | "
                         + " | ".join(f"{m[c]:.1f}" if c in m else "-" for c in cols) + " |")
    return "\n".join(lines)


def add_paper_columns(rows: list[dict]) -> list[dict]:
    """Ratios to each model's zoo teacher when it is in the run, the paper's ratio where the paper has one, and
    whether the two agree within the tolerance (anchor-head students have a ratio but no paper figure)."""
    by_name = {r["model"]: r for r in rows}
    for r in rows:
        paper = PAPER_FIGURES.get(r["model"])
        r["paper_gflops"] = paper[1] if paper else None
        r["paper_latency_ms_a100"] = paper[3] if paper else None
        teacher = zoo_teacher(r["model"])
        if teacher and teacher in by_name:
            r["teacher"] = teacher
            r["ratio"] = r["gflops"] / by_name[teacher]["gflops"]
            if paper and teacher in PAPER_FIGURES:
                r["paper_ratio"] = paper[1] / PAPER_FIGURES[teacher][1]
                r["ratio_error"] = r["ratio"] / r["paper_ratio"] - 1
                r["ratio_ok"] = abs(r["ratio_error"]) <= RATIO_TOLERANCE
    return rows


def format_zoo_table(rows: list[dict]) -> str:
    head = ("| model | params M | GFLOPs | ratio | paper ratio | GMACs all | latency ms | peak MB | paper GFLOPs |"
            " paper A100 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if "ratio" in r else "1 (teacher)" if r.get("paper_gflops") or any(
            q.get("teacher") == r["model"] for q in rows) else "-"
        pratio = f"{r['paper_ratio']:.3f}" if "paper_ratio" in r else "-"
        flag = "" if r.get("ratio_ok", True) else " OUT OF RANGE"
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} | {r['gflops']:.1f} | {ratio}{flag} | {pratio} | "
            f"{r['gmacs_all_pairs']:.1f} | {r['latency_ms_median']:.0f} | {r['peak_memory_mb']:.0f} | "
            f"{r['paper_gflops'] if r.get('paper_gflops') is not None else '-'} | "
            f"{r['paper_latency_ms_a100'] if r.get('paper_latency_ms_a100') is not None else '-'} |")
    return "\n".join(lines)


def format_tta_flip_table(rows: list[dict]) -> str:
    """Each model's latency once a cloud and with the test-time flip (two views), timed in one process."""
    lines = ["| model | latency ms | with --tta-flip ms | ratio |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['latency_ms_median']:.0f} | {r['tta_flip_latency_ms_median']:.0f} | "
                     f"{r['tta_flip_ratio']:.2f}x |")
    return "\n".join(lines)


TRAIN_PAIRS = (("cp_voxel_sim", "cp_voxel_s_sim"), ("cp_pillar_sim", "cp_pillar_v0.64_sim"))


TRAIN_STEPS = ("teacher", "student", "student_kd")


def format_train_table(train: dict, batch_size: int = 2) -> str:
    """train: {pair: compare_kd_cost result}; a pair timed both ways is two entries, "PAIR fp32" and "PAIR amp"."""
    lines = ["| teacher -> student | precision | teacher step s | student step s | student + SparseKD s | KD / plain |"
             " peak MB (teacher / student / KD) |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for pair, r in train.items():
        mb = " / ".join(f"{r[k]['peak_memory_bytes'] / 2**20:.0f}" for k in TRAIN_STEPS)
        lines.append(f"| {pair.split(' ')[0]} | {r['teacher']['precision']} | {r['teacher']['step_s_median']:.2f} | "
                     f"{r['student']['step_s_median']:.2f} | {r['student_kd']['step_s_median']:.2f} | "
                     f"{r['kd_over_plain']:.2f} | {mb} |")
    return f"Training steps (batch {batch_size}, median; one run of each, back to back)\n\n" + "\n".join(lines)


def precision_speedups(fp32: dict, mixed: dict) -> dict[str, float]:
    """fp32 step time / mixed-precision step time of each configuration of one pair (compare_kd_cost results)."""
    return {k: fp32[k]["step_s_median"] / mixed[k]["step_s_median"] for k in TRAIN_STEPS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="sparsekd-bench", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(WAYMO_ZOO),
                    help="comma-separated zoo names (default: the Waymo CenterPoint zoo)")
    ap.add_argument("--frame", default=str(DEFAULT_FRAME),
                    help="point file (.npy, KITTI or nuScenes .bin, .pcd, .ply; read as sparsekd-detect reads it); "
                         "default %(default)s")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (default %(default)s)")
    ap.add_argument("--fp16", action="store_true",
                    help="fp16 autocast inference, as the node's fp16 parameter (CUDA only)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per model (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--tta-flip", action="store_true",
                    help="also time each model with the test-time flip (each cloud and its mirror image, "
                         "head.post.tta_flip), right after its plain runs in the same process, and print the ratio")
    ap.add_argument("--train", action="store_true", help="also time training steps (teacher, student, student+KD)")
    ap.add_argument("--train-steps", type=int, default=3,
                    help="timed training steps per configuration (default %(default)s)")
    ap.add_argument("--train-pairs", default=",".join(f"{t}:{s}" for t, s in TRAIN_PAIRS), metavar="T:S,...",
                    help="teacher:student pairs for --train (default: the CPU-sized sim pairs %(default)s)")
    ap.add_argument("--train-batch", type=int, default=2,
                    help="samples per training step for --train (default %(default)s)")
    ap.add_argument("--train-precision", choices=("amp", "fp32", "both"), default="amp",
                    help="--train's precision: amp = what sparsekd-train uses by default (fp16 on CUDA, bf16 on a CPU "
                         "with native bf16, else fp32), fp32 = as --no-amp, both = each configuration in fp32 and "
                         "in amp, back to back, with the speed-up (default %(default)s)")
    ap.add_argument("--data", metavar="DIR", help="also measure data loading samples/s on this dataset root")
    ap.add_argument("--skip-zoo", action="store_true", help="only the extra benchmarks")
    ap.add_argument("--backend", metavar="B[,B...]",
                    help=f"time these backends ({', '.join(BACKENDS)}) stage by stage, with torch as the baseline, "
                         "instead of the zoo table")
    ap.add_argument("--breakdown", action="store_true",
                    help="with --backend: split the dense part by module (vfe, to_bev, backbone2d, head)")
    args = ap.parse_args(argv)
    backends = None
    if args.backend is not None:
        backends = ["torch"] + [b for b in args.backend.split(",") if b and b != "torch"]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            ap.error(f"--backend {args.backend!r}: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    elif args.breakdown:
        ap.error("--breakdown applies to --backend")
    if args.tta_flip and (backends is not None or args.skip_zoo):
        ap.error("--tta-flip adds a column to the model zoo's timings: leave out --backend and --skip-zoo")

    train_pairs = [tuple(p.split(":")) for p in args.train_pairs.split(",") if p]
    if not train_pairs or any(len(p) != 2 or not all(p) for p in train_pairs):
        ap.error(f"--train-pairs {args.train_pairs!r}: give teacher:student pairs, comma-separated "
                 "(e.g. cp_voxel:cp_voxel_s,cp_pillar:cp_pillar_v0.64)")
    if not args.skip_zoo and not Path(args.frame).exists():
        ap.error(f"frame {args.frame} not found (run from the repository root, or pass --frame)")
    report: dict = {}
    ok = True
    if backends is not None and not args.skip_zoo:
        models = [m for m in args.models.split(",") if m]
        rows = []
        for m in models:
            for b in backends:
                print(f"[{len(rows) + 1}/{len(models) * len(backends)}] timing {m} on {b} ...", file=sys.stderr,
                      flush=True)
                rows.append(_bench_in_subprocess(m, args.frame, args.device, args.runs, args.warmup, args.fp16,
                                                 "stage_bench", ("--backend", b) + (("--breakdown",) if args.breakdown
                                                                                     else ())))
        report["backends"] = add_speedups(rows)
        if not args.json:
            r0 = next((r for r in rows if "error" not in r), rows[0])
            print(f"\nBackends on {args.frame} ({r0.get('points', '?')} points), device {r0['device']}"
                  f"{' fp16' if r0.get('fp16') else ''}, {r0.get('threads', '?')} threads, median of {args.runs} "
                  "runs, ms\n")
            print(format_backend_table(rows))
    elif not args.skip_zoo:
        models = [m for m in args.models.split(",") if m]
        rows = []
        for i, m in enumerate(models, 1):
            print(f"[{i}/{len(models)}] benchmarking {m} ...", file=sys.stderr, flush=True)
            rows.append(_bench_in_subprocess(m, args.frame, args.device, args.runs, args.warmup, args.fp16,
                                             extra=("--tta-flip",) if args.tta_flip else ()))
        rows = add_paper_columns(rows)
        report["zoo"] = rows
        ok = all(r.get("ratio_ok", True) for r in rows)
        if not args.json:
            print(f"\nModel zoo on {args.frame} ({rows[0]['points']} points), device {rows[0]['device']}"
                  f"{' fp16' if rows[0].get('fp16') else ''}, "
                  f"{args.runs} runs, {os.cpu_count()} CPU cores\n")
            print(format_zoo_table(rows))
            print(f"\nstudent/teacher GFLOPs ratios within {RATIO_TOLERANCE:.0%} of the paper: {'yes' if ok else 'NO'}")
            if args.tta_flip:
                print("\nTest-time flip (two views a cloud), median ms, timed back to back in each model's process\n")
                print(format_tta_flip_table(rows))
    if args.train:
        from ..train.bench import compare_kd_cost

        report["train"] = {}
        speedups = {}
        amps = {"amp": (True,), "fp32": (False,), "both": (False, True)}[args.train_precision]
        for teacher, student in train_pairs:
            pair = f"{teacher}->{student}"
            timed = {}
            for amp in amps:
                print(f"timing training steps ({'amp' if amp else 'fp32'}): {teacher} / {student} / {student} + "
                      "SparseKD ...", file=sys.stderr, flush=True)
                timed[amp] = compare_kd_cost(teacher, student, "sparsekd", batch_size=args.train_batch,
                                             steps=args.train_steps, device=args.device, amp=amp)
                key = pair if len(amps) == 1 else f"{pair} {'amp' if amp else 'fp32'}"
                report["train"][key] = timed[amp]
            if len(amps) == 2:
                speedups[pair] = precision_speedups(timed[False], timed[True])
        if speedups:
            report["train_precision_speedup"] = speedups
        if not args.json:
            print("\n" + format_train_table(report["train"], args.train_batch))
            for pair, sp in speedups.items():
                print(f"\n{pair}: fp32 step / mixed-precision step = " + ", ".join(
                    f"{k} {v:.2f}x" for k, v in sp.items()))
    if args.data:
        from ..bench.loader_rate import measure_loader_rate_for_root

        report["data"] = measure_loader_rate_for_root(args.data)
        if not args.json:
            print("\nData loading\n" + json.dumps(report["data"], indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
