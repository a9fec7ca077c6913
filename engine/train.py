"""Training: the epoch loop (`fit`: train, validate, checkpoint) and one epoch (`train_one_epoch`:
iterate, forward, objective, finite check, backward, clip, step, log).

A run stops cleanly between two steps: SIGTERM, SIGINT or SIGUSR1 (a cluster's preemption, Ctrl-C)
let the step in progress finish, write last.pt with the position inside the epoch, and raise Preempted
(exit code 128 + signal). `--ckpt_every` writes the same mid-epoch checkpoint periodically. Resuming
from one gives the run an uninterrupted one would have (bit for bit on the CPU): the weights, optimiser
and RNG state are those after the step, the sampler skips the batches already drawn (their order and
each clip's randomness depend only on seed, epoch and clip), and the epoch's running sums come back.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from datasets.store.layouts import Layout
from engine.checkpoint import checkpoint_state, unwrap
from engine.config import OptimConfig, RunConfig
from engine.data import VIEW_SOURCES, cycle, set_loader_epoch, step_input
from engine.evaluate import evaluate
from engine.objective import EpochPlan, LossConfig, objective, plan_epoch
from engine.optim import lr_factor, set_lr
from utils.checkpoint import save_atomic
from utils.errors import Preempted, UserError
from utils.logger import RunLogger, echo
from utils.runtime import Runtime, StopRequest, all_reduce_sum, barrier


class LossNotFinite(UserError, FloatingPointError):
    """The loss became NaN or infinite; the run stops and its last checkpoint is kept."""


class OutOfMemory(UserError, MemoryError):
    """The device (or the host) ran out of memory; the message names the settings that drive memory."""


def is_out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or torch's CPU allocator failing."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and ("not enough memory" in str(e) or "out of memory" in str(e).lower())


@dataclass
class Trainer:
    """What every step of a run shares: the model being trained (DDP or compiled wrapper included),
    its optimiser, the loss configuration and the data it renders. `buffers` keeps the rendered input
    volume from step to step (engine/data.step_input)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    optimizer_family: str
    optim: OptimConfig
    loss: LossConfig
    cfg: RunConfig
    layout: Layout
    rt: Runtime
    logger: RunLogger
    channels_last: bool = False
    log_every: int = 20
    buffers: dict | None = None
    epochs_left: int = 0  # for the estimate
    estimate_pending: bool = True  # print the time estimate once the first steps of this process are timed
    ckpt_every: float = 0.0  # seconds between mid-epoch checkpoints (0: only at the end of each epoch)
    # Set by fit for train_one_epoch: where the first epoch starts ({'step', 'sums'} of a mid-epoch
    # checkpoint, else None), the signal request, and the writer of a mid-epoch checkpoint.
    resume_at: dict | None = None
    stop: StopRequest | None = None
    save_position: object = None
    last_save: float = 0.0


@contextlib.contextmanager
def memory_errors(hint: str):
    """Turn running out of memory (CPU or GPU) into an OutOfMemory user error that says `hint`."""
    try:
        yield
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise OutOfMemory(f"out of memory ({type(e).__name__}): {hint}") from e


ESTIMATE_STEPS = 5  # timed steps (after the first) behind the time estimate


def estimate_line(per_step: float, steps: int, epochs: int) -> str:
    """One line: seconds per step, the epoch and the whole training they imply."""
    return (f"estimate: {per_step:.3g} s per step, about {_duration(per_step * steps)} per epoch of {steps} steps, "
            f"{_duration(per_step * steps * epochs)} for {epochs} epoch(s) (validation and the final sweep not "
            "included)")  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fit(
    tr: Trainer,
    loaders: dict[str, DataLoader | None],
    val_loader: DataLoader | None,
    start_epoch: int,
    best: dict,
    epochs: int,
    max_steps: int,
    eval_every: int,
    run_dir: Path,
    args: dict,
    position: dict | None = None,
) -> dict:
    """Train epochs start_epoch..epochs-1; validate on `val_loader` (clips held out of training, never the
    test split; None: no validation) every `eval_every` epochs and after the last. After every epoch rank
    0 writes run_dir/last.pt, and best.pt when the validation top-1 improved (`args`: the flags stored
    with them). position: {'step', 'sums'} of a mid-epoch checkpoint, where start_epoch resumes.
    Returns the best {'top1', 'epoch'}. Raises Preempted after a stop signal, with last.pt written."""
    with StopRequest() as stop:
        return _fit(tr, loaders, val_loader, start_epoch, best, epochs, max_steps, eval_every, run_dir, args,
                    position, stop)  # fmt: skip


def _fit(tr, loaders, val_loader, start_epoch, best, epochs, max_steps, eval_every, run_dir, args, position, stop):
    def save_position(epoch: int, step: int, sums: dict) -> Path:
        """Write last.pt in the middle of `epoch`, before `step` (with the epoch's running sums)."""
        if tr.rt.is_main:
            state = checkpoint_state(tr.model, tr.opt, tr.scaler, epoch, best, tr.cfg, args)
            save_atomic({**state, "position": {"step": step, "sums": dict(sums)}}, run_dir / "last.pt")
        tr.last_save = time.monotonic()
        return run_dir / "last.pt"

    tr.epochs_left = epochs - start_epoch
    tr.resume_at, tr.stop, tr.save_position, tr.last_save = position, stop, save_position, time.monotonic()
    for epoch in range(start_epoch, epochs):
        plan = plan_epoch(epoch, tr.loss, loaders["unlabelled"] is not None)
        steps = epoch_steps(plan, loaders["labelled"], loaders["unlabelled"], max_steps)
        stats = train_one_epoch(tr, plan, loaders, epoch, steps)
        tr.logger.log({"split": "train_epoch", "epoch": epoch, **stats}, step=epoch, tb_prefix="epoch")
        improved = False
        if val_loader is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            res = evaluate(unwrap(tr.model), val_loader, tr.cfg, tr.layout, tr.rt, test_flip=False)
            tr.logger.log({"split": "val", "epoch": epoch, **res}, step=epoch, tb_prefix="val")
            echo(f"epoch {epoch}: {stats['stage']} loss {stats.get('loss', float('nan')):.4f}, "
                 f"val top1 {100 * res['top1']:.2f} top5 {100 * res['top5']:.2f}", tr.rt.is_main)  # fmt: skip
            improved = res["top1"] > best["top1"]
            best = {"top1": res["top1"], "epoch": epoch} if improved else best
        if tr.rt.is_main:
            state = checkpoint_state(tr.model, tr.opt, tr.scaler, epoch + 1, best, tr.cfg, args)
            if improved:
                save_atomic(state, run_dir / "best.pt")
            save_atomic(state, run_dir / "last.pt")
        tr.last_save = time.monotonic()
        if stop_requested(tr):  # a signal during the last step or validation: stop at the epoch's end
            raise preempted(tr, f"the end of epoch {epoch}", run_dir / "last.pt")
    barrier(tr.rt)  # the other ranks read best.pt next
    return best


def stop_requested(tr: Trainer) -> bool:
    """Whether a stop signal arrived (on any rank: they stop at the same step)."""
    requested = bool(tr.stop and tr.stop.signum)
    if tr.rt.distributed:
        requested = all_reduce_sum([float(requested)], tr.rt)[0] > 0
    return requested


def preempted(tr: Trainer, where: str, last: Path) -> Preempted:
    """The one line of a run stopped by a signal at `where` after writing its position to `last`."""
    signum = (tr.stop.signum if tr.stop else 0) or signal.SIGTERM  # a rank that did not get it itself
    return Preempted(signum, f"stopped by {signal.Signals(signum).name} at {where}; {last} holds the position: "
                             "run the same command to resume there")  # fmt: skip


def epoch_steps(plan: EpochPlan, labelled: DataLoader, unlabelled: DataLoader | None, max_steps: int) -> int:
    """Steps of an epoch: one pass over the loader that paces it (the unlabelled one when its views are
    used, the labelled one cycles), at most max_steps (0: no cap)."""
    steps = len(unlabelled) if plan.uses_unlabelled else len(labelled)
    return min(steps, max_steps) if max_steps else steps


def train_one_epoch(
    tr: Trainer, plan: EpochPlan, loaders: dict[str, DataLoader | None], epoch: int, steps: int
) -> dict:
    """Train `steps` steps of `epoch` by `plan`; returns the stage and the mean of every logged value.
    loaders: {'labelled': DataLoader, 'unlabelled': DataLoader or None}."""
    tr.model.train()
    resume_at, tr.resume_at = tr.resume_at or {"step": 0, "sums": {}}, None  # a mid-epoch position, once
    first, rng = resume_at["step"], torch.get_rng_state()
    iters = {"labelled": cycle(loaders["labelled"], epoch, first)}
    if plan.uses_unlabelled:  # it paces the epoch: `first` < one pass
        set_loader_epoch(loaders["unlabelled"], epoch, first)
        iters["unlabelled"] = iter(loaders["unlabelled"])
    ready = {}
    if first:
        # Making a DataLoader iterator draws a seed from torch's global RNG. An uninterrupted run made the
        # iterators of passes that began before `first` before the checkpoint saved that RNG (which is
        # restored now), so they are made here and the RNG put back: dropout then draws what it drew.
        if first % len(loaders["labelled"]):
            ready["labelled"] = next(iters["labelled"])
        torch.set_rng_state(rng)
    sums, show = dict(resume_at["sums"]), tr.rt.is_main and sys.stderr.isatty()
    bar = _progress(steps, f"epoch {epoch}", show)
    bar.update(first)
    t0 = t_warm = time.perf_counter()
    for step in range(first, steps):
        batches = {name: ready.pop(name) if name in ready else next(it) for name, it in iters.items()}
        data_time = time.perf_counter() - t0
        y = batches["labelled"]["label"].to(tr.rt.device, non_blocking=True)
        views = [(batches[VIEW_SOURCES[v][0]], VIEW_SOURCES[v][1]) for v in plan.views]
        x = step_input(views, tr.cfg, tr.layout, tr.rt, tr.buffers)
        if tr.channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        lr = set_lr(tr.opt, lr_factor(tr.optimizer_family, tr.optim, epoch, step, steps))
        with tr.rt.autocast():
            logits = tr.model(x).float()
        loss, terms = objective(plan.split(logits, len(y)), y, plan.stage, tr.loss, plan.ramp)
        if not torch.isfinite(loss):
            raise LossNotFinite(
                f"the loss became {loss.item()} at epoch {epoch}, step {step} "
                f"({', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())}); the last good checkpoint is kept: "
                "lower the learning rate, check the data for outliers, or resume from it"
            )
        tr.opt.zero_grad(set_to_none=True)
        tr.scaler.scale(loss).backward()
        if tr.optim.clip_grad > 0:
            tr.scaler.unscale_(tr.opt)
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), tr.optim.clip_grad)
        tr.scaler.step(tr.opt)
        tr.scaler.update()
        row = {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}, "data_time": data_time,
               "step_time": time.perf_counter() - t0}  # fmt: skip
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
        if tr.rt.is_main and (step % tr.log_every == 0 or step == steps - 1):
            tr.logger.log({"split": "train", "epoch": epoch, "step": step, "stage": plan.stage, "lr": lr, **row},
                          step=epoch * steps + step, tb_prefix="train")  # fmt: skip
            if not show:
                echo(f"epoch {epoch} step {step}/{steps} " + " ".join(f"{k} {v:.4f}" for k, v in row.items())
                     + f" lr {lr:.3g}")  # fmt: skip
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        t0 = time.perf_counter()
        if step == first:
            t_warm = t0  # the first step pays for warm-up: timed from the second on
        elif tr.estimate_pending and (step - first == ESTIMATE_STEPS or step == steps - 1):
            tr.estimate_pending = False
            echo(estimate_line((t0 - t_warm) / (step - first), steps, tr.epochs_left), tr.rt.is_main)
        if step + 1 < steps and tr.save_position is not None:  # the epoch's end writes its own checkpoint
            if stop_requested(tr):
                bar.close()
                last = tr.save_position(epoch, step + 1, sums)
                raise preempted(tr, f"epoch {epoch}, step {step + 1} of {steps}", last)
            if tr.ckpt_every and time.monotonic() - tr.last_save >= tr.ckpt_every:
                tr.save_position(epoch, step + 1, sums)
    bar.close()
    return {"stage": plan.stage, **{k: v / max(steps, 1) for k, v in sums.items()}}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
