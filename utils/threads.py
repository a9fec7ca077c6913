"""How many threads torch computes with: chosen once at start-up from the cores this process may use.

Why not torch's default (one thread per core): an intra-op thread pool assumes it has its cores to
itself. When another job holds one of them, the other threads of every parallel operation wait for the
slowest one, spinning; on the 2-core machine beside one other job, the demo's 40 steps took 19 s with
one thread and 93 s with two (issue 13; bench/threads.py measures it again). Data-loading workers are
such jobs too: they run beside the training loop. So `auto` counts only the cores nobody else is using:

    threads = max(1, min(cap, cores // processes - workers - round(load)))

cores: os.sched_getaffinity (what this process may run on: taskset, cgroups cpusets, a Slurm
allocation), not os.cpu_count. processes: training processes on this machine (torchrun's
LOCAL_WORLD_SIZE), which split the cores. workers: the DataLoader workers of each. load: the 1-minute
load average read at start-up, before this run does any work, i.e. runnable threads of other jobs.
cap: more threads stop paying off for the small per-operation work of these models and cost more in
synchronisation; 8 is a choice, not measured here (this machine has 2 cores).
`--threads N` sets N regardless; with `auto`, an OMP_NUM_THREADS set in the environment wins over
the rule (the user or the launcher, torchrun for one, decided already).

Inter-op threads are left alone: the training loop runs one operation after another (no parallel
branches to schedule), and torch refuses to change them once any parallel work has run.
"""

from __future__ import annotations

import argparse
import os

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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), or os.cpu_count() where affinity is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


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
