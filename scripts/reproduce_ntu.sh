#!/usr/bin/env bash
# Reproduce a published recipe end to end on NTU RGB+D (recipes/, README "Published recipes"): train
# with every setting of the upstream configuration, then score the last checkpoint with the recipe's
# test protocol (PoseConv3D: 10 clips x flip) and the robustness suite. Needs the annotation file and a
# CUDA GPU; not run in CI (the full schedules take days).
#
#   scripts/reproduce_ntu.sh posec3d_ntu60_xsub_joint                  # one GPU, -b 32: lr 0.4 x 32/256
#   NPROC=8 scripts/reproduce_ntu.sh posec3d_ntu60_xsub_joint          # 8 GPUs (torchrun): upstream's batch 256
#   scripts/reproduce_ntu.sh motionbert_ntu60_xsub_ft --pretrained MB_release/latest_epoch.bin
#   DATA_ROOT=/data scripts/reproduce_ntu.sh posec3d_ntu120_xset_limb --amp bf16
#   scripts/reproduce_ntu.sh stgcnpp_ntu60_xsub_3dkp_j                 # ST-GCN++ on the 3D joints (ntu60_3danno.pkl)
#
# Every argument after the recipe is passed to main.py and overrides the recipe (e.g. --amp bf16,
# --name, --ann_file FILE). Environment: PYTHON (python), DATA_ROOT (data), NPROC (1: plain main.py;
# more: scripts/dist_train.sh, one process per GPU), WORKERS (4, pyskl's workers_per_gpu), DRY_RUN=1
# (print the command instead of running it), ALLOW_CPU=1 (run without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python}
if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: scripts/reproduce_ntu.sh RECIPE [main.py flags...] (recipes: python main.py --help_all, --recipe)" >&2
    exit 2
fi
recipe=$1
shift

# The annotation file the run will read: --ann_file or --data_root among the extra flags (the last wins,
# as in argparse), else DATA_ROOT/<the recipe's dataset file>.
ann_file=""
data_root=${DATA_ROOT:-data}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        --ann_file=*) ann_file=${args[i]#*=} ;;
        --data_root=*) data_root=${args[i]#*=} ;;
        --ann_file) ann_file=${args[i + 1]:-} ;;
        --data_root) data_root=${args[i + 1]:-} ;;
    esac
done

# The recipe's dataset and default file; an unknown recipe is one line listing the known ones.
read -r dataset default_file source < <("$python" - "$recipe" <<'EOF'
import sys

from datasets.store.catalog import CATALOG
from recipes import get_recipe

try:
    recipe = get_recipe(sys.argv[1])
except ValueError as e:
    print(f"reproduce_ntu.sh: error: {e}", file=sys.stderr)
    sys.exit(2)
ann_file, source, _ = CATALOG[recipe.dataset].default_file(recipe.settings.get("keypoints", "2d"))
print(recipe.dataset, ann_file, source)
EOF
) || exit 2
[[ -n $dataset ]] || exit 2
ann_file=${ann_file:-$data_root/$default_file}
if [[ ! -f $ann_file ]]; then
    echo "reproduce_ntu.sh: error: $dataset annotation file not found at $ann_file: download it from $source" \
        "into $data_root/$(dirname "$default_file")/ (or set DATA_ROOT, or pass --ann_file FILE)" >&2
    exit 2
fi

cmd=(main.py "$dataset" --recipe "$recipe" --data_root "$data_root" --name "$recipe" -j "${WORKERS:-4}" "$@")
nproc=${NPROC:-1}
if ((nproc > 1)); then
    cmd=(env NPROC="$nproc" PYTHON="$python" scripts/dist_train.sh "${cmd[@]:1}")
else
    cmd=("$python" "${cmd[@]}")
fi
if [[ ${DRY_RUN:-0} == 1 ]]; then
    echo "${cmd[*]}"
    exit 0
fi
if [[ ${ALLOW_CPU:-0} != 1 ]] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "reproduce_ntu.sh: error: no CUDA GPU visible: the recipes are sized for GPUs (ALLOW_CPU=1 runs anyway)" >&2
    exit 2
fi
exec "${cmd[@]}"
