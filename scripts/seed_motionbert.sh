#!/usr/bin/env bash
# The seed MotionBERT run: the PoseConv3D seed command line (scripts/seed_poseconv.sh) plus
# --model_type motionbert. MotionBERT reads --lr_backbone1/--lr_decay1 (AdamW, x0.9 per epoch); the
# TSM and SGD flags are accepted and reported as ignored.
#
#   scripts/seed_motionbert.sh                      # NTU60 xsub (needs data/nturgbd/ntu60_hrnet.pkl, see README)
#   scripts/seed_motionbert.sh synthetic --epochs 1 --max_steps 1    # smoke run, no download
#   PYTHON=.venv/bin/python scripts/seed_motionbert.sh ntu120 --split xset
set -euo pipefail
exec "$(dirname "$0")/seed_poseconv.sh" "$@" --model_type motionbert
