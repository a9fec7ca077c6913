"""What a run writes as it goes, rank 0 only: metrics as JSON lines and TensorBoard events, and log.txt, the
lines it printed (`echo`), those printed before the run directory opened included. The lines are appended
(not atomic); a full disk is one line (utils/atomic.write_errors) there too."""

from __future__ import annotations

import json
import time
from pathlib import Path

from utils.atomic import write_errors

_EARLY: list[str] = []  # lines echoed since start_log() while no run's log.txt is open
_OPEN: list[Path] = []  # the log.txt lines are appended to (at most one)
_EARLY_LIMIT = 10_000


def start_log() -> None:
    """Forget the lines of an earlier command in this process (a new command starts its own log)."""
    _EARLY.clear()
    _OPEN.clear()


class RunLogger:
    """Appends metric rows to run_dir/metrics.jsonl, mirrors scalars to TensorBoard, and appends every line
    `echo` prints to run_dir/log.txt until `close` (first the lines printed before it opened)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))
            with write_errors(run_dir / "log.txt", appended=True), open(run_dir / "log.txt", "a") as f:
                f.writelines(line + "\n" for line in _EARLY)
            _OPEN[:] = [run_dir / "log.txt"]

    def log(self, row: dict, step: int | None = None, tb_prefix: str | None = None) -> None:
        if not self.enabled:
            return
        with write_errors(self.path, appended=True), open(self.path, "a") as f:
            f.write(json.dumps({**row, "time": round(time.time(), 3)}) + "\n")
        if tb_prefix and step is not None:
            with write_errors(self.path.with_name("tb"), appended=True):  # its writer thread's error surfaces here
                for k, v in row.items():
                    if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                        self.tb.add_scalar(f"{tb_prefix}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            with write_errors(self.path.with_name("tb"), appended=True):
                self.tb.close()
        if self.enabled and _OPEN == [self.path.with_name("log.txt")]:
            _OPEN.clear()


def echo(msg: str, enabled: bool = True) -> None:
    """Print a line of the run (rank 0: `enabled`), and keep it in the run's log.txt."""
    if not enabled:
        return
    print(msg, flush=True)
    if _OPEN:
        with write_errors(_OPEN[0], appended=True), open(_OPEN[0], "a") as f:
            f.write(msg + "\n")
    elif len(_EARLY) < _EARLY_LIMIT:
        _EARLY.append(msg)
