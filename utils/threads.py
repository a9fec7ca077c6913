"""How many threads torch computes with: chosen once at start-up from the cores this process may use.

Why not torch's default (one thread per core): an intra-op thread pool assumes it has its cores to
itself. When another job holds one of them, the other threads of every parallel operation wait for the
slowest one, spinning; on the 2-core machine beside one other job, the demo's 40 steps took 19 s with
one thread and 93 s with two (issue 13); bench/threads.py measured 0.17-0.19 steps/s with two threads
and 0.81-3.76 with one there, beside other jobs (README, Performance). Data-loading workers are such
jobs too: they run beside the training loop. So `auto` counts only the cores nobody else is using:

    threads = max(1, min(cap, cores // processes - workers - round(load)))

cores: os.sched_getaffinity (what this process may run on: taskset, cgroups cpusets, a Slurm
allocation), not os.cpu_count, and at most a container's CPU quota. processes: training processes on
this machine (torchrun's LOCAL_WORLD_SIZE), which split the cores. workers: the DataLoader workers of
each. load: the 1-minute load average read at start-up, before this run does any work, i.e. runnable
threads of other jobs.
cap: more threads stop paying off for the small per-operation work of these models and cost more in
synchronisation; 8 is a choice, not measured here (this machine has 2 cores).
`--threads N` sets N regardless; with `auto`, an OMP_NUM_THREADS set in the environment wins over
the rule (the user or the launcher, torchrun for one, decided already).

What `auto` cannot see: the load average trails by a minute, so runs started together (a sweep) do not
count each other; it is machine-wide, so a container sees its neighbours' load too. Give such runs
`--threads` explicitly (a sweep of k runs on c cores: about c // k each, 1 at least).

Inter-op threads are left alone: the training loop runs one operation after another (no parallel
branches to schedule), and torch refuses to change them once any parallel work has run.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

AUTO = "auto"
MAX_AUTO_THREADS = 8


def parse_threads(text: str) -> int | None:
    """argparse type of --threads: 'auto' -> None, else a positive int."""
    if text == AUTO:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of threads >= 1, got {text!r}")
    return value


def choose_threads(
    cores: int, workers: int = 0, load: float = 0.0, processes: int = 1, cap: int = MAX_AUTO_THREADS
) -> int:
    """The `auto` rule (module docstring): intra-op threads for one training process.

    cores: cores this process may run on (>= 1). workers: its data-loading worker processes.
    load: runnable threads of other jobs (the 1-minute load average at start-up). processes: training
    processes sharing the cores (torchrun's LOCAL_WORLD_SIZE). cap: the most threads `auto` picks.
    Returns a thread count >= 1.
    """
    free = cores // max(processes, 1) - workers - round(max(load, 0.0))
    return max(1, min(cap, free))


def cpu_quota(root: str | Path = "/sys/fs/cgroup") -> int | None:
    """Whole cores of this container's CPU quota (`docker --cpus`, Kubernetes limits), rounded up, or None
    without one. Reads cgroup v2's cpu.max ("QUOTA PERIOD" or "max PERIOD"), else cgroup v1's
    cpu/cpu.cfs_quota_us and cpu.cfs_period_us (quota -1: none)."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):  # an unexpected format: behave as without a quota
        return None


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (os.cpu_count() where that is unknown), at most
    its container's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return min(cores, quota) if quota else cores


def apply_threads(requested: int | None, workers: int) -> tuple[int, str]:
    """Set torch's intra-op threads once, at start-up: `requested` (--threads N), or by the `auto` rule
    (None). Returns the count and a note for the start-up lines saying where it came from."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if requested is not None:
        n, why = requested, "--threads"
    elif env.isdigit() and int(env) > 0:
        n, why = int(env), "OMP_NUM_THREADS"
    else:
        cores, procs = available_cores(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        n = choose_threads(cores, workers, load, procs)
        per = f" / {procs} processes" if procs > 1 else ""
        why = f"auto: {cores} cores{per}, {workers} data workers, load average {load:.1f}; --threads N to override"
    torch.set_num_threads(n)
    return n, f"torch computes with {n} thread(s) ({why})"
