#!/usr/bin/env bash
# Robustness to corruptions never seen in training, on MSR Action3D cross-subject (3D joints).
#   scripts/unseen_benchmark.sh [MSR_DIR]     # about 90 min on the 2-core CPU, two runs at once (docs/robustness.md)
#   SMOKE=1 scripts/unseen_benchmark.sh       # one seed, one epoch of two steps, two families: a check that it runs
# The suite's eight families are split once, for every model alike:
#   seen (the suite mix trains on them):  jitter missing_joints frame_drop outliers
#   unseen (no objective trains on them):  occlusion frame_rate block_drop swap
# Each unseen family has a seen relative (a body part hidden for a while / joints lost at random; frames at a
# lower rate or a block of them gone / frames dropped at random; left and right exchanged / joints displaced),
# so the table says whether robustness carries over to a related failure, not to an arbitrary one.
# Rows (ST-GCN++ joints, the accuracy table's best single model, base 16, GCN_EPOCHS epochs, SEEDS seeds):
#   ce          cross-entropy on the clean view alone
#   aug         cross-entropy on the clean and a jittered view (alpha 0.02): noise augmentation, as msr_accuracy.sh
#   js          cross-entropy on the clean view + Jensen-Shannon consistency with the jittered one (AugMix's term)
#   tcl         cross-entropy + TCL's instance contrastive term (gamma 1) against the jittered view
#   mix         cross-entropy on the clean view and one drawn from the seen families (every level)
#   mix_repair  mix, with --repair swaps outliers interpolate on every training and test clip
#   mix_vis     mix, with --visibility (a seen / missing channel per joint)
#   mix_all     mix over all eight families (seed 0 only): the reference for leave-one-out
#   lofo_F      mix over the seven families other than F (seed 0 only), for every family F
# and the small PoseConv3D on the same joints (POSE_EPOCHS epochs): the same rows but mix_all and lofo.
# Last checkpoints, every training subject (--val_fraction 0): the settings are those chosen on a held-out
# training subject for scripts/msr_accuracy.sh, never on the test split. Tables by scripts/compare_runs.py
# --seen (mCA over the seen and the unseen families for every row) and scripts/lofo_table.py.
# Knobs: SEEDS ("0 1 2"), JOBS (2), GCN_EPOCHS (40), POSE_EPOCHS (40), ONLY (rows), OUT, PYTHON. A run whose
# robustness.csv exists is not trained again (delete its folder to redo it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SRC=${1:-../shared/data/msr_action3d}
OUT=${OUT:-runs/unseen_benchmark}
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-2}
GCN_EPOCHS=${GCN_EPOCHS:-40}
POSE_EPOCHS=${POSE_EPOCHS:-40}
SEEN="jitter missing_joints frame_drop outliers"
FAMILIES="jitter missing_joints occlusion frame_rate frame_drop block_drop outliers swap"
EXTRA=()
if [[ "${SMOKE:-0}" == 1 ]]; then
  SEEDS=0 OUT=${OUT}_smoke GCN_EPOCHS=1 POSE_EPOCHS=1 FAMILIES="missing_joints swap"
  EXTRA=(--max_steps 2 --eval_corruptions missing_joints:light swap:light)
fi
if [[ ! -d "$SRC" ]]; then
  echo "unseen_benchmark.sh: error: MSR Action3D not found at $SRC; pass its folder (see ../shared/data)" >&2
  exit 2
fi
mkdir -p "$OUT/data" "$OUT/gcn" "$OUT/pose"
start=$(date +%s)
[[ -f "$OUT/data/msr3d.pkl" ]] || "$PYTHON" -m datasets.convert msr "$SRC" "$OUT/data/msr3d.pkl" > "$OUT/data/convert.log"

COMMON=(custom --ann_file "$OUT/data/msr3d.pkl" --input_f Skeleton --max_persons 1 --noise_alpha 0.02 -j 0
        --val_fraction 0 --sweep_checkpoints last --eval_corruptions all --eval_alphas 0)
GCN=(--model_type stgcnpp --model_cfg base_channels=16 --clip_len 32 -b 16 --lr 0.1 --wd 3e-4 --dropout 0
     --epochs "$GCN_EPOCHS")
POSE=(--model_cfg base_channels=16 "stage_blocks=(2,2,2)" --clip_len 32 -b 8 --lr 0.05 --epochs "$POSE_EPOCHS")
# shellcheck disable=SC2206
MIX=(--gamma 0 --ce_views both --train_corruptions $SEEN)
declare -A ROWS=(
  [ce]="--gamma 0 --ce_views clean"
  [aug]="--gamma 0 --ce_views both"
  [js]="--gamma 0 --ce_views clean --consistency js"
  [tcl]="--gamma 1 --ce_views clean"
  [mix]="${MIX[*]}"
  [mix_repair]="${MIX[*]} --repair swaps outliers interpolate"
  [mix_vis]="${MIX[*]} --visibility"
)
ORDER=${ONLY:-"mix_repair mix_vis mix js tcl aug ce"}
rm -rf "$OUT/jobs" && mkdir -p "$OUT/jobs"
n=0
job() {  # job FOLDER NAME FLAGS...: one queued run, unless its robustness.csv is there
  local folder=$1 name=$2
  shift 2
  [[ -f "$OUT/$folder/$name/robustness.csv" ]] && return 0
  n=$((n + 1))
  local cmd
  cmd=$(printf '%q ' "$PYTHON" main.py "${COMMON[@]}" "$@" --run_dir "$OUT/$folder" --name "$name" "${EXTRA[@]}")
  echo "OMP_NUM_THREADS=1 $cmd > $OUT/$folder/$name.log 2>&1" > "$(printf '%s/jobs/%03d.sh' "$OUT" "$n")"
}
first=${SEEDS%% *}
for seed in $SEEDS; do  # seed by seed, so that a stopped benchmark leaves whole rows for the seeds it finished
  for row in $ORDER; do
    # shellcheck disable=SC2206
    job gcn "${row}_s$seed" "${GCN[@]}" ${ROWS[$row]} --seed "$seed"
  done
  for row in $ORDER; do
    # shellcheck disable=SC2206
    job pose "${row}_s$seed" "${POSE[@]}" ${ROWS[$row]} --seed "$seed"
  done
  if [[ $seed == "$first" ]]; then
    # shellcheck disable=SC2086
    job gcn "mix_all_s$seed" "${GCN[@]}" --gamma 0 --ce_views both --train_corruptions $FAMILIES --seed "$seed"
    for f in $FAMILIES; do
      # shellcheck disable=SC2046
      job gcn "lofo_${f}_s$seed" "${GCN[@]}" --gamma 0 --ce_views both \
        --train_corruptions $(tr ' ' '\n' <<< "$FAMILIES" | grep -vx "$f") --seed "$seed"
    done
  fi
done
if (( n )); then
  ls "$OUT"/jobs/*.sh | xargs -P "$JOBS" -n 1 bash
fi

for folder in gcn pose; do
  runs=()
  for row in $ORDER; do
    for seed in $SEEDS; do
      [[ -f "$OUT/$folder/${row}_s$seed/robustness.csv" ]] && runs+=("$OUT/$folder/${row}_s$seed")
    done
  done
  (( ${#runs[@]} )) || continue
  echo "== $folder"
  # shellcheck disable=SC2086
  "$PYTHON" scripts/compare_runs.py "${runs[@]}" --seeds --checkpoint last --seen $SEEN --out "$OUT/$folder" \
    | tee "$OUT/$folder/table.txt"
done
echo "== leave one family out (ST-GCN++, mix, seed $first)"
"$PYTHON" scripts/lofo_table.py "$OUT/gcn" --seed "$first" | tee "$OUT/gcn/lofo.txt"
echo "== wall time per run (s)"
grep -H "^done in" "$OUT"/*/*.log | sed -E 's|.*/([a-z]+)/([^/]+)\.log:done in ([0-9]+) s.*|\1/\2 \3|' | sort | tee "$OUT/times.txt"
echo "unseen benchmark: $(( $(date +%s) - start )) s wall time with JOBS=$JOBS"
