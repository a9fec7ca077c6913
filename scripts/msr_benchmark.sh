#!/usr/bin/env bash
# MSR Action3D end to end: convert the 2D (depth-image) skeletons, train a small PoseConv3D on joint
# coordinates and a small MotionBERT on the 3D joints, each with cross-entropy only and with the contrastive
# loss, then compare them across the noise sweep.
#   scripts/msr_benchmark.sh [MSR_DIR] [extra main.py flags...]
# MSR_DIR defaults to ../shared/data/msr_action3d (research use only; see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SRC=${1:-../shared/data/msr_action3d}
shift || true
OUT=${RUN_DIR:-runs/msr}
mkdir -p data/msr "$OUT"
"$PYTHON" -m datasets.convert msr "$SRC" data/msr/msr2d.pkl --2d
for g in 0 1; do
  "$PYTHON" main.py custom --ann_file data/msr/msr2d.pkl --max_persons 1 --input_f Skeleton \
    --model_cfg base_channels=16 "stage_blocks=(2,2,2)" --clip_len 32 --epochs 40 -b 8 --lr 0.05 \
    --gamma "$g" --noise_alpha 0.02 --run_dir "$OUT" --name "msr_sk_g$g" "$@"
done
# MotionBERT on the 3D joints (x, y, z), centred and scaled per clip.
"$PYTHON" -m datasets.convert msr "$SRC" data/msr/msr3d.pkl
for g in 0 1; do
  "$PYTHON" main.py custom --ann_file data/msr/msr3d.pkl --model_type motionbert --input_f Skeleton \
    --model_cfg dim_feat=32 dim_rep=32 depth=2 num_heads=4 hidden_dim=128 --clip_len 32 --epochs 40 -b 16 \
    --lr_backbone1 1e-3 --lr_head1 1e-3 --gamma "$g" --noise_alpha 0.02 --run_dir "$OUT" --name "msr3d_mb_g$g" "$@"
done
"$PYTHON" scripts/compare_runs.py "$OUT/msr_sk_g0" "$OUT/msr_sk_g1" "$OUT/msr3d_mb_g0" "$OUT/msr3d_mb_g1" --out "$OUT"
