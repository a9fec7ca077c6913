"""Files written whole or not at all (utils/atomic.py): a full disk, wherever it strikes (the writes, torch's
zip writer, the fsync), is one line naming the file, and the previous file stays byte-identical; destinations
that cannot be written are refused before any work."""

import errno
import io
import os
import stat

import pytest
import torch

from utils.atomic import WriteError, atomic_write, check_writable, failed_errno, write_text
from utils.checkpoint import read_checkpoint, save_atomic
from utils.errors import UserError
from utils.robustness import write_robustness

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


class FullDisk(io.RawIOBase):
    """A file whose disk fills after `room` bytes: later writes raise ENOSPC, as os.write does."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b) -> int:
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.f.fileno()

    def flush(self) -> None:
        if not self.f.closed:
            self.f.flush()

    def close(self) -> None:
        super().close()
        self.f.close()


@pytest.fixture
def disk_fills(monkeypatch):
    """`disk_fills(where, room)`: from now on the disk fills in os.fdopen's files after `room` bytes
    ('write'), or when they are fsynced ('fsync')."""

    def fill(where: str, room: int = 100) -> None:
        if where == "fsync":

            def fsync(fd):
                raise NO_SPACE

            monkeypatch.setattr(os, "fsync", fsync)
        else:
            real = os.fdopen

            def fdopen(fd, mode="r", **kwargs):
                f = real(fd, "wb")
                full = FullDisk(f, room)
                return full if "b" in mode else io.TextIOWrapper(io.BufferedWriter(full, 8), **kwargs)

            monkeypatch.setattr(os, "fdopen", fdopen)

    return fill


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_during_a_checkpoint_save_keeps_the_previous_file(tmp_path, disk_fills, where):
    path = tmp_path / "last.pt"
    save_atomic({"model": {"w": torch.zeros(10)}, "epoch": 1}, path)
    before = path.read_bytes()
    disk_fills(where, room=200)
    with pytest.raises(WriteError) as e:
        save_atomic({"model": {"w": torch.ones(100_000)}, "epoch": 2}, path)
    assert one_line(e) == (
        f"no space left writing {path}: free space or choose another --run_dir; the previous last.pt is unchanged"
    )
    if where == "write":  # torch's zip writer turned the OSError into 'unexpected pos'
        assert isinstance(e.value.__cause__, RuntimeError) and "unexpected pos" in str(e.value.__cause__)
    assert path.read_bytes() == before and read_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_during_a_table_save_keeps_the_previous_tables(tmp_path, disk_fills, where):
    row = {"checkpoint": "best", "epoch": 0, "family": "clean", "level": "", "severity": 0.0, "suite": False,
           "top1": 0.5, "top5": 1.0, "clips": 4}  # fmt: skip
    write_robustness([row], {"best": {"clean": 0.5}}, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    disk_fills(where, room=10)
    with pytest.raises(WriteError) as e:
        write_robustness([{**row, "top1": 0.75}], {"best": {"clean": 0.75}}, tmp_path)
    path = tmp_path / "robustness.csv"
    assert one_line(e) == (
        f"no space left writing {path}: free space or choose another --run_dir; the previous robustness.csv is "
        "unchanged"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_full_disk_on_a_new_file_says_nothing_was_written(tmp_path, disk_fills):
    disk_fills("write", room=0)
    with pytest.raises(WriteError, match=r"choose another --out; no fusion.json was written$"):
        write_text(tmp_path / "fusion.json", "{}", "--out")
    assert list(tmp_path.iterdir()) == []


def test_an_error_inside_the_block_leaves_the_file_and_no_temporary(tmp_path):
    write_text(tmp_path / "a.json", "old")
    with pytest.raises(KeyError), atomic_write(tmp_path / "a.json") as f:
        f.write("half")
        raise KeyError("a bug")
    assert (tmp_path / "a.json").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_a_written_file_has_the_mode_open_gives(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask


def test_torch_write_failures_count_as_a_full_disk():
    assert failed_errno(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")) == 28
    assert failed_errno(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert failed_errno(OSError(errno.EROFS, "Read-only file system")) == errno.EROFS


def test_check_writable_refuses_what_cannot_be_written(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="is a folder; give --save_probs a file name"):
        check_writable(tmp_path / "folder", "the probabilities file", "--save_probs")
    with pytest.raises(UserError, match=f"cannot be made: {tmp_path / 'a_file'} is a file"):
        check_writable(tmp_path / "a_file" / "sub" / "p.json", "the probabilities file", "--save_probs")
    with pytest.raises(UserError, match="is a file, not a folder; choose another --out"):
        check_writable(tmp_path / "a_file", "the output folder", "--out", folder=True)
    with pytest.raises(UserError, match="/proc/sys is not writable"):
        check_writable("/proc/sys/x/out.csv", "the table", "--out")
    check_writable(tmp_path / "new" / "deeper" / "p.json", "the probabilities file", "--save_probs")
    check_writable(tmp_path / "folder", "the output folder", "--out", folder=True)
    check_writable(tmp_path / "a_file", "the probabilities file", "--save_probs")  # replaced, atomically


def test_a_full_disk_under_the_appended_logs_is_one_line(tmp_path, monkeypatch):
    import utils.logger

    logger = utils.logger.RunLogger(tmp_path)
    logger.log({"epoch": 0, "loss": 1.0}, step=0, tb_prefix="train")
    before = (tmp_path / "metrics.jsonl").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logger.tb, "add_scalar", full)
    with pytest.raises(WriteError, match=r"^no space left writing .*tb: .*; what tb held before is kept$"):
        logger.log({"epoch": 0, "loss": 0.5}, step=1, tb_prefix="train")
    monkeypatch.setattr(utils.logger, "open", full, raising=False)
    with pytest.raises(WriteError, match=r"^no space left writing .*metrics.jsonl: .*held before is kept$"):
        logger.log({"epoch": 0, "loss": 0.25}, step=2)
    logger.close()
    assert (tmp_path / "metrics.jsonl").read_bytes().startswith(before)
