"""Training: the epoch loop (`fit`: train, validate, checkpoint), one epoch (`train_one_epoch`: iterate, log,
checkpoint between steps) and one step (`train_step`: model input, forward, objective, finite check,
backward, clip, step).

A run stops cleanly between two steps: SIGTERM, SIGINT or SIGUSR1 (a cluster's preemption, Ctrl-C)
let the step in progress finish, write last.pt with the position inside the epoch, and raise Preempted
(exit code 128 + signal). `--ckpt_every` writes the same mid-epoch checkpoint periodically. Resuming
from one gives the run an uninterrupted one would have (bit for bit on the CPU): the weights, optimiser
and RNG state are those after the step, the sampler skips the batches already drawn (their order and
each clip's randomness depend only on seed, epoch and clip), and the epoch's running sums come back.
What changes as a run trains is one object, `engine.checkpoint.Position`; the `Trainer` is fixed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from engine.checkpoint import Position, checkpoint_state, unwrap
from engine.config import OptimConfig, RunConfig, TrainConfig
from engine.data import epoch_batches, step_input
from engine.evaluate import evaluate, stop_agreed
from engine.objective import EpochPlan, LossConfig, objective, plan_epoch
from engine.optim import lr_factor, set_lr
from utils.checkpoint import save_atomic
from utils.errors import Preempted, UserError
from utils.logger import RunLogger, echo
from utils.memory_guard import MemoryGuard
from utils.runtime import Runtime, StopRequest, barrier


class LossNotFinite(UserError, FloatingPointError):
    """The loss became NaN or infinite; the run stops and its last checkpoint is kept."""


def _lr_flags(tr: Trainer) -> str:
    """The flags of the run's learning rate with their values, as a user would lower them."""
    if tr.optimizer_family == "adamw":
        return f"--lr_backbone1 (now {tr.optim.lr_backbone:g}) and --lr_head1 (now {tr.optim.lr_head:g})"
    return f"--lr (now {tr.optim.lr:g})"


class OutOfMemory(UserError, MemoryError):
    """The device (or the host) ran out of memory; the message names the settings that drive memory."""


def is_out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or torch's CPU allocator failing."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and ("not enough memory" in str(e) or "out of memory" in str(e).lower())


@contextlib.contextmanager
def memory_errors(train: TrainConfig, cfg: RunConfig, run_dir: Path):
    """Turn running out of memory (CPU or GPU) into an OutOfMemory user error that names the settings that
    drive memory, and says how the run goes on; stop the run with the same line when the host's memory is
    about to run out (utils/memory_guard.py)."""
    advice = (
        f"lower -b (now {train.batch_size}; the same command then resumes from {run_dir / 'last.pt'}), or start a "
        f"new --name with a smaller --clip_len (now {cfg.clip_len}), --input_size (now {cfg.input_size}) or model "
        f"({cfg.model_name}: --model_cfg)"
    )
    try:
        # Host memory is mostly handed out before it exists: the kernel kills the process (exit 137, no word)
        # long before an allocation fails, so a guard watches what is left and stops the run first.
        with MemoryGuard("main.py", advice):
            yield
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise OutOfMemory(f"out of memory ({type(e).__name__}): {advice}") from e


@dataclass(frozen=True)
class Trainer:
    """What every step of a run shares, fixed for the run: the model being trained (DDP or compiled wrapper
    included), its optimiser and scaler, the configurations, where its checkpoints go (`run_dir`, with the
    command line's flags `args` stored in them) and its logger. `buffers` keeps the rendered input volume
    from step to step (engine/data.step_input)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    optimizer_family: str
    optim: OptimConfig
    loss: LossConfig
    train: TrainConfig
    cfg: RunConfig
    rt: Runtime
    logger: RunLogger
    run_dir: Path
    args: dict
    seen: tuple[str, ...] = ()  # the corruption families of the training views (stored in checkpoints)
    buffers: dict = field(default_factory=dict)


class Saves:
    """The checkpoints of a run in progress: last.pt (and best.pt) at the end of every epoch, and a mid-epoch
    last.pt when a stop signal arrived (on any rank: they stop at the same step) or `--ckpt_every` is due."""

    def __init__(self, tr: Trainer, stop: StopRequest) -> None:
        self.tr, self.stop, self.last = tr, stop, time.monotonic()

    def write(self, pos: Position, best_too: bool = False) -> Path:
        tr = self.tr
        if tr.rt.is_main:
            state = checkpoint_state(tr.model, tr.opt, tr.scaler, pos, tr.cfg, tr.args, tr.seen)
            if best_too:
                save_atomic(state, tr.run_dir / "best.pt")
            save_atomic(state, tr.run_dir / "last.pt")
        self.last = time.monotonic()
        return tr.run_dir / "last.pt"

    def stop_requested(self) -> bool:
        return stop_agreed(self.stop, self.tr.rt)

    def preempted(self, where: str) -> Preempted:
        """The one line of a run stopped by a signal at `where`, its position written to last.pt."""
        signum = self.stop.signum or signal.SIGTERM  # a rank that did not get it itself
        return Preempted(signum, f"stopped by {signal.Signals(signum).name} at {where}; {self.tr.run_dir / 'last.pt'} "
                                 "holds the position: run the same command to resume there")  # fmt: skip

    def between_steps(self, pos: Position, steps: int) -> None:
        """After a step (pos.step: the next one): stop with the position saved, or save it when it is due."""
        if self.stop_requested():
            self.write(pos)
            raise self.preempted(f"epoch {pos.epoch}, step {pos.step} of {steps}")
        if self.tr.train.ckpt_every and time.monotonic() - self.last >= self.tr.train.ckpt_every:
            self.write(pos)


ESTIMATE_STEPS = 5  # timed steps (after the first) behind the time estimate


class StepTimer:
    """Data and step time of each step, and the time estimate, once, when this process has timed its first
    steps (the first step pays for warm-up and is not counted)."""

    def __init__(self, epochs_left: int) -> None:
        self.epochs_left, self.pending = epochs_left, True
        self.t0 = self.t_warm = time.perf_counter()

    def start(self) -> None:
        self.t0 = self.t_warm = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def stepped(self, step: int, first: int, steps: int, is_main: bool) -> None:
        self.t0 = time.perf_counter()
        if step == first:
            self.t_warm = self.t0
        elif self.pending and (step - first == ESTIMATE_STEPS or step == steps - 1):
            self.pending = False
            echo(estimate_line((self.t0 - self.t_warm) / (step - first), steps, self.epochs_left), is_main)


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


def fit(tr: Trainer, loaders: dict[str, DataLoader | None], val_loader: DataLoader | None, pos: Position) -> dict:
    """Train epochs pos.epoch..epochs-1 (from step pos.step of the first: a mid-epoch checkpoint); validate
    on `val_loader` (clips held out of training, never the test split; None: no validation) every
    `eval_every` epochs and after the last. After every epoch rank 0 writes last.pt, and best.pt when the
    validation top-1 improved. Returns the best {'top1', 'epoch'}. Raises Preempted after a stop signal,
    with last.pt written."""
    epochs = tr.train.epochs
    with StopRequest() as stop:
        saves, timer = Saves(tr, stop), StepTimer(epochs - pos.epoch)
        for epoch in range(pos.epoch, epochs):
            plan = plan_epoch(epoch, tr.loss, loaders["unlabelled"] is not None)
            steps = epoch_steps(plan, loaders["labelled"], loaders["unlabelled"], tr.train.max_steps)
            stats = train_one_epoch(tr, plan, loaders, pos, steps, saves, timer)
            tr.logger.log({"split": "train_epoch", "epoch": epoch, **stats}, step=epoch, tb_prefix="epoch")
            improved = False
            if val_loader is not None and ((epoch + 1) % tr.train.eval_every == 0 or epoch + 1 == epochs):
                improved = validate(tr, val_loader, epoch, stats, pos)
            pos.epoch, pos.step, pos.sums = epoch + 1, 0, {}
            saves.write(pos, best_too=improved)
            if saves.stop_requested():  # a signal during the last step or validation: stop at the epoch's end
                raise saves.preempted(f"the end of epoch {epoch}")
        barrier(tr.rt)  # the other ranks read best.pt next
    return pos.best


def validate(tr: Trainer, val_loader: DataLoader, epoch: int, stats: dict, pos: Position) -> bool:
    """Score the validation clips after `epoch`, log them, and keep the best in pos.best; whether it improved."""
    res = evaluate(unwrap(tr.model), val_loader, tr.cfg, tr.rt, test_flip=False)
    tr.logger.log({"split": "val", "epoch": epoch, **res}, step=epoch, tb_prefix="val")
    echo(f"epoch {epoch}: {stats['stage']} loss {stats.get('loss', float('nan')):.4f}, "
         f"val top1 {100 * res['top1']:.2f} top5 {100 * res['top5']:.2f}", tr.rt.is_main)  # fmt: skip
    if res["top1"] <= pos.best["top1"]:
        return False
    pos.best = {"top1": res["top1"], "epoch": epoch}
    return True


def epoch_steps(plan: EpochPlan, labelled: DataLoader, unlabelled: DataLoader | None, max_steps: int) -> int:
    """Steps of an epoch: one pass over the loader that paces it (the unlabelled one when its views are
    used, the labelled one cycles), at most max_steps (0: no cap)."""
    steps = len(unlabelled) if plan.uses_unlabelled else len(labelled)
    return min(steps, max_steps) if max_steps else steps


def train_one_epoch(
    tr: Trainer,
    plan: EpochPlan,
    loaders: dict[str, DataLoader | None],
    pos: Position,
    steps: int,
    saves: Saves,
    timer: StepTimer,
) -> dict:
    """Train steps pos.step..steps-1 of epoch pos.epoch by `plan`; pos.step and pos.sums follow the steps, and
    `saves` writes the position between them when asked. Returns the stage and the mean of every logged value.
    loaders: {'labelled': DataLoader, 'unlabelled': DataLoader or None}."""
    tr.model.train()
    epoch, first, sums = pos.epoch, pos.step, pos.sums
    show = tr.rt.is_main and sys.stderr.isatty()
    batches = epoch_batches(loaders, plan.uses_unlabelled, epoch, first)
    with _progress(steps, f"epoch {epoch}", show) as bar:
        bar.update(first)
        timer.start()
        for step in range(first, steps):
            batch = next(batches)
            data_time = timer.elapsed()
            terms, lr = train_step(tr, plan, batch, epoch, step, steps)
            row = {**terms, "data_time": data_time, "step_time": timer.elapsed()}
            for k, v in row.items():
                sums[k] = sums.get(k, 0.0) + v
            if tr.rt.is_main and (step % tr.train.log_every == 0 or step == steps - 1):
                tr.logger.log({"split": "train", "epoch": epoch, "step": step, "stage": plan.stage, "lr": lr, **row},
                              step=epoch * steps + step, tb_prefix="train")  # fmt: skip
                if not show:
                    echo(f"epoch {epoch} step {step}/{steps} " + " ".join(f"{k} {v:.4f}" for k, v in row.items())
                         + f" lr {lr:.3g}")  # fmt: skip
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            timer.stepped(step, first, steps, tr.rt.is_main)
            if step + 1 < steps:  # the epoch's end writes its own checkpoint
                pos.step = step + 1
                saves.between_steps(pos, steps)
    return {"stage": plan.stage, **{k: v / max(steps, 1) for k, v in sums.items()}}


def train_step(
    tr: Trainer, plan: EpochPlan, batches: dict[str, dict], epoch: int, step: int, steps: int
) -> tuple[dict[str, float], float]:
    """One optimisation step on the step's batches ({'labelled': ..., 'unlabelled': ...}). Returns the loss and
    its named terms as floats, and the learning rate it stepped with. Raises LossNotFinite."""
    y = batches["labelled"]["label"].to(tr.rt.device, non_blocking=True)
    x = step_input(plan.inputs(batches), tr.cfg, tr.rt, tr.buffers)  # the plan's views along dim 0
    if tr.train.channels_last and x.dim() == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    lr = set_lr(tr.opt, lr_factor(tr.optimizer_family, tr.optim, epoch, step, steps))
    with tr.rt.autocast():
        logits = tr.model(x).float()
    loss, terms = objective(plan.split(logits, len(y)), y, plan.stage, tr.loss, plan.ramp)
    if not torch.isfinite(loss):
        raise LossNotFinite(
            f"the loss became {loss.item()} at epoch {epoch}, step {step} "
            f"({', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())}); the last good checkpoint is kept: "
            f"lower {_lr_flags(tr)}, check the data for outliers, or resume from it"
        )
    tr.opt.zero_grad(set_to_none=True)
    tr.scaler.scale(loss).backward()
    if tr.optim.clip_grad > 0:
        tr.scaler.unscale_(tr.opt)
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), tr.optim.clip_grad)
    tr.scaler.step(tr.opt)
    tr.scaler.update()
    return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}, lr


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
