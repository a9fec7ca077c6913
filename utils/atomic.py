"""Files a command writes, whole or not at all: every file (checkpoints, tables, plots, probabilities, JSON)
goes to a temporary file in the same folder, is fsynced, then renamed over the destination, so a crash, a
kill or a full disk never leaves half a file, and the previous file stays as it was until the new one is
complete. Appends (metrics.jsonl, log.txt) are not atomic; they only get the same one-line error.

A write that fails for want of space, or because the folder cannot be written, is a `WriteError` (one
line, exit 2) that names the file; torch.save reports a failed write as a RuntimeError ('unexpected pos'),
which counts too. `check_writable` refuses a destination that cannot be written before any work.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from utils.errors import UserError

TMP_SUFFIX = ".tmp"  # atomic_write's temporary files: .NAME.RANDOM.tmp next to NAME
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# torch.save's messages for a write that failed in its zip writer (the OSError, if any, is their context)
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed")

_UMASK = os.umask(0o022)  # read once, at import (os.umask only reads by setting): new files get 0o666 & ~umask
os.umask(_UMASK)


class WriteError(UserError):
    """A file could not be written (the disk is full, the folder is read-only); the previous file is kept."""


def failed_errno(e: BaseException) -> int | None:
    """The errno behind a failed write: of `e` or of the OSError it was raised from (torch wraps the file's
    error in a RuntimeError); ENOSPC for torch's failed write without one (its C++ writer keeps no errno).
    None when `e` is no write failure."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    if isinstance(e, RuntimeError) and any(m in str(e) for m in TORCH_WRITE_FAILED):
        return errno.ENOSPC
    return None


@contextlib.contextmanager
def write_errors(path: str | Path, flag: str = "--run_dir", appended: bool = False) -> Iterator[None]:
    """Turn a failed write of `path` into a WriteError of one line: no space left (ENOSPC, EDQUOT, torch's
    'unexpected pos') or any other OSError (read-only, no permission, no such folder). flag: where the
    user chose the place, for the advice; appended: the write appended to the file or folder (what it held
    is kept) instead of replacing it atomically (the previous file is unchanged)."""
    path = Path(path)
    try:
        yield
    except (OSError, RuntimeError) as e:
        code = failed_errno(e)
        if code is None:
            raise
        if appended:
            kept = f"what {path.name} held before is kept"
        else:
            kept = f"the previous {path.name} is unchanged" if path.exists() else f"no {path.name} was written"
        if code in NO_SPACE:
            raise WriteError(f"no space left writing {path}: free space or choose another {flag}; {kept}") from e
        raise WriteError(f"cannot write {path} ({os.strerror(code)}): choose another {flag}; {kept}") from e


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", flag: str = "--run_dir", **open_kwargs) -> Iterator[IO]:
    """`with atomic_write(path, "w", newline="") as f:` an open file (mode 'w' or 'wb', open()'s keyword
    arguments) on a temporary file beside `path` (its folder made if missing); when the block ends normally,
    the file is flushed, fsynced and renamed to `path`. When the block raises, the temporary file is
    removed and `path` is untouched. Raises WriteError (one line) for a full disk or a folder that cannot be
    written; `flag` names the option that chose the place, for its advice.

    A temporary file left by a killed process (`.NAME.*.tmp`) is removed at the next start of a run in that
    folder (utils/rundir.py)."""
    path = Path(path)
    with write_errors(path, flag):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        try:
            with contextlib.suppress(OSError):  # mkstemp makes 0o600: the mode open() would give (where chmod works)
                os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, mode, **open_kwargs) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_text(path: str | Path, text: str, flag: str = "--run_dir") -> None:
    """Write `text` to `path` atomically (`atomic_write`)."""
    with atomic_write(path, "w", flag) as f:
        f.write(text)


def check_writable(path: str | Path, what: str, flag: str, folder: bool = False) -> None:
    """Refuse, before any work, a destination that cannot be written: `path` is a file to write (a folder,
    with `folder`, made if missing); it must not be a folder (a file), lie under a file, or lie in a folder
    that cannot be written. what: what it is (e.g. 'the probabilities file'); flag: the option that chose
    it (e.g. '--save_probs'), for the advice. Raises UserError (one line)."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; choose another {flag}")
    if not folder and path.is_dir():
        raise UserError(f"{what} {path} is a folder; give {flag} a file name")
    existing = path if folder and path.exists() else path.parent
    while not existing.exists() and existing != existing.parent:  # the nearest folder that exists
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {path} cannot be made: {existing} is a file; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} cannot be written: {existing} is not writable; choose another {flag}")
