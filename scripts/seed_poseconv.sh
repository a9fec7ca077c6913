#!/usr/bin/env bash
# The seed PoseConv3D run: TCL's skeleton command line, unchanged. 5% of the training clips keep
# their labels (--percentage 0.95 is the unlabelled fraction); the loss is cross-entropy + 5 x the
# instance contrastive loss between each clip and a copy with Gaussian joint noise (alpha 0.1); the
# group contrastive term is computed and logged but weighted 0 (--gamma2 0). The TSM flags (--arch,
# --shift, ...) and the MotionBERT learning rates are accepted and reported as ignored.
#
#   scripts/seed_poseconv.sh                      # NTU60 xsub (needs data/nturgbd/ntu60_hrnet.pkl, see README)
#   scripts/seed_poseconv.sh synthetic --epochs 1 --max_steps 1    # smoke run, no download
#   PYTHON=.venv/bin/python scripts/seed_poseconv.sh ntu120 --split xset
#
# The first argument, when it does not start with '-', is the dataset (default ntu60); every other
# argument is appended, so later flags override the ones below (argparse keeps the last value).
set -euo pipefail
cd "$(dirname "$0")/.."

dataset=ntu60
if [[ $# -gt 0 && $1 != -* ]]; then
    dataset=$1
    shift
fi

exec "${PYTHON:-python}" main.py "$dataset" RGB --seed 123 --input_f Skeleton --in_channels 68 \
    --strategy classwise --arch resnet18 --num_segments 8 --second_segments 8 --threshold 0.8 --gd 20 \
    --epochs 1000 --percentage 0.95 -j 2 --dropout 0.5 --consensus_type=avg --eval-freq=1 --print-freq 50 \
    --shift --shift_div=8 --shift_place=blockres --npb --gpus 0 --mu 1 --gamma 5 --gamma2 0 \
    --use_group_contrastive --sup_thresh 0 --batch-size 32 --valbatchsize 32 --lr_backbone1 0.001 \
    --lr_decay1 0.9 --noise_alpha 0.1 \
    "$@"
