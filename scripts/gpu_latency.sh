#!/usr/bin/env bash
# GPU latency per stage, and TensorRT engines for the pillar family (issue 14 §3), in one device call.
#
#   scripts/gpu_latency.sh prepare     # here, once: pack what the GPU machine's image lacks into .device/
#   bash scripts/gpu_latency.sh run    # on the GPU machine: device `run` with carry [".device"], timeout 600
#
# prepare (on a development machine with network): downloads spconv-cu126 2.3.8 and cumm-cu126 for the GPU
# image's Python (3.12) and the pure-Python packages they import (pccm, ccimport, lark) and packs them as an xz
# tarball split into 30 MiB parts, .device/site.tar.xz.part-aa, -ab, ...: the two wheels are 98 MB (350 MB
# unpacked), the tarball an estimated 55-60 MB (xz on samples of the two largest libraries; prepare has not
# been run whole), and a device run carries at most 64 MiB with the work tree (22 MB). .device/ is added to
# .git/info/exclude, so it never lands in a commit. The parts travel in consecutive calls while the machine is
# warm (files a call carried stay there for the next): one call per part but the last, each carrying only that
# part, with the command `true`; then the last part with `bash scripts/gpu_latency.sh run`.
#
# run (on the GPU machine; its image has torch, onnx and onnxruntime, no spconv and no TensorRT): unpacks
# the parts, then times the zoo on the 198k-point Waymo-like frame with `sparsekd-bench --backend`,
# stage by stage (prepare = crop + host-to-device copy, voxelise, sparse 3D backbone, dense part, decode,
# NMS, to_host = device-to-host copy; CUDA synchronised between stages), fp32 and fp16, on every backend the
# machine has: torch always; onnxruntime on CUDA needs onnxruntime-gpu, tensorrt needs TensorRT's Python
# package (both are hundreds of MB, so they cannot be carried: their rows say "not run" unless the image has
# them). TensorRT engines are built for the pillar family when it can; they are cached in $OUT/../trt-cache,
# not returned. Writes to $OUT: stages_fp32.json, stages_fp16.json, stages.md (the tables), env.txt.
#
# Environment: MODELS (default: both families' students and teachers, below), RUNS (30), WARMUP (5),
# BACKENDS (torch,onnxruntime,tensorrt), FP16_BACKENDS (torch,tensorrt), DEVICE (cuda; cpu runs the same
# steps here, to check the script), PYTHON (python3). About 5 minutes on an H100-class machine by estimate
# (25 model/backend processes); not yet run on one.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-cp_pillar_v0.64,cp_pillar,cp_voxel_xxs,cp_voxel_s,cp_voxel}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-5}
BACKENDS=${BACKENDS:-torch,onnxruntime,tensorrt}
FP16_BACKENDS=${FP16_BACKENDS:-torch,tensorrt}  # onnxruntime runs fp32 only
DEVICE=${DEVICE:-cuda}
FRAME=sparsekd_core/assets/sample_data/waymo_like/benchmark_pc.npy
DEVDIR=.device

prepare() {
    local py=${PYTHON:-.venv/bin/python} tmp
    tmp=$(mktemp -d)
    local exclude
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx "/$DEVDIR/" "$exclude" 2>/dev/null || echo "/$DEVDIR/" >> "$exclude"
    mkdir -p "$DEVDIR" "$tmp/wheels" "$tmp/site"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$tmp/wheels" \
        spconv-cu126==2.3.8 cumm-cu126 pccm ccimport lark
    for w in "$tmp"/wheels/*.whl; do "$py" -m zipfile -e "$w" "$tmp/site"; done
    rm -f "$DEVDIR"/site.tar.xz.part-*
    tar -C "$tmp/site" -cf - . | xz -9 -T0 | split -b 30M - "$DEVDIR/site.tar.xz.part-"
    rm -rf "$tmp"
    ls -l "$DEVDIR"/site.tar.xz.part-*
    echo "carry each part in its own device call, in order; the last one with: bash scripts/gpu_latency.sh run"
}

run() {
    local out=${OUT:-gpu_latency_out} site=/tmp/sparsekd_site
    mkdir -p "$out"
    if compgen -G "$DEVDIR/site.tar.xz.part-*" > /dev/null; then
        mkdir -p "$site" && cat "$DEVDIR"/site.tar.xz.part-* | xz -dc | tar -C "$site" -xf -
        export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONUNBUFFERED=1 SPARSEKD_TRT_CACHE="$out/../trt-cache"
    local py=${PYTHON:-python3}
    {
        date -u; "$py" --version; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv || true
        "$py" - <<'EOF'
import importlib
for name in ("torch", "spconv", "onnx", "onnxruntime", "tensorrt"):
    try:
        m = importlib.import_module(name)
        extra = m.get_available_providers() if name == "onnxruntime" else ""
        print(name, getattr(m, "__version__", "?"), extra)
    except Exception as e:  # noqa: BLE001 - report what is missing, go on
        print(name, "missing:", type(e).__name__, e)
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
    } > "$out/env.txt" 2>&1
    cat "$out/env.txt"
    local common=(--models "$MODELS" --device "$DEVICE" --runs "$RUNS" --warmup "$WARMUP" --frame "$FRAME" --breakdown)
    "$py" -m sparsekd_core.cli.bench "${common[@]}" --backend "$BACKENDS" --json > "$out/stages_fp32.json"
    "$py" -m sparsekd_core.cli.bench "${common[@]}" --backend "$FP16_BACKENDS" --fp16 --json > "$out/stages_fp16.json"
    "$py" - "$out" <<'EOF'
import json, sys
from pathlib import Path
from sparsekd_core.cli.bench import format_backend_table
out = Path(sys.argv[1])
parts = []
for precision in ("fp32", "fp16"):
    rows = json.loads((out / f"stages_{precision}.json").read_text())["backends"]
    parts.append(f"## {precision}\n\n" + format_backend_table(rows))
(out / "stages.md").write_text("\n\n".join(parts) + "\n")
print((out / "stages.md").read_text())
EOF
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: scripts/gpu_latency.sh prepare|run (see the header)" >&2; exit 2 ;;
esac
