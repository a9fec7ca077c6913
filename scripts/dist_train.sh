#!/usr/bin/env bash
# Launch main.py with torchrun: one process per GPU, DistributedDataParallel, metrics reduced across
# ranks, rank 0 writes the run directory. All arguments go to main.py unchanged.
#
# One node, every GPU it has:
#   scripts/dist_train.sh ntu60 --model_type motionbert --input_f Skeleton --epochs 300
# One node, 4 of its GPUs:
#   CUDA_VISIBLE_DEVICES=0,1,2,3 NPROC=4 scripts/dist_train.sh ntu60 ...
# Two nodes of 8 GPUs, run the same command on both (node 0's address must be reachable from node 1):
#   node 0:  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=8 scripts/dist_train.sh ntu60 ...
#   node 1:  NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 NPROC=8 scripts/dist_train.sh ntu60 ...
# A seed command line runs distributed by passing its arguments here, e.g.
#   scripts/dist_train.sh ntu60 RGB --seed 123 ... (see scripts/seed_poseconv.sh)
#
# Environment: NPROC (processes per node; default the number of GPUs, or 1 without CUDA), NNODES (1),
# NODE_RANK (0), MASTER_ADDR (127.0.0.1), MASTER_PORT (29500; change it to run two jobs on one node),
# PYTHON (python). --batch-size and --valbatchsize are per process: the global labelled batch is
# NPROC x NNODES x --batch-size, so divide it to keep a single-GPU recipe's optimisation unchanged.
# Each process takes the GPU of its LOCAL_RANK (--gpus is ignored under torchrun); without CUDA the
# processes train on the CPU with the gloo backend, which is how the launcher can be tried on a laptop
# (torchrun then gives each process OMP_NUM_THREADS=1 unless you set it).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python}
nproc=${NPROC:-$("$python" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}

# `python -m torch.distributed.run` is torchrun, run by the interpreter of the environment we train in.
exec "$python" -m torch.distributed.run \
    --nnodes "${NNODES:-1}" \
    --node_rank "${NODE_RANK:-0}" \
    --nproc_per_node "$nproc" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" \
    --master_port "${MASTER_PORT:-29500}" \
    main.py "$@"
