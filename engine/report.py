"""The results of a run: the robustness sweep of its checkpoints on the test split (at the end of training,
and `--evaluate`), the summary lines, robustness.csv / summary.json / plots (utils/robustness.py), and the
saved probabilities that scripts/fuse.py reads (`TEST_PROBS`, `SWEEP_PROBS`, their schema in `save_probs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.checkpoint import check_classes, check_fits, check_layout, load_run_model
from engine.config import EvalConfig, RunConfig
from engine.data import RunData
from engine.evaluate import in_order, robustness_sweep, summarize
from utils.atomic import atomic_write
from utils.checkpoint import read_checkpoint
from utils.errors import UserError
from utils.logger import RunLogger, echo
from utils.robustness import write_robustness
from utils.rundir import RunDirLock, check_writable
from utils.runtime import Runtime, StopRequest

TEST_PROBS = "test_probs.npz"  # the clean test clips' probabilities of one checkpoint (--save_test_probs)
SWEEP_PROBS = "sweep_probs.npz"  # the same for every row of its robustness sweep


def final_sweep(
    model: torch.nn.Module,
    run_dir: Path,
    best: dict,
    epochs: int,
    data: RunData,
    cfg: RunConfig,
    ev: EvalConfig,
    rt: Runtime,
    logger: RunLogger,
    save: bool = False,
    seen: tuple[str, ...] | None = None,
) -> list[dict]:
    """The robustness sweep of the test split at the end of training, with the checkpoints of ev.checkpoints:
    the one chosen on the validation part (best.pt) and the last one; when they are the same epoch, once,
    its rows listed under both names. `model` takes each checkpoint's weights in turn. save: the saved
    probabilities of the first of them (--save_test_probs); seen: the families training corrupted (report).
    Writes the report; returns the rows."""
    last_epoch = epochs - 1
    names = list(ev.checkpoints)
    if not (run_dir / "best.pt").exists():  # no validation part: the last checkpoint is the only one
        names = ["last"]
    rows = []
    for name in names:
        path = run_dir / f"{name}.pt"
        epoch = best["epoch"] if name == "best" else last_epoch
        if name == "last" and rows and rows[0]["checkpoint"] == "best" and best["epoch"] == last_epoch:
            rows += [{**r, "checkpoint": "last"} for r in rows]
            break
        model.load_state_dict(read_checkpoint(path)["model"])
        echo(f"robustness of {path} (epoch {epoch}):", rt.is_main)
        rows += sweep(model, run_dir, name, epoch, data, cfg, ev, rt, logger, save=save and not rows)
    report(rows, run_dir, cfg, rt, seen)
    return rows


def evaluate_checkpoint(
    path: str | Path,
    data: RunData,
    ev: EvalConfig,
    rt: Runtime,
    run_dir: Path | None = None,
    trusted: bool = False,
    save: bool = False,
    counted: bool = False,
    notes: tuple[str, ...] | list[str] = (),
) -> dict:
    """`main.py --evaluate PATH`: rebuild the checkpoint's model from its own configuration and run the
    robustness sweep of `data`'s test split, reported into `run_dir` (default: evaluate_CKPT_on_DATA beside the
    checkpoint, so that a training run's own results are never replaced) under the checkpoint's file name.
    The data must fit the model: its joint count and layout (by name and, for a declared one, by definition),
    its classes (`counted`: the data's class count is counted from its labels, so a subset fits).
    Returns {'run_dir', 'robustness', 'device', 'is_main'}; raises UserError (one line)."""
    model, cfg, ckpt = load_run_model(path, rt.device, trusted)
    check_fits(data.store, cfg, data.path.name)
    check_layout(data.layout, cfg, data.path.name)
    check_classes(cfg, data.num_classes, data.path.name, counted=counted)
    if not len(data.test_idx):
        raise UserError(f"{data.path} has no clip in its test split; check --split, or the file's 'split' key")
    # Its own folder beside the checkpoint, named for the checkpoint and the data: never the training run's files.
    run_dir = run_dir or Path(path).resolve().parent / f"evaluate_{Path(path).stem}_on_{data.path.stem}"
    check_writable(run_dir)
    with RunDirLock(run_dir, enabled=rt.is_main):
        logger = RunLogger(run_dir, enabled=rt.is_main)
        for note in notes:
            echo(f"note: {note}", rt.is_main)
        epoch = int(ckpt.get("epoch", 0)) - 1  # the epoch it was written after
        rows = sweep(model, run_dir, Path(path).stem, epoch, data, cfg, ev, rt, logger, save=save)
        seen = ckpt.get("seen_families")  # what its training corrupted (absent in older checkpoints)
        report(rows, run_dir, cfg, rt, None if seen is None else tuple(seen))
        logger.close()
    return {"run_dir": str(run_dir), "robustness": rows, "device": rt.device, "is_main": rt.is_main}


def sweep(
    model: torch.nn.Module,
    run_dir: Path,
    checkpoint: str,
    epoch: int,
    data: RunData,
    cfg: RunConfig,
    ev: EvalConfig,
    rt: Runtime,
    logger: RunLogger,
    save: bool = False,
) -> list[dict]:
    """The robustness sweep of one checkpoint's model (rows named `checkpoint`, `epoch`); save: its
    probabilities into run_dir (`save_probs`). A stop signal ends it after the row in progress (Preempted),
    with nothing of it written: the same command sweeps again."""
    collect = [] if save else None
    with StopRequest() as stop:
        rows = robustness_sweep(model, data.store, data.test_idx, cfg, ev, rt, logger, checkpoint, epoch, collect, stop)
    if collect is not None:
        save_probs(run_dir, rows, collect, data, rt)
    return rows


def save_probs(run_dir: Path, rows: list[dict], collected: list, data: RunData, rt: Runtime) -> None:
    """--save_test_probs, from one checkpoint's sweep: TEST_PROBS (the clean row, for scripts/fuse.py: names
    (N,) clip names, labels (N,) int64, probs (N, C) float32, checkpoint, epoch) and SWEEP_PROBS (every row,
    for scripts/fuse.py --sweep: probs (P, N, C) in the order of the P rows, and the rows' family, level,
    severity and suite (P,)). collected: each row's (store indices, labels, probs) from robustness_sweep."""
    if rt.world_size > 1:  # each process holds only its share of the clips
        echo("note: --save_test_probs writes nothing when several processes evaluate", rt.is_main)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    order = collected[0][0]
    # every row scores the same clips; align them by store index anyway
    probs = [in_order(indices, p, order) for indices, _, p in collected]
    names = np.array([data.store.names[i] for i in order.tolist()])
    labels, ckpt, epoch = collected[0][1], rows[0]["checkpoint"], rows[0]["epoch"]
    assert rows[0]["family"] == "clean", "the sweep scores the clean clips first"
    with atomic_write(run_dir / TEST_PROBS, "wb") as f:
        np.savez(f, names=names, labels=labels, probs=probs[0], checkpoint=ckpt, epoch=epoch)
    echo(f"test probabilities of {len(names)} clips ({ckpt}) written to {run_dir / TEST_PROBS}", rt.is_main)
    meta = {key: np.array([r[key] for r in rows]) for key in ("family", "level", "severity", "suite")}
    with atomic_write(run_dir / SWEEP_PROBS, "wb") as f:
        np.savez(f, names=names, labels=labels, probs=np.stack(probs).astype(np.float32), **meta, checkpoint=ckpt,
                 epoch=epoch)  # fmt: skip
    echo(f"probabilities of the {len(rows)} rows of the sweep written to {run_dir / SWEEP_PROBS}", rt.is_main)


def report(rows: list[dict], run_dir: Path, cfg: RunConfig, rt: Runtime, seen: tuple[str, ...] | None = None) -> None:
    """One summary line per checkpoint; robustness.csv, summary.json and the plots (rank 0). seen: the
    families the model trained on (None: unknown), whose mCA is then also given apart from the others'."""
    summaries = {}
    for ckpt in dict.fromkeys(r["checkpoint"] for r in rows):
        summaries[ckpt] = s = summarize([r for r in rows if r["checkpoint"] == ckpt], seen)
        split = ""
        if seen is not None and any(r["suite"] for r in rows):
            split = ", no corruption family seen in training"
            if seen:
                split = (f", mCA on the families seen in training ({', '.join(seen)}) {100 * s['mCA_seen']:.2f}, "
                         f"on the others {100 * s['mCA_unseen']:.2f}")  # fmt: skip
        echo(f"summary ({ckpt}, epoch {s['epoch']}): clean top1 {100 * s['clean']:.2f}, mCA {100 * s['mCA']:.2f}, "
             f"relative robustness {s['relative']:.3f}{split}", rt.is_main)  # fmt: skip
    if rt.is_main:
        scale = "skeleton bounding-box diagonal" if cfg.coord_dim == 3 else "mean frame side"
        write_robustness(rows, summaries, run_dir, title=run_dir.name, jitter_scale=scale)
