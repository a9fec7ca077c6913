"""Late fusion of the models of several streams (`main.py --streams joint bone ...`): the fusion weights,
chosen on the validation part of the training clips (never the test split) or given, and the fused
robustness sweep, row by row of the streams' identical sweeps of the test clips.

Fusion is a weighted mean of the streams' class probabilities (pyskl fuses scores the same way, with 1:1 for
two streams and 2:2:1:1 for joint, bone, joint motion, bone motion).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from engine.checkpoint import load_run_model
from engine.config import EvalConfig, RunConfig
from engine.data import RunData, eval_loader
from engine.evaluate import accuracy, in_order, predict_probs
from engine.report import SWEEP_PROBS, TEST_PROBS, report
from utils.atomic import atomic_write, write_text
from utils.checkpoint import read_checkpoint
from utils.errors import UserError
from utils.logger import echo
from utils.runtime import Runtime

PYSKL_WEIGHTS = {"joint": 2.0, "bone": 2.0, "joint_motion": 1.0, "bone_motion": 1.0}  # pyskl's 4-stream fusion
FUSION_FILE = "fusion.json"


def candidate_weights(streams: tuple[str, ...]) -> list[tuple[float, ...]]:
    """The weightings that 'auto' chooses among: equal weights first (they win ties), pyskl's 2:2:1:1 of the
    streams, then every other vector of 1s and 2s."""
    out = [tuple(1.0 for _ in streams), tuple(PYSKL_WEIGHTS[s] for s in streams)]
    out += [tuple(float(w) for w in ws) for ws in itertools.product((1, 2), repeat=len(streams))]
    return list(dict.fromkeys(out))


def fusion_weights(
    given: tuple[str, ...], streams: tuple[str, ...], val_probs: list[np.ndarray] | None, labels: np.ndarray | None
) -> tuple[tuple[float, ...], dict]:
    """The fusion weights of `streams` by --fusion_weights: 'auto' (the candidate with the best top-1 on the
    validation clips, equal weights when there are none), 'equal', 'pyskl' (2:2:1:1) or one number per stream.
    val_probs: each stream's (N, C) probabilities of the validation clips, in one clip order; labels (N,).
    Returns (weights, {'rule', 'weights', 'validation': [[weights, top-1], ...]})."""
    rule = given[0] if len(given) == 1 and given[0] in ("auto", "equal", "pyskl") else "given"
    if rule == "given":
        weights = tuple(float(w) for w in given)
    elif rule == "pyskl":
        weights = tuple(PYSKL_WEIGHTS[s] for s in streams)
    else:
        weights = tuple(1.0 for _ in streams)
    scored = []
    if rule == "auto" and val_probs is not None and len(labels):
        for w in candidate_weights(streams):
            top1 = float((fuse(val_probs, w).argmax(1) == labels).mean())
            scored.append([list(w), top1])
        weights = tuple(max(scored, key=lambda s: s[1])[0])  # the first of the best: equal weights on a tie
    return weights, {"rule": rule, "weights": list(weights), "validation": scored}


def fuse(probs: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    """Weighted mean of the streams' (N, C) probabilities of the same clips in the same order -> (N, C)."""
    w = np.asarray(weights, dtype=np.float64)
    return np.tensordot(w / w.sum(), np.stack(probs).astype(np.float64), axes=1)


def validation_probs(
    run_dirs: list[Path], checkpoint: str, data: RunData, idx: np.ndarray, ev: EvalConfig, rt: Runtime
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each stream's probabilities of the validation clips `idx` with its `checkpoint` ('best' or 'last', the
    model rebuilt from the checkpoint's own configuration), in one clip order, and their labels.
    Single-process only (each process would hold its share)."""
    out, order, labels = [], None, None
    for run_dir in run_dirs:
        model, cfg, _ = load_run_model(run_dir / f"{checkpoint}.pt", rt.device)
        indices, labels_, probs = predict_probs(model, eval_loader(data.store, idx, cfg, ev, rt), cfg, rt, False)
        if order is None:
            order, labels = indices, labels_
        out.append(in_order(indices, probs, order))
    return out, labels


def fused_sweep(run_dirs: list[Path], weights: tuple[float, ...], rt: Runtime) -> list[dict]:
    """The robustness rows of the fusion: each row of the streams' sweeps (their SWEEP_PROBS, written by
    the final sweep of each stream's run) fused with `weights`, checkpoint 'fused'. Raises UserError when
    the streams were not scored on the same clips and corruptions."""
    sweeps = []
    for run_dir in run_dirs:
        with np.load(run_dir / SWEEP_PROBS) as z:
            sweeps.append({k: z[k] for k in ("names", "labels", "probs", "family", "level", "severity", "suite")})
    first = sweeps[0]
    for run_dir, s in zip(run_dirs[1:], sweeps[1:], strict=True):
        same = all(np.array_equal(s[k], first[k]) for k in ("names", "labels", "family", "severity"))
        if not same:
            raise UserError(f"{run_dir} was scored on other clips or corruptions than {run_dirs[0]}; rerun it")
    rows = []
    for r in range(len(first["family"])):
        probs = fuse([s["probs"][r] for s in sweeps], weights)  # (N, C)
        rows.append({"checkpoint": "fused", "epoch": -1, "family": str(first["family"][r]),
                     "level": str(first["level"][r]), "severity": float(first["severity"][r]),
                     "suite": bool(first["suite"][r]), **accuracy(first["labels"], probs, rt)})  # fmt: skip
    return rows


def fuse_streams(
    run_dir: Path, streams: tuple[str, ...], cfgs: list[RunConfig], data: RunData, val_idx: np.ndarray,
    given: tuple[str, ...], ev: EvalConfig, rt: Runtime,
) -> dict:  # fmt: skip
    """After every stream's run (run_dir/STREAM): choose the weights, fuse the test sweep, and report it in
    run_dir (robustness.csv, summary.json, plots, FUSION_FILE with the weights and how they were chosen).
    Returns {'weights', 'robustness': the fused rows}."""
    run_dirs = [run_dir / s for s in streams]
    checkpoint = "best" if all((d / "best.pt").exists() for d in run_dirs) and "best" in ev.checkpoints else "last"
    val = None
    if given == ("auto",) and len(val_idx) and rt.world_size == 1:
        val = validation_probs(run_dirs, checkpoint, data, val_idx, ev, rt)
    weights, how = fusion_weights(given, streams, *(val or (None, None)))
    if rt.world_size > 1:
        echo("note: the fusion is scored by the single-process command (sweep probabilities are per process)", True)
        return {"weights": weights, "robustness": []}
    rows = fused_sweep(run_dirs, weights, rt)
    _save_fused_clean(run_dirs, weights, run_dir / TEST_PROBS)
    echo(f"fusion of {', '.join(f'{s} x{w:g}' for s, w in zip(streams, weights, strict=True))} ({how['rule']}; "
         f"each stream's {checkpoint} checkpoint)", rt.is_main)  # fmt: skip
    for row in rows:
        echo(f"fused {row['family']:<14} {row['level'] or '-':<9} {row['severity']:<8g} top1 "
             f"{100 * row['top1']:6.2f}  top5 {100 * row['top5']:6.2f}", rt.is_main)  # fmt: skip
    seen = read_checkpoint(run_dirs[0] / f"{checkpoint}.pt").get("seen_families")  # the streams train alike
    report(rows, run_dir, cfgs[0], rt, None if seen is None else tuple(seen))
    write_text(run_dir / FUSION_FILE, json.dumps({"streams": list(streams), "checkpoint": checkpoint, **how}, indent=1))
    return {"weights": weights, "robustness": rows}


def _save_fused_clean(run_dirs: list[Path], weights: tuple[float, ...], out: Path) -> None:
    """The fusion's probabilities of the clean test clips, as TEST_PROBS (engine/report.save_probs's schema,
    checkpoint 'fused'), for scripts/fuse.py and scripts/accuracy_table.py."""
    zs = [np.load(d / TEST_PROBS) for d in run_dirs]
    probs = fuse([z["probs"] for z in zs], weights).astype(np.float32)
    with atomic_write(out, "wb") as f:
        np.savez(f, names=zs[0]["names"], labels=zs[0]["labels"], probs=probs, checkpoint="fused", epoch=-1)
