"""Stop a run that is about to exhaust the host's memory before the kernel's out-of-memory killer does.

The killer ends a process with SIGKILL (exit 137) and no word; an allocation on the CPU rarely fails
first, because Linux hands out memory it does not have until it is touched. `MemoryGuard` is a thread
that reads, every `interval` seconds, the memory left to the process: the cgroup's limit minus its use
when the process runs in one with a limit (cgroup v2 memory.max / memory.current, or v1), else
/proc/meminfo's MemAvailable. When that falls below a floor (`floor_bytes`: FLOOR_FRACTION of the total,
at least FLOOR_MIN, and the environment variable MEMORY_FLOOR_MB overrides it, 0 switching the guard off),
it prints its one-line message as every user error is printed (`PROG: error: ...`) and ends the process
with exit code 2 at once: the step in progress runs in C++ and cannot be interrupted any other way in
time. Files are written atomically, so what was saved stays whole; the same command resumes from the last
checkpoint. Without /proc (not Linux) the guard does nothing.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from utils.errors import USER_ERROR_EXIT

FLOOR_FRACTION = 0.04  # of the memory the process may use: about 1 GB of a 24 GB machine
FLOOR_MIN = 512 * 2**20
INTERVAL = 0.05  # s: memory touched at several GB/s moves by a few hundred MB between two looks
_CGROUP = Path("/sys/fs/cgroup")
# (limit, usage) of cgroup v2, then v1
_CGROUP_FILES = (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # 'max': no limit


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes ({} where it cannot be read)."""
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) * 1024
    except OSError:
        return {}
    return out


def memory_left() -> tuple[int, int] | None:
    """(bytes left, bytes in all) for this process: the cgroup's limit and use where it has a limit (and it is
    below the machine's memory), else MemAvailable and MemTotal; None where neither can be read."""
    info = _meminfo()
    if "MemAvailable" not in info or "MemTotal" not in info:
        return None
    total, left = info["MemTotal"], info["MemAvailable"]
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(_CGROUP / limit_file), _read_int(_CGROUP / usage_file)
        if limit is not None and usage is not None and limit < total:
            return min(left, limit - usage), limit
    return left, total


def floor_bytes(total: int) -> int:
    """The memory that must stay free: MEMORY_FLOOR_MB (MiB) when set, else FLOOR_FRACTION of `total`, at
    least FLOOR_MIN. 0 switches the guard off."""
    env = os.environ.get("MEMORY_FLOOR_MB")
    if env is not None:
        try:
            return max(0, int(float(env) * 2**20))
        except ValueError:
            pass  # an unreadable setting keeps the default rather than stopping a run over it
    return max(FLOOR_MIN, int(FLOOR_FRACTION * total))


class MemoryGuard:
    """A context manager that watches the memory left while its block runs (see the module docstring).

    prog: the command's name in the error line; message: what to do, e.g. which settings to lower."""

    def __init__(self, prog: str, message: str, interval: float = INTERVAL) -> None:
        self.prog, self.message, self.interval = prog, message, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MemoryGuard:
        state = memory_left()
        if state is not None and floor_bytes(state[1]) > 0:
            self._thread = threading.Thread(target=self._watch, name="memory-guard", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            state = memory_left()
            if state is None:
                continue
            left, total = state
            floor = floor_bytes(total)
            if left < floor:
                gb = 2**30
                print(
                    f"{self.prog}: error: out of memory: {left / gb:.2f} GB left of {total / gb:.1f} GB (the guard "
                    f"stops a run below {floor / gb:.2f} GB, before the kernel kills it); {self.message}",
                    file=sys.stderr,
                    flush=True,
                )
                sys.stdout.flush()
                os._exit(USER_ERROR_EXIT)
