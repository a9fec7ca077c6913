"""Evaluation: class probabilities of test clips (pyskl's multi-clip test), accuracy, and the robustness
sweep. `main.py --evaluate`, the end of training and `predict` all go through `predict_probs`."""

from __future__ import annotations

import signal

import numpy as np
import torch
from torch.utils.data import DataLoader

from datasets.pipeline.corruptions import FAMILIES
from datasets.store.annotations import KeypointStore
from engine.config import EvalConfig, RunConfig
from engine.data import eval_loader, model_input
from utils.errors import Preempted
from utils.logger import RunLogger, echo
from utils.runtime import Runtime, StopRequest, all_reduce_sum


@torch.no_grad()
def batch_probs(model, batch: dict, cfg: RunConfig, rt: Runtime, test_flip: bool) -> torch.Tensor:
    """Class probabilities (B, C) of a test batch, pyskl's multi-clip test: softmax per clip view (and
    flipped view), then the mean over the views."""
    kp = batch["keypoint"].to(rt.device)  # (B, S, M, T, V, 2); joint coordinates (B, S, M, T, V, 3)
    b = kp.shape[0]
    score = batch["keypoint_score"].to(rt.device).flatten(0, 1) if "keypoint_score" in batch else None
    x = model_input(kp.flatten(0, 1), score, cfg, double=test_flip, test=True)  # (B*S*D, ...)
    with rt.autocast():
        logits = model(x).float()
    return logits.softmax(-1).view(b, -1, logits.shape[-1]).mean(1)  # (B, C)


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module, loader: DataLoader, cfg: RunConfig, rt: Runtime, test_flip: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities of every clip of the loader (this rank's share).

    Returns (store indices (N,), labels (N,), probabilities (N, C) float32).
    """
    model.eval()
    indices, labels, probs = [], [], []
    for batch in loader:
        probs.append(batch_probs(model, batch, cfg, rt, test_flip).cpu())  # (B, C)
        indices.append(batch["index"])
        labels.append(batch["label"])
    if not probs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, cfg.num_classes), np.float32)
    return torch.cat(indices).numpy(), torch.cat(labels).numpy(), torch.cat(probs).numpy()


def in_order(indices: np.ndarray, probs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The rows of `probs` (N, C), one per store index of `indices` (N,), rearranged into `order` (N,)."""
    where = {int(i): k for k, i in enumerate(indices)}
    return probs[[where[int(i)] for i in order]]


def accuracy(labels: np.ndarray, probs: np.ndarray, rt: Runtime) -> dict:
    """Top-1 / top-5 of (N,) labels under (N, C) probabilities; counts are summed across ranks."""
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    top5 = p.topk(min(5, p.shape[1]), dim=1).indices  # (N, 5)
    correct1 = float((top5[:, 0] == y).sum())
    correct5 = float((top5 == y[:, None]).any(1).sum())
    correct1, correct5, total = all_reduce_sum([correct1, correct5, float(len(labels))], rt)
    return {"top1": correct1 / max(total, 1), "top5": correct5 / max(total, 1), "clips": int(total)}


def evaluate(model, loader: DataLoader, cfg: RunConfig, rt: Runtime, test_flip: bool) -> dict:
    """Top-1 / top-5 over the loader with multi-clip testing."""
    _, labels, probs = predict_probs(model, loader, cfg, rt, test_flip)
    return accuracy(labels, probs, rt)


def sweep_points(ev: EvalConfig) -> list[tuple[str, str, float, bool]]:
    """What the sweep evaluates, in order: (family, level name, severity, in the suite). The clean clips
    first, then the jitter sweep of ev.alphas, then the suite's (family, severity) pairs (a jitter level
    that the alpha sweep holds already is named there, not evaluated twice)."""
    suite = set(ev.corruptions)
    points = [("clean", "", 0.0, False)]
    points += [("jitter", level_name("jitter", a), a, ("jitter", a) in suite) for a in ev.alphas if a > 0]
    done = {(f, s) for f, _, s, _ in points}
    points += [(f, level_name(f, s), s, True) for f, s in ev.corruptions if (f, s) not in done and s > 0]
    return points


def level_name(family: str, severity: float) -> str:
    """The named level of `family` at `severity`, or '' when it is not one of them."""
    names = {v: k for k, v in FAMILIES[family].levels.items()}
    return names.get(severity, "")


def robustness_sweep(
    model,
    store: KeypointStore,
    test_idx: np.ndarray,
    cfg: RunConfig,
    ev: EvalConfig,
    rt: Runtime,
    logger: RunLogger,
    checkpoint: str,
    epoch: int,
    probs_out: list | None = None,
    stop: StopRequest | None = None,
) -> list[dict]:
    """Accuracy on the clean test clips and under every corruption of `ev` (sweep_points), each on
    corrupted clips that are identical for every model and run. Rows: checkpoint, epoch, family, level,
    severity, suite (counts in the mCA), top1, top5, clips. probs_out: when a list, each row's
    (store indices (N,), labels (N,), probs (N, C)) of this process's clips is appended to it.
    stop: a signal it holds (in any process) stops the sweep after the row in progress: Preempted."""
    rows = []
    points = sweep_points(ev)
    for family, level, severity, in_suite in points:
        corruption = ("jitter", 0.0) if family == "clean" else (family, severity)
        loader = eval_loader(store, test_idx, cfg, ev, rt, corruption)
        indices, labels, probs = predict_probs(model, loader, cfg, rt, ev.test_flip)
        res = accuracy(labels, probs, rt)
        if probs_out is not None:
            probs_out.append((indices, labels, probs))
        row = {"checkpoint": checkpoint, "epoch": epoch, "family": family, "level": level, "severity": severity,
               "suite": in_suite, **res}  # fmt: skip
        rows.append(row)
        logger.log({"split": "robustness", **row})
        echo(f"{checkpoint:<5} {family:<14} {level or '-':<9} {severity:<8g} top1 {100 * res['top1']:6.2f}  "
             f"top5 {100 * res['top5']:6.2f}", rt.is_main)  # fmt: skip
        if stop is not None and len(rows) < len(points) and stop_agreed(stop, rt):
            signum = stop.signum or signal.SIGTERM  # a process that did not get it itself
            raise Preempted(signum, f"stopped by {signal.Signals(signum).name} during the robustness sweep of "
                                    f"{checkpoint} after {len(rows)} of its {len(points)} rows, none written: run "
                                    "the same command to sweep again")  # fmt: skip
    return rows


def stop_agreed(stop: StopRequest, rt: Runtime) -> bool:
    """Whether a stop signal reached any of the run's processes (every process must call it)."""
    requested = bool(stop.signum)
    if rt.distributed:
        requested = all_reduce_sum([float(requested)], rt)[0] > 0
    return requested


def summarize(rows: list[dict], seen: tuple[str, ...] | None = None) -> dict:
    """Clean top-1, mean corruption accuracy over the suite's (family, level) rows (mCA), relative
    robustness mCA / clean, and the mean top-1 of each family's suite rows. seen: the families the model's
    training views were corrupted with (None: not known); then also the mCA over the suite's rows of those
    families ('mCA_seen') and of the others ('mCA_unseen'), NaN where there are none."""
    clean = next(r["top1"] for r in rows if r["family"] == "clean")
    suite = [r for r in rows if r["suite"]]
    families = {}
    for r in suite:
        families.setdefault(r["family"], []).append(r["top1"])
    mca = float(np.mean([r["top1"] for r in suite])) if suite else float("nan")
    return {
        "epoch": rows[0]["epoch"],
        "clean": clean,
        "mCA": mca,
        "relative": mca / clean if clean > 0 else float("nan"),
        "families": {f: float(np.mean(v)) for f, v in families.items()},
        **(_seen_split(suite, seen) if seen is not None else {}),
    }


def _seen_split(suite: list[dict], seen: tuple[str, ...]) -> dict:
    """The mCA over the suite rows of the `seen` families and over those of the others (NaN: no row)."""

    def mean(rows: list[dict]) -> float:
        return float(np.mean([r["top1"] for r in rows])) if rows else float("nan")

    return {"seen": list(seen), "mCA_seen": mean([r for r in suite if r["family"] in seen]),
            "mCA_unseen": mean([r for r in suite if r["family"] not in seen])}  # fmt: skip
