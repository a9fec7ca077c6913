"""--threads and the `auto` rule of utils/threads.py."""

import argparse
import pickle

import pytest
import torch

import utils.threads as threads
from tests.conftest import error_line
from utils.threads import MAX_AUTO_THREADS, apply_threads, choose_threads, parse_threads


@pytest.fixture(autouse=True)
def keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    "cores, workers, load, processes, expected",
    [
        (2, 0, 0.0, 1, 2),  # a quiet 2-core machine: both cores
        (2, 0, 1.0, 1, 1),  # beside one other job (issue 13: 19 s with one thread, 93 s with two)
        (2, 2, 0.0, 1, 1),  # the demo's -j 2 on 2 cores: never below one
        (2, 0, 0.4, 1, 2),  # load rounds: a job that is mostly idle does not take a core
        (2, 0, 0.6, 1, 1),
        (8, 2, 3.4, 1, 3),  # 8 cores, 2 workers, 3 busy threads elsewhere
        (16, 4, 0.0, 1, MAX_AUTO_THREADS),  # capped
        (16, 0, 0.0, 4, 4),  # torchrun with 4 processes on the node: a quarter of the cores each
        (16, 2, 0.0, 4, 2),
        (1, 4, 5.0, 1, 1),
        (4, 0, -1.0, 1, 4),  # a nonsensical negative load counts as none
    ],
)
def test_auto_rule_on_hand_made_machines(cores, workers, load, processes, expected):
    assert choose_threads(cores, workers, load, processes) == expected


def test_auto_rule_cap_is_a_parameter():
    assert choose_threads(32, 0, 0.0, cap=32) == 32
    assert choose_threads(32, 0, 0.0) == MAX_AUTO_THREADS


def test_parse_threads():
    assert parse_threads("auto") is None
    assert parse_threads("3") == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="'auto' or a number of threads >= 1"):
            parse_threads(bad)


def test_explicit_threads_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    n, note = apply_threads(1, workers=0)
    assert n == 1 and torch.get_num_threads() == 1 and "(--threads)" in note


def test_auto_respects_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    n, note = apply_threads(None, workers=5)
    assert n == 2 and torch.get_num_threads() == 2 and "OMP_NUM_THREADS" in note


def test_auto_reads_affinity_load_and_local_world_size(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 0.5, 0.1), raising=False)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)  # whatever container the tests run in
    n, note = apply_threads(None, workers=2)
    assert n == 12 // 2 - 2 - 1 == torch.get_num_threads()
    assert "auto: 12 cores / 2 processes, 2 data workers, load average 1.2" in note


def test_the_flag_reaches_torch_and_the_start_up_notes(tmp_path, capsys):
    import main
    from datasets.sources.synthetic import make_synthetic

    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=30)))
    main.main(["synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "--threads", "2", "--device", "cpu",
               "--epochs", "1", "--max_steps", "1", "-b", "4", "-j", "0", "--clip_len", "8", "--val_fraction", "0",
               "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)", "--eval_corruptions", "none",
               "--eval_alphas", "0"])  # fmt: skip
    assert torch.get_num_threads() == 2
    assert "note: torch computes with 2 thread(s) (--threads)" in capsys.readouterr().out


def test_a_bad_thread_count_is_one_line(capsys):
    from opts import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["synthetic", "--threads", "0"])
    line = error_line(capsys, e)
    assert "--threads" in line and "'auto' or a number of threads >= 1" in line, line


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2 without a limit
        ({"cpu.max": "250000 100000\n"}, 3),  # --cpus 2.5: three cores, rounded up
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
        ({}, None),  # no cgroup files at all
        ({"cpu.max": "garbage\n"}, None),
    ],
)
def test_cpu_quota_from_cgroup_files(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cpu_quota(tmp_path) == expected


def test_available_cores_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(threads, "cpu_quota", lambda: 3)
    assert threads.available_cores() == 3
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    assert threads.available_cores() == 16
