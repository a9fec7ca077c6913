"""A run survives being stopped: SIGTERM / SIGUSR1 mid-epoch write the position and the same command
resumes there; SIGKILL at a random step resumes from the last periodic checkpoint (--ckpt_every); every
way ends with the metrics and weights of an uninterrupted run, bit for bit on the CPU. A full disk
during a save keeps the previous checkpoint; a run directory has one process at a time (a lock) and the
temporary files of an interrupted save are removed at the next start.

The runs are real processes (python main.py ...), so the signals are real ones."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import main as cli
import utils.checkpoint
from datasets.sources.synthetic import make_synthetic
from tests.conftest import ROOT, error_line
from utils.checkpoint import read_checkpoint, save_atomic
from utils.errors import UserError
from utils.rundir import LOCK_NAME, RunDirLock, remove_stale_temp_files

STEPS = 6  # per epoch (--max_steps)
EPOCHS = 2
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory) -> Path:
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


def command(run_dir: Path, ann_file: Path, name: str, *extra: str) -> list[str]:
    """A tiny run: EPOCHS x STEPS steps of a small PoseConv3D on joint coordinates, a step logged each."""
    return [
        "synthetic", "--ann_file", str(ann_file), "--run_dir", str(run_dir), "--name", name,
        "--epochs", str(EPOCHS), "--max_steps", str(STEPS), "-b", "4", "--valbatchsize", "8", "-j", "0",
        "--clip_len", "8", "--input_size", "32", "--input_f", "Skeleton", "--gamma", "1", "--dropout", "0.5",
        "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)", "--eval_alphas", "0", "0.1",
        "--eval_corruptions", "none", "--device", "cpu", "--print-freq", "1", *extra,
    ]  # fmt: skip


def run_main(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def run_until(
    argv: list[str], line_start: str, sig: int, timeout: float = 300, group: bool = False
) -> tuple[int, str, str]:
    """Start main.py, send `sig` (to its whole process group with `group`) once stdout shows a line that
    starts with `line_start`; returns (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "main.py", *argv], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=group)  # fmt: skip
    out, deadline, sent = [], time.monotonic() + timeout, False
    try:
        for line in proc.stdout:
            out.append(line)
            if not sent and line.startswith(line_start):
                os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
                sent = True
            assert time.monotonic() < deadline, "the run took too long"
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent, f"never saw {line_start!r}:\n{''.join(out)}"
    return rc, "".join(out), proc.stderr.read()


def outcome(run: Path) -> dict:
    """What an interrupted run must share with an uninterrupted one: the validation rows, the epoch means
    of the training losses, the robustness table and the final weights."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timeless = lambda r: {k: v for k, v in r.items() if k != "time" and not k.endswith("_time")}  # noqa: E731
    return {
        "val": [timeless(r) for r in rows if r["split"] == "val"],
        "train_epoch": [timeless(r) for r in rows if r["split"] == "train_epoch"],
        "robustness": (run / "robustness.csv").read_text(),
        "summary": (run / "summary.json").read_text(),
        "weights": read_checkpoint(run / "last.pt")["model"],
        "best": read_checkpoint(run / "best.pt")["model"],
    }


def assert_same(a: dict, b: dict) -> None:
    for key in ("val", "train_epoch", "robustness", "summary"):
        assert a[key] == b[key], key
    for key in ("weights", "best"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


@pytest.fixture(scope="module")
def straight(tmp_path_factory, ann_file) -> dict:
    """The uninterrupted run, in a process of its own like the interrupted ones."""
    run_dir = tmp_path_factory.mktemp("straight")
    done = run_main(command(run_dir, ann_file, "run"))
    assert done.returncode == 0, done.stderr
    return outcome(run_dir / "run")


@pytest.mark.parametrize(
    ("sig", "epoch", "step", "workers"),
    [(signal.SIGTERM, 0, 2, "0"), (signal.SIGUSR1, 1, 3, "0"), (signal.SIGINT, 0, 3, "1")],
)
def test_signal_mid_epoch_saves_the_position_and_the_run_resumes_identically(
    tmp_path, ann_file, straight, sig, epoch, step, workers
):
    """SIGINT goes to the whole process group, data-loading worker included, as Ctrl-C sends it."""
    argv = command(tmp_path, ann_file, "run", "-j", workers)
    rc, out, err = run_until(argv, f"epoch {epoch} step {step}/{STEPS}", sig, group=sig == signal.SIGINT)
    assert rc == 128 + sig, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {signal.Signals(sig).name} at epoch {epoch}, step" in lines[0], lines
    assert "Traceback" not in err
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    stopped_at = ckpt["position"]["step"]
    assert ckpt["epoch"] == epoch and step < stopped_at < STEPS  # the step in progress was finished, not lost
    assert "the same command" in lines[0]

    resumed = run_main(argv)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {tmp_path / 'run' / 'last.pt'} at epoch {epoch}, step {stopped_at}" in resumed.stdout
    assert_same(outcome(tmp_path / "run"), straight)


def test_a_signal_during_the_final_sweep_says_what_it_stopped_and_the_same_command_sweeps_again(tmp_path, ann_file):
    argv = command(tmp_path, ann_file, "run", "--epochs", "1", "--val_fraction", "0", "--eval_alphas", "0", "0.02",
                   "0.05", "0.1", "0.2", "0.3")  # fmt: skip
    rc, out, err = run_until(argv, "last  clean", signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, (rc, err)
    [line] = err.strip().splitlines()
    assert (
        line.startswith("main.py: stopped by SIGTERM during the robustness sweep of last after ")
        and "of its 6 rows" in line
    )
    assert "the same command" in line and not (tmp_path / "run" / "robustness.csv").exists()
    again = run_main(argv)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stdout and "epoch 0 step" not in again.stdout  # trained once, swept again
    rows = (tmp_path / "run" / "robustness.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # the header and every row of the sweep


def test_sigkill_at_a_random_step_resumes_from_the_periodic_checkpoint(tmp_path, ann_file, straight):
    k = random.Random().randrange(1, EPOCHS * STEPS - 1)  # a step of the whole run, not its last one
    epoch, step = divmod(k, STEPS)
    argv = command(tmp_path, ann_file, "run", "--ckpt_every", "1e-9")  # a checkpoint after every step
    rc, _, _ = run_until(argv, f"epoch {epoch} step {step}/{STEPS}", signal.SIGKILL)
    assert rc == -signal.SIGKILL, f"killed at epoch {epoch} step {step}: rc {rc}"
    resumed = run_main(argv)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout, f"killed at epoch {epoch} step {step}"
    assert_same(outcome(tmp_path / "run"), straight)
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_ckpt_every_writes_the_position_inside_the_epoch(tmp_path, ann_file, monkeypatch):
    saved = []
    real = utils.checkpoint._write
    monkeypatch.setattr(utils.checkpoint, "_write", lambda obj, f: (saved.append(obj.get("position")), real(obj, f)))
    cli.main(command(tmp_path, ann_file, "run", "--ckpt_every", "1e-9", "--epochs", "1", "--val_fraction", "0"))
    # steps 1..STEPS-1 of the epoch, then the epoch's own checkpoint (no position)
    assert [p and p["step"] for p in saved] == [*range(1, STEPS), None]
    assert set(saved[0]["sums"]) >= {"loss", "ce", "instance"}


def test_a_full_disk_keeps_the_previous_checkpoint_and_stops_with_one_line(tmp_path, ann_file, monkeypatch, capsys):
    real, calls = utils.checkpoint._write, []

    def disk_fills_at_epoch_1(obj, f):
        calls.append(obj["epoch"])
        if obj["epoch"] == 2:  # the checkpoint written after epoch 1
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(obj, f)

    monkeypatch.setattr(utils.checkpoint, "_write", disk_fills_at_epoch_1)
    with pytest.raises(SystemExit) as e:
        cli.main(command(tmp_path, ann_file, "run"))
    msg = error_line(capsys, e)
    assert "no space left writing" in msg and ".pt is unchanged" in msg and "Traceback" not in msg
    run = tmp_path / "run"
    assert read_checkpoint(run / "last.pt")["epoch"] == 1  # the checkpoint of epoch 0, whole
    assert not list(run.glob(".*.tmp"))


def test_save_atomic_on_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    save_atomic({"epoch": 1}, tmp_path / "ck.pt")

    def full(obj, f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(utils.checkpoint, "_write", full)
    with pytest.raises(UserError, match="no space left writing .*ck.pt: .*; the previous ck.pt is unchanged"):
        save_atomic({"epoch": 2}, tmp_path / "ck.pt")
    assert read_checkpoint(tmp_path / "ck.pt") == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_in_the_same_run_directory_is_refused(tmp_path, ann_file, capsys):
    cli.main(command(tmp_path, ann_file, "other", "--epochs", "1", "--max_steps", "1"))
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run / LOCK_NAME)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        # training, and --evaluate, which writes its robustness files into the run directory (--name)
        for extra in ([], ["--evaluate", str(tmp_path / "other" / "best.pt")]):
            with pytest.raises(SystemExit) as e:
                cli.main(command(tmp_path, ann_file, "run", *extra))
            msg = error_line(capsys, e)
            assert f"is in use by process {holder.pid}" in msg, msg
        assert [p.name for p in run.iterdir()] == [LOCK_NAME]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(dead.stdout)  # its pid, no flock: the kernel released it at exit
    with RunDirLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):  # held now: refused
            RunDirLock(tmp_path).__enter__()
    with RunDirLock(tmp_path):  # released when the holder leaves
        pass


def test_stale_temp_files_are_removed_at_the_next_start(tmp_path, ann_file, capsys):
    cli.main(command(tmp_path, ann_file, "run", "--epochs", "1", "--max_steps", "2"))
    run = tmp_path / "run"
    stale = [run / ".last.pt.k2j4x8.tmp", run / ".best.pt.0a1b2c.tmp", run / "split.tmp"]  # of killed saves
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    (run / "notes.tmp").write_text("not ours")  # not a name of save_atomic: kept
    capsys.readouterr()
    cli.main(command(tmp_path, ann_file, "run", "--epochs", "1", "--max_steps", "2"))  # resumes: only the sweep
    assert not any(p.exists() for p in stale) and (run / "notes.tmp").exists()
    assert "note: removed .best.pt.0a1b2c.tmp" in capsys.readouterr().out
    assert remove_stale_temp_files(run) == []
