#!/usr/bin/env bash
# The seed MotionBERT run: the PoseConv3D seed command line (scripts/seed_poseconv.sh) plus
# --model_type motionbert. MotionBERT reads --lr_backbone1/--lr_decay1 (AdamW, x0.9 per epoch); the
# TSM and SGD flags are accepted and reported as ignored.
#
#   scripts/seed_motionbert.sh                      # NTU60 xsub (needs data/nturgbd/ntu60_hrnet.pkl, see README)
#   scripts/seed_motionbert.sh synthetic --epochs 1 --max_steps 1    # smoke run, no download
#   PYTHON=.venv/bin/python scripts/seed_motionbert.sh ntu120 --split xset
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
    --lr_decay1 0.9 --noise_alpha 0.1 --model_type motionbert \
    "$@"
