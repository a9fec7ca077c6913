"""utils/memory_guard.py: the memory left to the process, the floor, and a run stopped in one line (exit 2)
before the kernel's out-of-memory killer acts. The guard ends its process, so it is run in subprocesses."""

import subprocess
import sys
from pathlib import Path

import pytest

from utils import memory_guard
from utils.memory_guard import floor_bytes, memory_left

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(memory_left() is None, reason="needs /proc/meminfo")


@linux_only
def test_memory_left_is_positive_and_below_the_total():
    left, total = memory_left()
    assert 0 < left <= total


def test_the_floor_is_a_share_of_the_total_or_the_setting(monkeypatch):
    monkeypatch.delenv("MEMORY_FLOOR_MB", raising=False)
    assert floor_bytes(24 * 2**30) == int(memory_guard.FLOOR_FRACTION * 24 * 2**30)
    assert floor_bytes(2**30) == memory_guard.FLOOR_MIN
    monkeypatch.setenv("MEMORY_FLOOR_MB", "100")
    assert floor_bytes(2**30) == 100 * 2**20
    monkeypatch.setenv("MEMORY_FLOOR_MB", "0")
    assert floor_bytes(2**30) == 0
    monkeypatch.setenv("MEMORY_FLOOR_MB", "lots")
    assert floor_bytes(2**30) == memory_guard.FLOOR_MIN


def test_cgroup_limit_wins_when_it_is_below_the_machines(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("805306368\n")
    monkeypatch.setattr(memory_guard, "_CGROUP", tmp_path)
    monkeypatch.setattr(memory_guard, "_meminfo", lambda: {"MemTotal": 8 * 2**30, "MemAvailable": 6 * 2**30})
    assert memory_left() == (2**28, 2**30)
    (tmp_path / "memory.max").write_text("max\n")
    assert memory_left() == (6 * 2**30, 8 * 2**30)


def _guarded(floor_mb: str, seconds: float) -> subprocess.CompletedProcess:
    code = (
        "import time\nfrom utils.memory_guard import MemoryGuard\n"
        f"with MemoryGuard('prog', 'lower -b'):\n    time.sleep({seconds})\nprint('finished')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MEMORY_FLOOR_MB": floor_mb, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@linux_only
def test_below_the_floor_the_process_stops_in_one_line_with_exit_2():
    out = _guarded(str(10**9), 30)  # a floor above any machine's memory: stops at the first look
    assert out.returncode == 2 and "finished" not in out.stdout
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("prog: error: out of memory: ") and line.endswith("; lower -b")
    ok = _guarded("0", 0.2)  # 0: no guard
    assert ok.returncode == 0 and ok.stdout.strip() == "finished" and not ok.stderr


@linux_only
def test_a_training_run_out_of_host_memory_stops_with_the_settings_to_lower(tmp_path):
    import pickle

    from datasets.sources.synthetic import make_synthetic

    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(make_synthetic(clips_per_class_per_subject=1, seed=0, min_frames=20, max_frames=30)))
    cmd = [sys.executable, str(ROOT / "main.py"), "synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path),
           "--name", "run", "--epochs", "1", "--max_steps", "1", "-b", "4", "-j", "0", "--input_f", "Skeleton",
           "--clip_len", "8", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
           "--eval_corruptions", "none"]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "MEMORY_FLOOR_MB": str(10**9), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("main.py: error: out of memory: ") and "-b (now 4" in line and "--clip_len (now 8)" in line
    assert (tmp_path / "run" / "args.json").is_file()
