"""Device, precision, seeding and torch.distributed, decided once per process."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    """Where this process computes. rank/world_size are 0/1 without torchrun."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def setup_runtime(device: str | None, gpus: list[int] | None, amp: str) -> tuple[Runtime, list[str]]:
    """Pick the device, join a torchrun process group when launched by one, choose AMP.

    device: explicit device string, or None for cuda-if-available. gpus: TCL's --gpus ids; a single
    process uses the first, torchrun processes their LOCAL_RANK. Returns the runtime and notes for the
    user (for example that --gpus was ignored on a machine without CUDA).
    """
    notes = []
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        if torch.cuda.is_available():
            gpu = gpus[0] if gpus and world_size == 1 else local_rank
            device = f"cuda:{gpu}"
        else:
            device = "cpu"
            if gpus:
                notes.append("--gpus ignored: no CUDA device is available, training on the CPU")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} asked for CUDA but torch sees no GPU; use --device cpu")
        if world_size > 1 and dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if amp_dtype is torch.float16 and dev.type != "cuda":
        raise RuntimeError("--amp fp16 needs CUDA; use --amp bf16 or none on the CPU")
    return Runtime(dev, rank, world_size, local_rank, amp_dtype), notes


def close_runtime() -> None:
    """Leave the torchrun process group after a finished run (no-op without one). Exiting without it
    lets gloo's threads be torn down mid-exit, which sometimes aborts a rank ("terminate called without
    an active exception", SIGABRT) after all of its work is done. The barrier keeps a rank from leaving
    while another still talks to it."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; data randomness itself uses explicit generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (for third-party code that still uses the global state)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def barrier(rt: Runtime) -> None:
    """Wait for every rank (no-op without torchrun): e.g. until rank 0 has written a checkpoint."""
    if rt.distributed:
        dist.barrier()


def all_reduce_sum(values: list[float], rt: Runtime) -> list[float]:
    """Sum plain numbers across ranks (identity without torchrun)."""
    if not rt.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


def git_revision() -> str:
    """The repository's commit (with '-dirty' for local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
        return rev + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_memory(device: torch.device) -> str:
    """Peak resident memory of this process (and of its largest finished child process, a data worker:
    resident memory counts the pages it shares with its parent), and the peak CUDA memory allocated on
    `device`, as one phrase."""
    self_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    child_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    out = f"peak resident memory {self_gb:.2f} GB"
    if child_gb > 0:
        out += f" (largest data worker: {child_gb:.2f} GB, pages shared with the main process included)"
    if device.type == "cuda":
        out += f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GB"
    return out


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopRequest:
    """Turn SIGTERM, SIGINT and SIGUSR1 into a request that the training loop reads between steps
    (`with StopRequest() as stop: ... if stop.signum: save and stop`), instead of dying mid-step and
    losing the epoch in progress. A second SIGINT (Ctrl-C twice) interrupts at once. Outside the main
    thread (signals cannot be handled there) it installs nothing. Leaving restores the previous handlers,
    so a signal during the final evaluation stops the process as before."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """DataLoader worker_init_fn: a worker ignores the stop signals, which Ctrl-C or a cluster sends to
    every process of the job. The main process finishes its step, saves and exits (StopRequest), and the
    workers end with it; a worker killed by the signal would instead fail the step in progress."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
