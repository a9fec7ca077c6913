"""Two CPU processes under torchrun (gloo): DDP training, sharded evaluation reduced across ranks."""

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch

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


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return sorted(kids)


def test_a_signal_to_one_rank_stops_both_and_the_same_command_resumes_to_the_same_results(tmp_path):
    from tests.test_preemption import assert_same, outcome

    data = make_synthetic(clips_per_class_per_subject=1, seed=5, min_frames=20, max_frames=40)
    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(data))

    def cmd(run_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "main.py", "synthetic", "--ann_file", str(ann), "--run_dir", str(run_dir), "--name", "ddp",
            "--epochs", "2", "--max_steps", "4", "-b", "2", "--valbatchsize", "8", "-j", "0", "--clip_len", "8",
            "--input_size", "32", "--input_f", "Skeleton", "--eval_alphas", "0", "--eval_corruptions", "none",
            "--device", "cpu", "--print-freq", "1", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
        ]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    straight = subprocess.run(cmd(tmp_path / "a"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert straight.returncode == 0, straight.stderr[-3000:]

    proc = subprocess.Popen(cmd(tmp_path / "b"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    sent = None
    try:
        for line in proc.stdout:
            if sent is None and line.startswith("epoch 0 step 1/"):
                ranks = _children(proc.pid)
                assert len(ranks) == 2, ranks
                sent = ranks[-1]
                os.kill(sent, signal.SIGTERM)  # one rank only
        proc.wait(timeout=120)  # both ranks stop: the launcher returns
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert sent is not None and proc.returncode != 0
    assert "stopped by SIGTERM at epoch 0, step" in err and "Traceback" not in err.split("stopped by")[0]
    ckpt = torch.load(tmp_path / "b" / "ddp" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 0 and 1 <= ckpt["position"]["step"] < 4

    resumed = subprocess.run(cmd(tmp_path / "b"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert_same(outcome(tmp_path / "b" / "ddp"), outcome(tmp_path / "a" / "ddp"))
