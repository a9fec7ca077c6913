#!/usr/bin/env bash
# The robustness benchmark on MSR Action3D cross-subject: every training objective x both small backbones
# x three seeds, each model scored on the whole corruption suite (and the jitter sweep), then one table of
# mean +- std over the seeds (scripts/compare_runs.py --seeds).
#   scripts/robustness_benchmark.sh [MSR_DIR]          # about 85 min on a 2-core CPU (README)
#   SMOKE=1 scripts/robustness_benchmark.sh            # one seed, one epoch of two steps: a check that it runs
# Objectives (engine/objective.py): ce (cross-entropy), aug (cross-entropy on the corrupted view: noise
# augmentation), aug_both (on both views), js (cross-entropy + Jensen-Shannon consistency, AugMix),
# tcl (cross-entropy + TCL's instance contrastive term, gamma 1), tcl_group (+ TCL's group term). The
# corrupted view is jitter at alpha 0.02 for all. Backbones: the small PoseConv3D of the README on the 2D
# joint coordinates, the small MotionBERT on the 3D joints. Knobs: SEEDS, JOBS (runs at once, one torch
# thread each), EPOCHS_POSE, EPOCHS_MB, BACKBONES (pose, mb or both), OUT, PYTHON. The test split is
# scored with the checkpoint chosen on held-out training subjects (--sweep_checkpoints best).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SRC=${1:-../shared/data/msr_action3d}
OUT=${OUT:-runs/robustness_benchmark}
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-2}
EPOCHS_POSE=${EPOCHS_POSE:-20}
EPOCHS_MB=${EPOCHS_MB:-10}
BACKBONES=${BACKBONES:-"pose mb"}
# TCL's summed weights, as the README's benchmark table was measured (before --loss_weighting mean became
# the default); the weighting matters for js, tcl and tcl_group only.
EXTRA=(--sweep_checkpoints best --loss_weighting sum)
if [[ "${SMOKE:-0}" == 1 ]]; then
  SEEDS=0 EPOCHS_POSE=1 EPOCHS_MB=1 OUT=${OUT}_smoke
  EXTRA+=(--max_steps 2 --eval_corruptions missing_joints:light swap:light frame_rate:light --eval_alphas 0 0.02)
fi
if [[ ! -d "$SRC" ]]; then
  echo "robustness_benchmark.sh: error: MSR Action3D not found at $SRC; pass its folder (see ../shared/data)" >&2
  exit 2
fi
mkdir -p "$OUT/data"
start=$(date +%s)
"$PYTHON" -m datasets.convert msr "$SRC" "$OUT/data/msr2d.pkl" --2d > "$OUT/data/convert2d.log" 2>&1
"$PYTHON" -m datasets.convert msr "$SRC" "$OUT/data/msr3d.pkl" > "$OUT/data/convert3d.log" 2>&1

declare -A OBJECTIVES=(
  [ce]="--gamma 0"
  [aug]="--gamma 0 --ce_views noisy"
  [aug_both]="--gamma 0 --ce_views both"
  [js]="--gamma 0 --consistency js"
  [tcl]="--gamma 1"
  [tcl_group]="--gamma 1 --use_group_contrastive --gamma2 1"
)
ORDER="ce aug aug_both js tcl tcl_group"
POSE=(custom --ann_file "$OUT/data/msr2d.pkl" --max_persons 1 --input_f Skeleton
      --model_cfg base_channels=16 "stage_blocks=(2,2,2)" --clip_len 32 --epochs "$EPOCHS_POSE" -b 8 --lr 0.05)
MB=(custom --ann_file "$OUT/data/msr3d.pkl" --model_type motionbert --input_f Skeleton
    --model_cfg dim_feat=32 dim_rep=32 depth=2 num_heads=4 hidden_dim=128 --clip_len 32 --epochs "$EPOCHS_MB" -b 16
    --lr_backbone1 1e-3 --lr_head1 1e-3)

rm -rf "$OUT/jobs" && mkdir -p "$OUT/jobs" "$OUT/pose" "$OUT/mb"
n=0
for backbone in $BACKBONES; do
  for obj in $ORDER; do
    for seed in $SEEDS; do
      if [[ $backbone == pose ]]; then base=("${POSE[@]}"); else base=("${MB[@]}"); fi
      # shellcheck disable=SC2206
      flags=(${OBJECTIVES[$obj]})
      cmd=$(printf '%q ' "$PYTHON" main.py "${base[@]}" "${flags[@]}" --noise_alpha 0.02 --seed "$seed" -j 0 \
        --run_dir "$OUT/$backbone" --name "${obj}_s$seed" "${EXTRA[@]}")
      n=$((n + 1))
      echo "OMP_NUM_THREADS=1 $cmd > $OUT/$backbone/${obj}_s$seed.log 2>&1" > "$(printf '%s/jobs/%03d.sh' "$OUT" "$n")"
    done
  done
done
ls "$OUT"/jobs/*.sh | xargs -P "$JOBS" -n 1 bash

for backbone in pose mb; do
  [[ -d "$OUT/$backbone/ce_s${SEEDS%% *}" ]] || continue
  runs=()
  for obj in $ORDER; do for seed in $SEEDS; do runs+=("$OUT/$backbone/${obj}_s$seed"); done; done
  echo "== $backbone"
  "$PYTHON" scripts/compare_runs.py "${runs[@]}" --seeds --out "$OUT/$backbone" | tee "$OUT/$backbone/table.txt"
done
echo "robustness benchmark: $(( $(date +%s) - start )) s wall time with JOBS=$JOBS"
