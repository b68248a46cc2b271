#!/usr/bin/env bash
# GPU latency per stage, and TensorRT engines for the pillar family (issue 14 §3), in one device call.
#
#   scripts/gpu_latency.sh prepare     # here, once: pack what the GPU machine's image lacks into .device/
#   bash scripts/gpu_latency.sh run    # on the GPU machine: device `run` with carry [".device"], timeout 600
#
# prepare (on a development machine with network): packs spconv-cu126 2.3.8 and cumm-cu126 into .device/ as xz
# parts (scripts/device_site.sh says how and why; today they and the work tree fit one call, carry [".device"]).
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
# shellcheck source=scripts/device_site.sh
source scripts/device_site.sh

prepare() {
    device_site_prepare
    echo "device call: carry [\".device\"], command: bash scripts/gpu_latency.sh run (scripts/device_site.sh: sizes)"
}

run() {
    local out=${OUT:-gpu_latency_out}
    mkdir -p "$out"
    device_site_activate
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
