"""Metrics of a run: JSON lines and TensorBoard events, written by rank 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLogger:
    """Appends metric rows to run_dir/metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))

    def log(self, row: dict, step: int | None = None, tb_prefix: str | None = None) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({**row, "time": round(time.time(), 3)}) + "\n")
        if tb_prefix and step is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(f"{tb_prefix}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def echo(msg: str, enabled: bool = True) -> None:
    if enabled:
        print(msg, flush=True)
