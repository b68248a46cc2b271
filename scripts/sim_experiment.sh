#!/usr/bin/env bash
# The distillation experiment on the simulated dataset (docs/results.md), one model family per call:
#
#   scripts/sim_experiment.sh voxel     # cp_voxel_sim teacher -> cp_voxel_s_sim students
#   scripts/sim_experiment.sh pillar    # cp_pillar_sim teacher -> cp_pillar_v0.64_sim students
#   scripts/sim_experiment.sh pillar long   # then: 6-epoch students (SparseKD, no KD, TGI alone; seed 0)
#   scripts/sim_experiment.sh pillar kd     # only the rows a change to the KD loss touches: the teacher, the
#                                           # plain and SparseKD students (seeds 0, 1), the 6-epoch SparseKD one
#   scripts/sim_experiment.sh anchor        # anchor heads: pointpillar_sim teacher -> pointpillar_s_sim students
#
# Runs, in this order: the teacher (see below for the voxel teacher's extra epochs); the plain students (seeds 0 and
# 1); the SparseKD students (seeds 0 and 1); the ablations (TGI alone, pivotal logit KD, pivotal + label KD,
# full-map logit KD, FitNet feature KD; seed 0). Each run writes RUNS/<family>_<name>/ (final.pth, summary.json with the KITTI
# AP, log.jsonl) and its console log beside it; a finished run (final.pth present) is skipped and an interrupted one
# resumes from its newest checkpoint, so the script can be stopped and started again at any time. The two families
# are independent: run them side by side on a 2-core machine (each uses one thread; spconv's CPU path is
# single-threaded).
# A second call for the same family takes the runs that nobody has started (each run holds a lock while it
# trains), so a core that finished its own family can help the other.
#
# Environment: DATA (default data/sim/kitti; make it with `sparsekd-sim --out data/sim --frames 600 --seed 0`
# and `sparsekd-data kitti --root data/sim/kitti`), RUNS (default runs/sim), THREADS (default 1), CKPT_EVERY
# (default 0: a checkpoint per epoch; N: also every N steps, for long epochs).
set -euo pipefail

family=${1:?usage: scripts/sim_experiment.sh voxel|pillar|anchor [main|long|kd]}
stage=${2:-main}
case "$stage" in main|long|kd) ;; *) echo "unknown stage '$stage': use main, long or kd" >&2; exit 2 ;; esac
DATA=${DATA:-data/sim/kitti}
RUNS=${RUNS:-runs/sim}
export OMP_NUM_THREADS=${THREADS:-1}
# The voxel teacher learns slower on its coarse sim grid (0.8 m BEV cells): after its 3 epochs it trains 2 more,
# from its own weights with a second one-cycle at half the peak lr (`--kd tgi` with itself as the teacher
# copies every weight, as a student of the teacher's own width; no KD loss).
case "$family" in
  voxel)  teacher_model=cp_voxel_sim;  student_model=cp_voxel_s_sim; more_teacher_epochs=2 ;;
  pillar) teacher_model=cp_pillar_sim; student_model=cp_pillar_v0.64_sim; more_teacher_epochs=0 ;;
  anchor) teacher_model=pointpillar_sim; student_model=pointpillar_s_sim; more_teacher_epochs=0 ;;
  *) echo "unknown family '$family': use voxel, pillar or anchor" >&2; exit 2 ;;
esac
teacher="$RUNS/${family}_teacher/final.pth"

train() {  # train NAME ARGS...: one resumable run
  local name=$1; shift
  local out="$RUNS/${family}_${name}"
  if [[ -f "$out/final.pth" ]]; then echo "[$family] $name: done ($out)"; return; fi
  mkdir -p "$out"
  if ! mkdir "$out/.lock" 2>/dev/null; then
    if kill -0 "$(cat "$out/.lock/pid" 2>/dev/null)" 2>/dev/null; then echo "[$family] $name: running elsewhere"; return; fi
    echo "[$family] $name: stale lock (its process is gone), taking it over"
  fi
  echo $$ >"$out/.lock/pid"
  local prev="" from=""
  for arg in "$@"; do [[ "$prev" == --teacher ]] && from=$arg; prev=$arg; done
  if [[ -n "$from" ]]; then  # a KD run: wait while another process trains its teacher
    while [[ ! -f "$from" ]] && kill -0 "$(cat "$(dirname "$from")/.lock/pid" 2>/dev/null)" 2>/dev/null; do
      sleep 30
    done
  fi
  echo "[$family] $name: sparsekd-train $* --data $DATA --out $out"
  sparsekd-train "$@" --data "$DATA" --out "$out" --resume --workers 0 --ckpt-every "${CKPT_EVERY:-0}" --quiet \
    >>"$out/console.log" 2>&1
  rm -rf "$out/.lock"
  echo "[$family] $name: finished"
}

if (( more_teacher_epochs > 0 )); then
  train teacher_3ep --model "$teacher_model"
  train teacher --model "$teacher_model" --teacher "$RUNS/${family}_teacher_3ep/final.pth" --kd tgi \
    --epochs "$more_teacher_epochs" --lr 0.0015
else
  train teacher --model "$teacher_model"
fi
if [[ "$stage" == long ]]; then  # 3x the students' schedule: do the KD losses add to TGI when students train longer?
  train sparsekd_6ep_s0 --model "$student_model" --teacher "$teacher" --kd sparsekd --epochs 6
  train student_6ep_s0 --model "$student_model" --epochs 6
  train tgi_6ep_s0 --model "$student_model" --teacher "$teacher" --kd tgi --epochs 6
  exit 0
fi
# the plain students first: they need no teacher, so a second and third call train them while the teacher trains
for seed in 0 1; do
  train "student_s$seed" --model "$student_model" --seed "$seed"
done
for seed in 0 1; do
  train "sparsekd_s$seed" --model "$student_model" --seed "$seed" --teacher "$teacher" --kd sparsekd
done
if [[ "$stage" == kd ]]; then  # re-run the SparseKD rows (and what they are compared with), not the ablations
  train sparsekd_6ep_s0 --model "$student_model" --teacher "$teacher" --kd sparsekd --epochs 6
  exit 0
fi
train tgi_s0 --model "$student_model" --teacher "$teacher" --kd tgi
train pivotal_s0 --model "$student_model" --teacher "$teacher" --kd pivotal
train pivotal_label_s0 --model "$student_model" --teacher "$teacher" --kd pivotal,label
train logit_s0 --model "$student_model" --teacher "$teacher" --kd logit
train feature_s0 --model "$student_model" --teacher "$teacher" --kd feature
