#!/usr/bin/env bash
# Clean accuracy on MSR Action3D cross-subject, one ingredient at a time, over three seeds: the README's
# "Accuracy on MSR Action3D" table is this script's own output (OUT/table.md).
#   scripts/msr_accuracy.sh [MSR_DIR]        # MSR_DIR defaults to ../shared/data/msr_action3d (research use only)
#   SMOKE=1 scripts/msr_accuracy.sh          # one seed, one epoch of two steps per run: a check that it runs
# Every run trains with cross-entropy on the clean and the jittered view (--ce_views both --noise_alpha 0.02,
# the robustness benchmark's best objective) and writes its clean test probabilities (--save_test_probs).
# Rows (each seed's run is main.py with the flags below; fused rows fuse that seed's runs with equal weights,
# scripts/fuse.py):
#   pose_e20_val   small PoseConv3D on the joints' front projection, 20 epochs, the checkpoint chosen on a
#                  held-out training subject (the robustness benchmark's setting)
#   pose_e20       the same trained on every training subject, the last checkpoint scored
#   pose_e120      120 epochs
#   pose_bone, pose_jm, pose_bm: the bone, joint-motion and bone-motion streams, 120 epochs each
#   mb             small MotionBERT on the 3D joints, every training subject, MB_EPOCHS epochs
#   gcn_stgcnpp, gcn_ctrgcn: ST-GCN++ / CTR-GCN (base_channels 16, 32 frames, pyskl's GCN input) on the 3D joints,
#                  GCN_EPOCHS epochs, SGD lr 0.1, weight decay 3e-4, no dropout (chosen on a held-out training
#                  subject against CTR-GCN and wider / longer variants; README)
#   gcn_stgcnpp_vis: gcn_stgcnpp with --visibility (a seen / missing channel per joint)
#   gcn_streams    ST-GCN++'s four streams in one command (--streams, fused 2:2:1:1 as pyskl fuses them); its
#                  streams' own runs are rows too (gcn_streams/joint ...: the gcn_stgcnpp row's model, trained again)
# Knobs: SEEDS ("0 1 2"), JOBS (2 runs at once, one torch thread each), MB_EPOCHS (30), GCN_EPOCHS (80),
# OUT (runs/msr_accuracy),
# ONLY (the rows to train, default all of them; e.g. ONLY="pose_e120 pose_bone pose_jm pose_bm" trains the
# four-stream PoseConv3D alone), PYTHON. A run whose test_probs.npz exists is not trained again (delete its
# folder to redo it); an interrupted one resumes from its last.pt (main.py's own resume; its log grows, and its
# time in the table is that of the last part); a table row whose runs are not all there is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SRC=${1:-../shared/data/msr_action3d}
OUT=${OUT:-runs/msr_accuracy}
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-2}
MB_EPOCHS=${MB_EPOCHS:-30}
GCN_EPOCHS=${GCN_EPOCHS:-80}
EXTRA=()
if [[ "${SMOKE:-0}" == 1 ]]; then
  SEEDS=0 OUT=${OUT}_smoke
  EXTRA=(--epochs 1 --max_steps 2)
fi
if [[ ! -d "$SRC" ]]; then
  echo "msr_accuracy.sh: error: MSR Action3D not found at $SRC; pass its folder (see ../shared/data)" >&2
  exit 2
fi

COMMON=(--gamma 0 --ce_views both --noise_alpha 0.02 -j 0 --eval_corruptions none --eval_alphas 0 --save_test_probs)
ALL=(--val_fraction 0 --sweep_checkpoints last)
POSE=(custom --ann_file "$OUT/data/msr3d.pkl" --max_persons 1 --input_f Skeleton
      --model_cfg base_channels=16 "stage_blocks=(2,2,2)" --clip_len 32 -b 8 --lr 0.05)
MB=(custom --ann_file "$OUT/data/msr3d.pkl" --model_type motionbert --max_persons 1 --input_f Skeleton
    --model_cfg dim_feat=32 dim_rep=32 depth=2 num_heads=4 hidden_dim=128 --clip_len 32 -b 16
    --lr_backbone1 1e-3 --lr_head1 1e-3 --epochs "$MB_EPOCHS" "${ALL[@]}")
GCN=(custom --ann_file "$OUT/data/msr3d.pkl" --input_f Skeleton --max_persons 1 --model_cfg base_channels=16
     --clip_len 32 -b 16 --lr 0.1 --wd 3e-4 --dropout 0 --epochs "$GCN_EPOCHS" "${ALL[@]}")
declare -A ROWS=(
  [pose_e20_val]="${POSE[*]} --epochs 20 --val_fraction 0.1 --sweep_checkpoints best"
  [pose_e20]="${POSE[*]} --epochs 20 ${ALL[*]}"
  [pose_e120]="${POSE[*]} --epochs 120 ${ALL[*]}"
  [pose_bone]="${POSE[*]} --epochs 120 ${ALL[*]} --stream bone"
  [pose_jm]="${POSE[*]} --epochs 120 ${ALL[*]} --stream joint_motion"
  [pose_bm]="${POSE[*]} --epochs 120 ${ALL[*]} --stream bone_motion"
  [mb]="${MB[*]}"
  [gcn_stgcnpp]="${GCN[*]} --model_type stgcnpp"
  [gcn_ctrgcn]="${GCN[*]} --model_type ctrgcn"
  [gcn_stgcnpp_vis]="${GCN[*]} --model_type stgcnpp --visibility"
  [gcn_streams]="${GCN[*]} --model_type stgcnpp --streams joint bone joint_motion bone_motion --fusion_weights pyskl"
)
ORDER=${ONLY:-"gcn_streams mb pose_e120 pose_bone pose_jm pose_bm gcn_ctrgcn gcn_stgcnpp gcn_stgcnpp_vis pose_e20 pose_e20_val"}  # seed by seed, the longest run first
for row in $ORDER; do
  if [[ -z "${ROWS[$row]:-}" ]]; then
    echo "msr_accuracy.sh: error: unknown row $row in ONLY; valid: ${!ROWS[*]}" >&2
    exit 2
  fi
done
mkdir -p "$OUT/data" "$OUT/jobs"
start=$(date +%s)
if [[ ! -f "$OUT/data/msr3d.pkl" ]] &&
  ! "$PYTHON" -m datasets.convert msr "$SRC" "$OUT/data/msr3d.pkl" > "$OUT/data/convert3d.log" 2>&1; then
  echo "msr_accuracy.sh: error: converting $SRC failed; see $OUT/data/convert3d.log" >&2
  exit 1
fi

rm -f "$OUT"/jobs/*.sh
n=0
for seed in $SEEDS; do
  for row in $ORDER; do
    name="${row}_s$seed"
    [[ -f "$OUT/$name/test_probs.npz" ]] && continue
    # shellcheck disable=SC2206
    flags=(${ROWS[$row]})
    cmd=$(printf '%q ' "$PYTHON" main.py "${flags[@]}" "${COMMON[@]}" --seed "$seed" --run_dir "$OUT" --name "$name" \
      "${EXTRA[@]}")
    n=$((n + 1))
    echo "OMP_NUM_THREADS=1 $cmd >> $OUT/$name.log 2>&1" > "$(printf '%s/jobs/%03d.sh' "$OUT" "$n")"
  done
done
if ((n > 0)); then ls "$OUT"/jobs/*.sh | xargs -P "$JOBS" -n 1 bash; fi

runs() {  # runs ROW[,ROW...]: one argument per seed, each the seed's runs joined by commas; fails if one is missing
  # (ROW/STREAM is one stream's run inside a --streams row's folder)
  local seed row arg dir
  for seed in $SEEDS; do
    arg=""
    for row in ${1//,/ }; do
      dir="$OUT/${row%%/*}_s$seed"
      [[ $row == */* ]] && dir+="/${row#*/}"
      [[ -f "$dir/test_probs.npz" ]] || return 1
      arg+="${arg:+,}$dir"
    done
    printf '%s\n' "$arg"
  done
}
table() {
  local header=--header
  while IFS='|' read -r rows label; do
    runs "$rows" > "$OUT/.args" || continue
    mapfile -t args < "$OUT/.args"
    "$PYTHON" scripts/accuracy_table.py $header --row "$label" "${args[@]}"
    header=""
  done
}
table <<'EOF' | tee "$OUT/table.md"
pose_e20_val|PoseConv3D joints, 20 epochs, checkpoint chosen on a held-out training subject
pose_e20|PoseConv3D joints, 20 epochs, every training subject, last checkpoint
pose_e120|PoseConv3D joints, 120 epochs
pose_bone|PoseConv3D bones, 120 epochs
pose_jm|PoseConv3D joint motion, 120 epochs
pose_bm|PoseConv3D bone motion, 120 epochs
pose_e120,pose_bone|fused: PoseConv3D joints + bones
pose_e120,pose_bone,pose_jm,pose_bm|fused: PoseConv3D, four streams
mb|MotionBERT 3D joints
mb,pose_e120|fused: MotionBERT + PoseConv3D joints
mb,pose_e120,pose_bone,pose_jm,pose_bm|fused: MotionBERT + PoseConv3D's four streams
gcn_stgcnpp|ST-GCN++ joints
gcn_streams/joint|ST-GCN++ joints (the --streams run's joint stream)
gcn_streams/bone|ST-GCN++ bones (the --streams run's)
gcn_streams/joint_motion|ST-GCN++ joint motion (the --streams run's)
gcn_streams/bone_motion|ST-GCN++ bone motion (the --streams run's)
gcn_ctrgcn|CTR-GCN joints
gcn_stgcnpp_vis|ST-GCN++ joints with a seen / missing channel (--visibility)
gcn_streams|ST-GCN++ four streams, one --streams command (2:2:1:1)
EOF
echo "msr accuracy: $(($(date +%s) - start)) s wall time with JOBS=$JOBS"
