#!/usr/bin/env bash
# MSR Action3D end to end: convert the 2D (depth-image) skeletons, train a small PoseConv3D on joint
# coordinates with cross-entropy only and with the contrastive loss, then compare them across the noise sweep.
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
"$PYTHON" scripts/compare_runs.py "$OUT/msr_sk_g0" "$OUT/msr_sk_g1" --out "$OUT"
