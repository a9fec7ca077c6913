"""A run directory's guard: one process at a time, no leftovers of an interrupted save, and the checks
that come before anything is written there.

The lock is an flock(2) on RUN_DIR/.lock, which also holds the holder's pid for the message. The kernel
releases it when the holder exits, however it exits (SIGKILL included), so a lock left by a dead process
is taken over without asking. flock is advisory and local: processes on other machines that share the
folder over NFS are not kept out.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from utils import atomic
from utils.atomic import TMP_SUFFIX
from utils.errors import UserError

LOCK_NAME = ".lock"


class RunDirBusy(UserError):
    """Another live process trains or evaluates in the run directory."""


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that is a file, that lies under a file, or that cannot be created or
    written, before any work. Raises UserError (one line)."""
    atomic.check_writable(run_dir, "the run directory", "--run_dir or --name", folder=True)


class RunDirLock:
    """Hold RUN_DIR/.lock while a process trains or evaluates there (`with RunDirLock(run_dir):`).

    Entering creates the directory, takes the lock or raises RunDirBusy naming the holder, and then
    removes the temporary files of an interrupted save (none can be in progress: the lock is ours).
    `enabled=False` (the other ranks of a distributed run) does nothing. `removed` lists what was removed.
    """

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir, self.enabled, self.fd, self.removed = Path(run_dir), enabled, None, []

    def __enter__(self) -> RunDirLock:
        if not self.enabled:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot write to {self.run_dir} ({e.strerror}); choose another --run_dir") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise RunDirBusy(
                f"{self.run_dir} is in use by process {holder} (a training or evaluation there); wait for it to "
                "end or choose another --name"
            ) from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        self.removed = remove_stale_temp_files(self.run_dir)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock; the file stays (removing it would race a waiting process)
            self.fd = None


# Temporary files of the run directory's atomic writes: utils/atomic.atomic_write's (.NAME.RANDOM.tmp: checkpoints,
# tables, plots, split.json) and split.tmp, which save_split wrote before it used atomic_write.
TEMP_PATTERNS = (f".*{TMP_SUFFIX}", "split.tmp")


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files that an atomic write leaves when its process is killed mid-write
    (TEMP_PATTERNS); call only while holding the run directory's lock. Returns the removed paths."""
    stale = sorted({p for pattern in TEMP_PATTERNS for p in run_dir.glob(pattern) if p.is_file()})
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
