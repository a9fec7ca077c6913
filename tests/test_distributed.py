"""Two CPU processes under torchrun (gloo): DDP training, sharded evaluation reduced across ranks."""

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from datasets.sources.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_cpu_processes(tmp_path):
    data = make_synthetic(clips_per_class_per_subject=1, seed=5, min_frames=20, max_frames=40)
    ann = tmp_path / "tiny.pkl"
    with open(ann, "wb") as f:
        pickle.dump(data, f)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "main.py", "synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "--name", "ddp",
        "--epochs", "1", "--max_steps", "2", "-b", "4", "--valbatchsize", "8", "-j", "0", "--clip_len", "8",
        "--input_size", "32", "--input_f", "Skeleton", "--eval_alphas", "0", "0.1",
        "--eval_corruptions", "none", "--device", "cpu",
        "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Rarely, a rank aborts inside torch's C++ runtime ("terminate called without an active exception",
    # SIGABRT): 2 of about 90 runs of this test on a loaded 2-core machine, never in 150 runs of the same
    # command outside pytest. That abort alone gets one fresh retry; any other failure, or a second
    # abort, fails the test.
    for _ in range(2):
        shutil.rmtree(tmp_path / "ddp", ignore_errors=True)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
        if proc.returncode == 0 or "terminate called without an active exception" not in proc.stderr:
            break
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    run = tmp_path / "ddp"
    with open(run / "robustness.csv") as f:
        table = list(csv.DictReader(f))
    # Each test clip is counted exactly once across the two ranks.
    n_test = len(data["split"]["xsub_val"])
    assert [int(r["clips"]) for r in table] == [n_test] * 4  # clean and jitter 0.1, best and last
    # Only rank 0 writes: one validation row for the one epoch.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["split"] == "val" for r in rows) == 1
