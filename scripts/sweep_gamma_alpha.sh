#!/usr/bin/env bash
# Sweep the contrastive weight (--gamma) against the training noise level (--noise_alpha), one run
# directory per pair, then compare the robustness curves of all of them in one table and plot.
#
#   scripts/sweep_gamma_alpha.sh                                   # synthetic data, 3 x 2 runs
#   scripts/sweep_gamma_alpha.sh ntu60 --model_type motionbert --input_f Skeleton --epochs 50
#   GAMMAS="0 5" ALPHAS="0.02 0.05 0.1" RUN_DIR=runs/sweep_mb scripts/sweep_gamma_alpha.sh ntu60
#
# Environment: GAMMAS (default "0 1 5"), ALPHAS (default "0.05 0.1"), RUN_DIR (default runs/sweep),
# PYTHON (default python). The first argument, when it does not start with '-', is the dataset
# (default synthetic); every other argument goes to each main.py run. The runs share one seed, and the
# evaluation noise is drawn from a fixed seed per level, so the curves differ only by gamma and alpha.
# A run that was interrupted resumes from its last.pt when the sweep is started again.
# Result: $RUN_DIR/sweep_g<gamma>_a<alpha>/ per run, and $RUN_DIR/comparison.{csv,png}.
set -euo pipefail
cd "$(dirname "$0")/.."

dataset=synthetic
if [[ $# -gt 0 && $1 != -* ]]; then
    dataset=$1
    shift
fi
python=${PYTHON:-python}
run_dir=${RUN_DIR:-runs/sweep}
gammas=${GAMMAS:-"0 1 5"}
alphas=${ALPHAS:-"0.05 0.1"}

runs=()
for g in $gammas; do
    for a in $alphas; do
        name="sweep_g${g}_a${a}"
        echo "== $name: --gamma $g --noise_alpha $a"
        "$python" main.py "$dataset" --gamma "$g" --noise_alpha "$a" --run_dir "$run_dir" --name "$name" "$@"
        runs+=("$run_dir/$name")
    done
done

"$python" scripts/compare_runs.py "${runs[@]}" --out "$run_dir"
