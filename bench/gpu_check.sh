#!/usr/bin/env bash
# What the project does on CUDA, in under 8 minutes, as one table (check | device | result | figure | seconds):
# the CUDA variants of the tests, rendering on CUDA against the CPU, the demo with --amp bf16, --amp fp16,
# --channels_last and --compile, DDP over 2 GPUs (NCCL), and the share of data time in the step time of
# the pyskl-size PoseConv3D (batch 32) and of MotionBERT (243 frames). Without CUDA the CUDA checks are
# reported as skipped and a 3-step CPU run of the demo still exercises the path. The checks are in
# bench/gpu_check.py; each runs in its own process under its own time limit, so one that fails, crashes
# or hangs does not stop the others.
#
#   bash bench/gpu_check.sh [PYTHON] [--quick] [CHECK ...]
#     PYTHON   interpreter of the environment to check (default: python)
#     --quick  report every CUDA check as skipped: the CPU smoke run only (tests/test_gpu_check.py)
#     CHECK    run only these checks (names as in the table; `PYTHON bench/gpu_check.py --list` lists them)
#
# Environment: GPU_CHECK_BUDGET (seconds for all checks, default 450: a check gets at most what is left,
# and none starts with less than 20 s), GPU_CHECK_LOGS (folder for the logs and run directories; kept.
# Default: a temporary folder, removed unless a check failed).
# Exit code 0 when no check FAILED (skipped ones are fine), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

py=python
# The interpreter is the first argument when it names one (python3, .venv/bin/python); check names don't.
if [[ $# -gt 0 && ( $1 == python* || $1 == */* ) ]]; then
    py=$1
    shift
fi
quick=()
checks=()
for arg in "$@"; do
    if [[ $arg == --quick ]]; then quick=(--quick); else checks+=("$arg"); fi
done

budget=${GPU_CHECK_BUDGET:-450}
if [[ -n ${GPU_CHECK_LOGS:-} ]]; then
    work=$GPU_CHECK_LOGS
    keep=1
    mkdir -p "$work" || exit 1
    rm -f "$work/results.jsonl" "$work/status"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
    keep=0
fi

if ! list=$("$py" bench/gpu_check.py --list "${checks[@]}"); then
    echo "gpu_check: cannot list the checks with $py" >&2
    ((keep)) || rm -rf "$work"
    exit 1
fi

start=$SECONDS
while read -r name limit; do
    [[ -z $name ]] && continue
    left=$((budget - (SECONDS - start)))
    if ((left < 20)); then
        echo "$name budget $budget" >>"$work/status"
        continue
    fi
    ((limit > left)) && limit=$left
    echo "gpu_check: $name (at most $limit s)" >&2
    t0=$SECONDS
    # timeout runs the check in its own process group and signals the whole group (main.py, workers).
    timeout --kill-after=10 "$limit" "$py" bench/gpu_check.py --check "$name" --work "$work" --limit "$limit" \
        "${quick[@]}" >"$work/$name.check.log" 2>&1 </dev/null
    rc=$?
    echo "$name $rc $((SECONDS - t0))" >>"$work/status"
done <<<"$list"

echo
"$py" bench/gpu_check.py --table "$work"
rc=$?
echo "gpu_check: $((SECONDS - start)) s in all" >&2
if ((rc != 0 || keep)); then
    echo "gpu_check: logs and run directories in $work" >&2
else
    rm -rf "$work"
fi
exit "$rc"
