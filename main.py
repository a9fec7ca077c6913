"""Train and evaluate noise-robust skeleton action recognisers.

    python main.py synthetic                              # built-in data, PoseConv3D, contrastive losses
    python main.py ntu60 --model_type motionbert --input_f Skeleton ...
    python main.py ntu60 --evaluate runs/NAME/best.pt     # accuracy across the noise sweep
    python main.py predict --checkpoint runs/NAME/best.pt --input FILE   # = python predict.py ...

`run()` reads as the outline of a run: options, runtime, data, model, optimiser, resume, the epoch loop,
and the final robustness evaluation; the engine (engine/) does the work with typed configuration.
Each clip yields a clean and a noisy view; the loss is cross-entropy on labelled clips + gamma x
instance contrastive + gamma2 x group contrastive between the two views (+ TCL's pseudo-label loss in
the optional fine-tuning stage). A user error exits with code 2 and one line (utils/errors.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from datasets.store.layouts import get_layout
from datasets.store.splits import hold_out, load_split, save_split, split_labelled
from engine.checkpoint import (
    INPUT_FIELDS,
    build_model,
    check_classes,
    check_fits,
    check_layout,
    config_differences,
    load_run_model,
    restore,
)
from engine.config import EvalConfig, RunConfig, TrainConfig, resolve_run_config
from engine.data import RunData, eval_loader, load_run_data, train_loaders
from engine.evaluate import robustness_sweep, summarize
from engine.objective import plan_epoch
from engine.optim import build_optimizer
from engine.predict import run_predict
from engine.train import Trainer, epoch_steps, fit, memory_errors
from models import model_spec
from opts import (
    MODEL_TYPES,
    backbone_kwargs,
    checkpoint_args,
    given_flags,
    ignored_flags,
    parse_args,
    parse_predict_args,
    run_name,
    settings,
)
from recipes import recipe_defaults, recipe_line
from utils.checkpoint import load_weights, read_checkpoint
from utils.errors import UserError, exit_on_user_error
from utils.logger import RunLogger, echo
from utils.robustness import write_robustness
from utils.rundir import RunDirLock, check_writable
from utils.runtime import Runtime, close_runtime, git_revision, peak_memory, seed_everything, setup_runtime
from utils.threads import apply_threads


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:
        return exit_on_user_error("main.py predict", run_predict, parse_predict_args(argv[1:]))
    args = parse_args(argv)
    start = time.perf_counter()
    result = exit_on_user_error("main.py", run, args, argv)
    if result.pop("is_main", True):
        print(f"done in {time.perf_counter() - start:.0f} s wall time; {peak_memory(result.pop('device'))}", flush=True)
    close_runtime()
    return result


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    # -- runtime
    rt, notes = runtime(args, argv)
    train, optim, loss, ev = settings(args, rt.world_size)
    if args.recipe:
        echo_recipe(args, argv, optim, rt)

    # -- data
    synthetic = {"clips_per_class_per_subject": args.synthetic_clips, "seed": args.synthetic_seed}
    data = load_run_data(args.dataset, args.data_root, args.ann_file, args.split, synthetic, args.layout)
    notes += data.notes
    if args.evaluate:
        return evaluate_checkpoint(args, data, ev, rt, notes)
    cfg = resolve_run_config(
        MODEL_TYPES[args.model_type], input_format=args.input_f, layout=data.layout,
        num_joints=data.store.num_joints, coord_dim=data.store.coord_dim, num_classes=data.num_classes,
        dropout=args.dropout, clip_len=args.clip_len, input_size=args.input_size, max_persons=args.max_persons,
        in_channels=args.in_channels, model_kwargs=backbone_kwargs(args), label_map=data.label_map,
        stream=args.stream, test_input_size=args.test_input_size,
    )  # fmt: skip
    run_dir = Path(args.run_dir) / run_name(args)
    check_writable(run_dir)  # every check comes before the first write to the run directory
    for note in notes:
        echo(f"note: {note}", rt.is_main)
    echo(f"data: {data.path} ({len(data.train_idx)} train / {len(data.test_idx)} test clips, "
         f"{data.num_classes} classes)", rt.is_main)  # fmt: skip
    parts, new_split = training_split(run_dir / "split.json", data, train, rt)
    labelled, unlabelled = train_loaders(data.store, parts["labelled"], parts["unlabelled"], cfg, data.layout, train,
                                         loss.compares_views, rt, ce_noisy=loss.ce_views != "clean")  # fmt: skip
    val_loader = None
    if len(parts["validation"]):  # chooses the best epoch; the test split is scored only at the end
        val_loader = eval_loader(data.store, parts["validation"], cfg, data.layout, ev, rt)
    echo(f"split: {len(parts['labelled'])} labelled / {len(parts['unlabelled'])} unlabelled training clips, "
         f"{len(parts['validation'])} held out to choose the best epoch", rt.is_main)  # fmt: skip

    # -- model
    model, train_model = build_model_for_training(cfg, args, rt)
    spec = model_spec(cfg.model_name)

    # -- optimiser, resume
    opt = build_optimizer(model, spec.optimizer, optim)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype is torch.float16)
    start_epoch, best, position = 0, {"top1": -1.0, "epoch": -1}, None
    resume = args.resume or (run_dir / "last.pt" if (run_dir / "last.pt").exists() else None)
    if resume:
        hint = None if args.resume else "delete it to start the run over, or pass --resume with another checkpoint"
        ckpt = read_checkpoint(resume, trusted=args.trust_checkpoint, hint=hint)
        start_epoch, best = restore(ckpt, model, opt, scaler, cfg, resume)
        position = ckpt.get("position")  # inside start_epoch: written by a stop signal or --ckpt_every

    # -- every check has passed: the run directory is ours (a lock) and written from here on
    with RunDirLock(run_dir, enabled=rt.is_main) as lock:
        for stale in lock.removed:
            echo(f"note: removed {stale.name}, the temporary file of a save that was interrupted", rt.is_main)
        logger = open_run_dir(run_dir, argv, args, cfg, rt)
        if new_split is not None and rt.is_main:
            save_split(run_dir / "split.json", **new_split)
        if resume:
            at = f", step {position['step']}" if position else ""
            echo(f"resumed from {resume} at epoch {start_epoch}{at}", rt.is_main)

        # -- the epoch loop, then the robustness evaluation with the best checkpoint
        tr = Trainer(train_model, opt, scaler, spec.optimizer, optim, loss, cfg, data.layout, rt, logger,
                     channels_last=train.channels_last, log_every=train.log_every, buffers={},
                     ckpt_every=60 * args.ckpt_every)  # fmt: skip
        loaders = {"labelled": labelled, "unlabelled": unlabelled}
        steps = epoch_steps(plan_epoch(start_epoch, loss, unlabelled is not None), labelled, unlabelled,
                            train.max_steps)  # fmt: skip
        echo(f"plan: {steps} steps per epoch x {train.epochs - start_epoch} epoch(s), batch {train.batch_size}, "
             f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; time per epoch estimated "
             "after the first steps", rt.is_main)  # fmt: skip
        try:
            with memory_errors(memory_hint(train, cfg, run_dir)):
                best = fit(tr, loaders, val_loader, start_epoch, best, train.epochs, train.max_steps,
                           train.eval_every, run_dir, checkpoint_args(args), position)  # fmt: skip
                rows = final_sweep(model, run_dir, best, train.epochs, data, cfg, ev, rt, logger, args.save_test_probs)
        finally:
            logger.close()  # TensorBoard's events reach the disk however the run ends
    return {"run_dir": str(run_dir), "best": best, "robustness": rows, "device": rt.device, "is_main": rt.is_main}


def echo_recipe(args: argparse.Namespace, argv: list[str] | None, optim, rt: Runtime) -> None:
    """One line: what the --recipe preset set, what the command line overrode, and the learning rates it
    trains with at this run's total batch."""
    sgd = model_spec(MODEL_TYPES[args.model_type]).optimizer == "sgd"
    lrs = {"lr": optim.lr} if sgd else {"lr_backbone1": optim.lr_backbone, "lr_head1": optim.lr_head}
    echo(recipe_line(args.recipe, recipe_defaults(args.recipe, args.dataset), given_flags(argv), lrs,
                     args.lr_batch, args.batch_size * rt.world_size), rt.is_main)  # fmt: skip


def final_sweep(model, run_dir: Path, best: dict, epochs: int, data: RunData, cfg: RunConfig, ev: EvalConfig,
                rt: Runtime, logger: RunLogger, save_probs: bool = False) -> list[dict]:  # fmt: skip
    """The robustness sweep of the test split with the checkpoints of ev.checkpoints: the one chosen on the
    validation part (best.pt) and the last one; when they are the same epoch, once, its rows listed under
    both names. save_probs: test_probs.npz and sweep_probs.npz of the first of them (save_test_probs)."""
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
        collect = [] if save_probs and not rows else None
        echo(f"robustness of {path} (epoch {epoch}):", rt.is_main)
        new = robustness_sweep(model, data.store, data.test_idx, cfg, data.layout, ev, rt, logger, name, epoch, collect)
        if collect is not None:
            save_test_probs(run_dir, new, collect, data, rt)
        rows += new
    report(rows, run_dir, cfg, rt)
    logger.close()
    return rows


def save_test_probs(run_dir: Path, rows: list[dict], collected: list, data: RunData, rt: Runtime) -> None:
    """--save_test_probs, from one checkpoint's sweep: test_probs.npz (the clean row, for scripts/fuse.py: names
    (N,) clip names, labels (N,) int64, probs (N, C) float32, checkpoint, epoch) and sweep_probs.npz (every row,
    for scripts/fuse.py --sweep: probs (P, N, C) in the order of the P rows, and the rows' family, level,
    severity and suite (P,)). collected: each row's (store indices, labels, probs) from robustness_sweep."""
    if rt.world_size > 1:  # each process holds only its share of the clips
        echo("note: --save_test_probs writes nothing when several processes evaluate", rt.is_main)
        return
    order = collected[0][0]
    probs = []
    for indices, _, p in collected:  # every row scores the same clips; align them by store index anyway
        where = {int(i): k for k, i in enumerate(indices)}
        probs.append(p[[where[int(i)] for i in order]])
    names = np.array([data.store.names[i] for i in order.tolist()])
    labels, ckpt, epoch = collected[0][1], rows[0]["checkpoint"], rows[0]["epoch"]
    assert rows[0]["family"] == "clean", "the sweep scores the clean clips first"
    np.savez(run_dir / "test_probs.npz", names=names, labels=labels, probs=probs[0], checkpoint=ckpt, epoch=epoch)
    echo(f"test probabilities of {len(names)} clips ({ckpt}) written to {run_dir / 'test_probs.npz'}", rt.is_main)
    meta = {key: np.array([r[key] for r in rows]) for key in ("family", "level", "severity", "suite")}
    np.savez(run_dir / "sweep_probs.npz", names=names, labels=labels, probs=np.stack(probs).astype(np.float32),
             **meta, checkpoint=ckpt, epoch=epoch)  # fmt: skip
    echo(f"probabilities of the {len(rows)} rows of the sweep written to {run_dir / 'sweep_probs.npz'}", rt.is_main)


def report(rows: list[dict], run_dir: Path, cfg: RunConfig, rt: Runtime) -> None:
    """One summary line per checkpoint; robustness.csv, summary.json and the plots (rank 0)."""
    summaries = {}
    for ckpt in dict.fromkeys(r["checkpoint"] for r in rows):
        summaries[ckpt] = s = summarize([r for r in rows if r["checkpoint"] == ckpt])
        echo(f"summary ({ckpt}, epoch {s['epoch']}): clean top1 {100 * s['clean']:.2f}, mCA {100 * s['mCA']:.2f}, "
             f"relative robustness {s['relative']:.3f}", rt.is_main)  # fmt: skip
    if rt.is_main:
        scale = "skeleton bounding-box diagonal" if cfg.coord_dim == 3 else "mean frame side"
        write_robustness(rows, summaries, run_dir, title=run_dir.name, jitter_scale=scale)


def memory_hint(train: TrainConfig, cfg: RunConfig, run_dir: Path) -> str:
    """What to change when a run runs out of memory, and how it goes on."""
    return (
        f"lower -b (now {train.batch_size}; the same command then resumes from {run_dir / 'last.pt'}), or start "
        f"a new --name with a smaller --clip_len (now {cfg.clip_len}), --input_size (now {cfg.input_size}) or "
        "model (--model_cfg)"
    )


def build_model_for_training(cfg: RunConfig, args: argparse.Namespace, rt: Runtime):
    """The model (with --pretrained or --tune_from weights) and what trains it: the same module, or its
    DDP / compiled wrapper."""
    spec = model_spec(cfg.model_name)
    model = build_model(cfg).to(rt.device)
    if args.pretrained or args.tune_from:
        path = args.pretrained or args.tune_from
        ckpt = read_checkpoint(path, trusted=args.trust_checkpoint)
        diff = config_differences(ckpt["config"], cfg, INPUT_FIELDS) if isinstance(ckpt.get("config"), dict) else []
        if diff:  # a main.py checkpoint of another input: its weights would not mean the same here
            flag = "--pretrained" if args.pretrained else "--tune_from"
            raise UserError(f"{flag} {path} was trained on another input ({'; '.join(diff)}); give the flags "
                            "of that run (--input_f, data of its layout) or another checkpoint")  # fmt: skip
        echo(load_weights(model, path, backbone_only=bool(args.pretrained), ckpt=ckpt), rt.is_main)
    if args.channels_last and spec.reads == "volume":
        model = model.to(memory_format=torch.channels_last_3d)
    train_model = model
    if rt.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=spec.unused_parameters,
        )  # fmt: skip
    if args.compile:
        train_model = torch.compile(train_model)
    n_params = sum(p.numel() for p in model.parameters())
    echo(f"model: {cfg.model_name} {cfg.model_cfg} ({n_params / 1e6:.2f} M parameters) on {rt.device}", rt.is_main)
    return model, train_model


def runtime(args: argparse.Namespace, argv: list[str] | None) -> tuple[Runtime, list[str]]:
    """Device, precision and seeds; notes for the user about flags that are not used."""
    try:
        rt, notes = setup_runtime(args.device, args.gpus, args.amp)
    except RuntimeError as e:
        raise UserError(str(e)) from e
    notes.append(apply_threads(args.threads, args.workers)[1])  # before any work: a busy core makes threads wait
    seed_everything(args.seed, args.deterministic)
    if args.modality is not None:
        notes.append(f"modality {args.modality!r} is accepted for compatibility and not used (see --input_f)")
    skipped = ignored_flags(args, argv)
    if skipped:
        notes.append(f"ignored for --model_type {args.model_type}: {', '.join(skipped)}")
    return rt, notes


def open_run_dir(run_dir: Path, argv, args: argparse.Namespace, cfg: RunConfig, rt: Runtime) -> RunLogger:
    """The run's directory with args.json (the resolved run, readable without a checkpoint); its logger."""
    if rt.is_main:
        resolved = {"argv": argv, "args": checkpoint_args(args), "config": asdict(cfg), "git": git_revision()}
        (run_dir / "args.json").write_text(json.dumps(resolved, indent=1, default=str))
    return RunLogger(run_dir, enabled=rt.is_main)


def training_split(
    path: Path, data: RunData, train: TrainConfig, rt: Runtime
) -> tuple[dict[str, np.ndarray], dict | None]:
    """The training clips by part (store indices): 'validation' (held out to choose the best epoch, whole
    subjects where the names carry them), 'labelled' and 'unlabelled' (TCL's split of the rest). Saved
    with the run as split.json and reused on resume (a file of an older run without a validation part
    holds out nothing). Writes nothing: returns (parts, the save_split arguments of a new split or None)."""
    names = [data.store.names[i] for i in data.train_idx]
    if not names:
        raise UserError(f"{data.path} has no clip in its training split; check --split, or the file's 'split' key")
    new = None
    if path.is_file():
        try:
            parts = load_split(path, names)
        except (ValueError, OSError) as e:
            raise UserError(f"{path} cannot be used: {e}") from e
        parts.setdefault("validation", np.zeros(0, dtype=np.int64))
    else:
        labels = data.store.labels[data.train_idx]
        keep, val, by = hold_out(names, labels, train.val_fraction, train.seed)
        lab, ul = split_labelled(labels[keep], train.unlabelled_fraction, train.label_strategy, train.seed)
        parts = {"labelled": keep[lab], "unlabelled": keep[ul], "validation": val}
        new = {"names": names, **parts}
        if len(val):
            echo(f"validation: {len(val)} training clips held out by {by}", rt.is_main)
    if not len(parts["labelled"]):
        raise UserError(f"no labelled training clip is left in {data.path} after holding out validation clips; "
                        "lower --val_fraction or --percentage")  # fmt: skip
    return {part: data.train_idx[pos] for part, pos in parts.items()}, new


def evaluate_checkpoint(args: argparse.Namespace, data: RunData, ev: EvalConfig, rt: Runtime, notes) -> dict:
    """--evaluate CKPT: rebuild the model from the checkpoint's own configuration and run the sweep."""
    model, cfg, ckpt = load_run_model(args.evaluate, rt.device, args.trust_checkpoint)
    # the model's layout, not the data file's: the data must fit it (the joint count, then the layout by name
    # and, for a declared one, by its definition, as --pretrained compares them)
    model_layout = get_layout(cfg.layout, cfg.layout_def)
    check_fits(data.store, cfg, model_layout, data.path.name)
    check_layout(data.layout, cfg, data.path.name)
    data = replace(data, layout=model_layout)
    check_classes(cfg, data.num_classes, data.path.name, counted=args.dataset in ("synthetic", "custom"))
    if not len(data.test_idx):
        raise UserError(f"{data.path} has no clip in its test split; check --split, or the file's 'split' key")
    run_dir = Path(args.run_dir) / args.name if args.name else Path(args.evaluate).resolve().parent
    check_writable(run_dir)
    with RunDirLock(run_dir, enabled=rt.is_main):
        return evaluate_in(run_dir, args, model, cfg, ckpt, data, ev, rt, notes)


def evaluate_in(run_dir: Path, args, model, cfg: RunConfig, ckpt: dict, data: RunData, ev: EvalConfig, rt: Runtime,
                notes) -> dict:  # fmt: skip
    """--evaluate's sweep, written to `run_dir` (whose lock the caller holds)."""
    logger = RunLogger(run_dir, enabled=rt.is_main)
    for note in notes:
        echo(f"note: {note}", rt.is_main)
    epoch = int(ckpt.get("epoch", 0)) - 1  # the epoch it was written after
    collect = [] if args.save_test_probs else None
    rows = robustness_sweep(model, data.store, data.test_idx, cfg, data.layout, ev, rt, logger,
                            Path(args.evaluate).stem, epoch, collect)  # fmt: skip
    if collect is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_test_probs(run_dir, rows, collect, data, rt)
    report(rows, run_dir, cfg, rt)
    logger.close()
    return {"run_dir": str(run_dir), "robustness": rows, "device": rt.device, "is_main": rt.is_main}


if __name__ == "__main__":
    main()
