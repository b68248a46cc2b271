#!/usr/bin/env bash
# Issue 11 on a lent GPU machine: generate the realistic simulated set there (the torch ray caster: the machine has
# no open3d, and a call carries at most 64 MiB, far less than a dataset) and train the 360-degree teacher and its
# SparseKD student on it, each stage within one 10-minute device call; the training stages resume (the data stage
# starts over if it was cut off, so give it FRAMES it can finish).
#
#   scripts/device_sim360.sh prepare         # here, once: spconv for the GPU image into .device/ (device_site.sh)
#   bash scripts/device_sim360.sh data       # there: FRAMES frames (torch caster on DEVICE), infos, gt database
#   bash scripts/device_sim360.sh teacher    # there: TEACHER on them; weights and summary to $OUT/teacher
#   bash scripts/device_sim360.sh student    # there: STUDENT distilled from it (--kd sparsekd); to $OUT/student
#   bash scripts/device_sim360.sh all        # data, teacher, student in one call (small FRAMES / epochs only)
#
# Device calls: carry [".device"] (scripts/device_site.sh: with the work tree it fits one call; later calls on the
# same warm machine find it unpacked). The data and the runs live in WORK (default /tmp/sim360) on the machine and
# survive between calls while it stays warm; a stage cut by the call's time limit continues from its newest checkpoint when called
# again (sparsekd-train --resume; CKPT_EVERY steps apart). What comes back is $OUT: final.pth, summary.json and
# console.log of each run (an fp32 pillar teacher is about 20 MB), and the data stage's sim_meta.json.
# Measure the returned weights here, on the real frames, as docs/results.md does: never tune on them.
#
# Environment: FRAMES (3000), PRESET and RANDOM_MOUNT (the mix of the sim11a set in the issue 11 note), SEED (11),
# SIM_WORKERS (8), TEACHER (cp_pillar_sim360), STUDENT (cp_pillar_v0.64_sim360), TEACHER_EPOCHS (20),
# STUDENT_EPOCHS (20), BATCH (8), LR (0.003), CKPT_EVERY (200), TRAIN_WORKERS (6), DEVICE (cuda; cpu runs the
# same steps here with tiny FRAMES and epochs, to check the script), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/device_site.sh
source scripts/device_site.sh

FRAMES=${FRAMES:-3000}
PRESET=${PRESET:-hdl64:0.75,hdl32:0.07,vlp16:0.05,os1_64:0.06,os1_128:0.04,waymo_top:0.03}
RANDOM_MOUNT=${RANDOM_MOUNT:-0.25}
SEED=${SEED:-11}
SIM_WORKERS=${SIM_WORKERS:-8}
TEACHER=${TEACHER:-cp_pillar_sim360}
STUDENT=${STUDENT:-cp_pillar_v0.64_sim360}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-20}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-20}
BATCH=${BATCH:-8}
LR=${LR:-0.003}
CKPT_EVERY=${CKPT_EVERY:-200}
TRAIN_WORKERS=${TRAIN_WORKERS:-6}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/sim360}
OUT=${OUT:-device_sim360_out}
PY=${PYTHON:-python3}
DATA="$WORK/data/kitti"

data() {
    if [[ -f "$WORK/data/.done" ]]; then echo "data: already generated in $WORK/data"; return; fi
    rm -rf "$WORK/data"
    "$PY" -m sparsekd_core.cli.sim --out "$WORK/data" --frames "$FRAMES" --format kitti --preset "$PRESET" \
        --random-mount "$RANDOM_MOUNT" --labels all --seed "$SEED" --val-fraction 0.05 --workers "$SIM_WORKERS" \
        --raycaster torch --device "$DEVICE" --quiet
    "$PY" -m sparsekd_core.cli.data kitti --root "$DATA"
    touch "$WORK/data/.done"
    mkdir -p "$OUT" && cp "$WORK/data/sim_meta.json" "$OUT/"
}

train() {  # train NAME ARGS...: one resumable run in WORK/runs/NAME, its results copied to OUT/NAME
    local name=$1; shift
    local run="$WORK/runs/$name"
    if [[ ! -f "$WORK/data/.done" ]]; then echo "$name: no data in $WORK/data: run the data stage first" >&2; exit 2; fi
    mkdir -p "$run" "$OUT/$name"
    if [[ -f "$run/final.pth" ]]; then
        echo "$name: already trained ($run)"
    else
        "$PY" -m sparsekd_core.cli.train "$@" --data "$DATA" --out "$run" --device "$DEVICE" --batch-size "$BATCH" \
            --lr "$LR" --workers "$TRAIN_WORKERS" --ckpt-every "$CKPT_EVERY" --resume --quiet 2>&1 \
            | tee -a "$OUT/$name/console.log"
    fi
    for f in final.pth summary.json; do [[ -f "$run/$f" ]] && cp "$run/$f" "$OUT/$name/"; done
    return 0
}

teacher() { train teacher --model "$TEACHER" --epochs "$TEACHER_EPOCHS"; }

student() {
    local weights="$WORK/runs/teacher/final.pth"
    if [[ ! -f "$weights" ]]; then echo "student: no finished teacher at $weights: run the teacher stage" >&2; exit 2; fi
    train student --model "$STUDENT" --teacher "$weights" --kd sparsekd --epochs "$STUDENT_EPOCHS"
}

case "${1:-}" in
    prepare) device_site_prepare ;;
    data) device_site_activate; data ;;
    teacher) device_site_activate; teacher ;;
    student) device_site_activate; student ;;
    all) device_site_activate; data; teacher; student ;;
    *) echo "usage: scripts/device_sim360.sh prepare|data|teacher|student|all (see the header)" >&2; exit 2 ;;
esac
