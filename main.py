"""Train and evaluate noise-robust skeleton action recognisers.

    python main.py synthetic                              # built-in data, PoseConv3D, contrastive losses
    python main.py ntu60 --model_type motionbert --input_f Skeleton ...
    python main.py ntu60 --evaluate runs/NAME/best.pt     # accuracy across the noise sweep
    python main.py predict --checkpoint runs/NAME/best.pt --input FILE   # = python predict.py ...
    python main.py convert folder SRC OUT.pkl --layout NAME ...          # = python -m datasets.convert ...

`run()` and `train_run()` read as the outline of a run: options, runtime, data (or `--evaluate`), the
training split and loaders, model, optimiser, resume, the epoch loop, and the final robustness evaluation;
the engine (engine/) does the work with typed configuration.
Each clip yields a clean and a noisy view; the loss is cross-entropy on labelled clips + gamma x
instance contrastive + gamma2 x group contrastive between the two views (+ TCL's pseudo-label loss in
the optional fine-tuning stage). A user error exits with code 2 and one line (utils/errors.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from datasets.sources.convert import main as convert_main
from datasets.store.splits import save_split
from engine.checkpoint import resume_position
from engine.config import RunConfig, resolve_run_config
from engine.data import RunData, eval_loader, load_run_data, train_loaders, trained_families, training_split
from engine.fusion import fuse_streams
from engine.model import build_training_model
from engine.objective import plan_epoch
from engine.optim import build_optimizer
from engine.predict import run_predict
from engine.report import evaluate_checkpoint, final_sweep
from engine.train import Trainer, epoch_steps, fit, memory_errors
from models import model_spec
from opts import (
    MODEL_TYPES,
    backbone_kwargs,
    checkpoint_args,
    flag_notes,
    parse_args,
    parse_predict_args,
    recipe_summary,
    run_name,
    settings,
)
from utils.atomic import write_text
from utils.errors import UserError, exit_on_user_error
from utils.logger import RunLogger, echo, start_log
from utils.rundir import RunDirLock, check_writable
from utils.runtime import Runtime, close_runtime, git_revision, peak_memory, seed_everything, setup_runtime
from utils.threads import apply_threads


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:
        return exit_on_user_error("main.py predict", run_predict, parse_predict_args(argv[1:]))
    if argv[:1] == ["convert"]:  # a command of its own: its exit code is the process's
        sys.exit(convert_main(argv[1:], prog="main.py convert"))
    args = parse_args(argv)
    start, _ = time.perf_counter(), start_log()
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
        echo(recipe_summary(args, argv, optim, rt.world_size), rt.is_main)

    # -- data; --evaluate scores a checkpoint on it and stops there
    synthetic = {"clips_per_class_per_subject": args.synthetic_clips, "seed": args.synthetic_seed}
    data = load_run_data(args.dataset, args.data_root, args.ann_file, args.split, synthetic, args.layout,
                         args.keypoints, args.trust_data)  # fmt: skip
    notes += data.notes
    if args.evaluate:
        return evaluate_checkpoint(args.evaluate, data, ev, rt, Path(args.run_dir) / args.name if args.name else None,
                                   args.trust_checkpoint, args.save_test_probs,
                                   counted=args.dataset in ("synthetic", "custom"), notes=notes)  # fmt: skip
    streams = tuple(args.streams or (args.stream,))  # --streams: one model per stream, then their fusion
    cfgs = [resolve_run_config(
        MODEL_TYPES[args.model_type], input_format=args.input_f, layout=data.layout,
        num_joints=data.store.num_joints, coord_dim=data.store.coord_dim, num_classes=data.num_classes,
        dropout=args.dropout, clip_len=args.clip_len, input_size=args.input_size, max_persons=args.max_persons,
        in_channels=args.in_channels, model_kwargs=backbone_kwargs(args), label_map=data.label_map,
        stream=stream, test_input_size=args.test_input_size, visibility=args.visibility,
    ) for stream in streams]  # fmt: skip
    run_dir = Path(args.run_dir) / run_name(args, data.protocol)
    check_writable(run_dir)  # every check comes before the first write to the run directory
    for note in notes:
        echo(f"note: {note}", rt.is_main)
    echo(f"data: {data.path} ({len(data.train_idx)} train / {len(data.test_idx)} test clips, "
         f"{data.num_classes} classes)", rt.is_main)  # fmt: skip
    configs = (train, optim, loss, ev)
    if not args.streams:
        return train_run(args, argv, rt, data, cfgs[0], run_dir, configs)
    return train_streams(args, argv, rt, data, cfgs, run_dir, configs)


def train_streams(args: argparse.Namespace, argv, rt: Runtime, data: RunData, cfgs: list[RunConfig], run_dir: Path,
                  configs: tuple) -> dict:  # fmt: skip
    """--streams: one run per stream in run_dir/STREAM, one after another (the same command resumes the one
    that was stopped), then their fusion's robustness in run_dir, with weights chosen on the validation part."""
    results = {}
    for cfg in cfgs:
        echo(f"stream {cfg.stream}: {run_dir / cfg.stream}", rt.is_main)
        results[cfg.stream] = train_run(args, argv, rt, data, cfg, run_dir / cfg.stream, configs, save_probs=True)
    parts, _ = training_split(run_dir / cfgs[0].stream / "split.json", data, configs[0], rt)
    with RunDirLock(run_dir, enabled=rt.is_main):
        fused = fuse_streams(run_dir, tuple(results), cfgs, data, parts["validation"], tuple(args.fusion_weights),
                             configs[3], rt)  # fmt: skip
    return {"run_dir": str(run_dir), "streams": results, **fused, "device": rt.device, "is_main": rt.is_main}


def train_run(args: argparse.Namespace, argv, rt: Runtime, data: RunData, cfg: RunConfig, run_dir: Path,
              configs: tuple, save_probs: bool = False) -> dict:  # fmt: skip
    """Train the model of `cfg` on `data` into `run_dir` (resuming what is there), then score its checkpoints.
    configs: (TrainConfig, OptimConfig, LossConfig, EvalConfig), the typed flags (opts.settings)."""
    # -- the training clips by part, their loaders
    train, optim, loss, ev = configs
    parts, new_split = training_split(run_dir / "split.json", data, train, rt)
    labelled, unlabelled = train_loaders(data.store, parts["labelled"], parts["unlabelled"], cfg, train,
                                         loss.compares_views, rt, ce_noisy=loss.ce_views != "clean")  # fmt: skip
    val_loader = None
    if len(parts["validation"]):  # chooses the best epoch; the test split is scored only at the end
        val_loader = eval_loader(data.store, parts["validation"], cfg, ev, rt)
    echo(f"split: {len(parts['labelled'])} labelled / {len(parts['unlabelled'])} unlabelled training clips, "
         f"{len(parts['validation'])} held out to choose the best epoch", rt.is_main)  # fmt: skip

    # -- model, optimiser, resume
    weights = args.pretrained or args.tune_from
    model, train_model = build_training_model(cfg, train, rt, weights, bool(args.pretrained), args.trust_checkpoint)
    spec = model_spec(cfg.model_name)
    opt = build_optimizer(model, spec.optimizer, optim)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype is torch.float16)
    pos, resume = resume_position(args.resume, run_dir, args.trust_checkpoint, model, opt, scaler, cfg)

    # -- every check has passed: the run directory is ours (a lock) and written from here on
    with RunDirLock(run_dir, enabled=rt.is_main) as lock:
        for stale in lock.removed:
            echo(f"note: removed {stale.name}, the temporary file of a save that was interrupted", rt.is_main)
        logger = open_run_dir(run_dir, argv, args, cfg, rt)
        if new_split is not None and rt.is_main:
            save_split(run_dir / "split.json", **new_split)
        if resume:
            at = f", step {pos.step}" if pos.step else ""
            echo(f"resumed from {resume} at epoch {pos.epoch}{at}", rt.is_main)

        # -- the epoch loop, then the robustness evaluation with the chosen and the last checkpoint
        seen = trained_families(train, loss.compares_views or loss.ce_views != "clean")
        tr = Trainer(train_model, opt, scaler, spec.optimizer, optim, loss, train, cfg, rt, logger, run_dir,
                     checkpoint_args(args), seen)  # fmt: skip
        loaders = {"labelled": labelled, "unlabelled": unlabelled}
        steps = epoch_steps(plan_epoch(pos.epoch, loss, unlabelled is not None), labelled, unlabelled, train.max_steps)
        echo(f"plan: {steps} steps per epoch x {train.epochs - pos.epoch} epoch(s), batch {train.batch_size}, "
             f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; time per epoch estimated "
             "after the first steps", rt.is_main)  # fmt: skip
        try:
            with memory_errors(train, cfg, run_dir):
                best = fit(tr, loaders, val_loader, pos)
                rows = final_sweep(model, run_dir, best, train.epochs, data, cfg, ev, rt, logger,
                                   save_probs or args.save_test_probs, seen)  # fmt: skip
        finally:
            logger.close()  # TensorBoard's events reach the disk however the run ends
    return {"run_dir": str(run_dir), "best": best, "robustness": rows, "device": rt.device, "is_main": rt.is_main}


def runtime(args: argparse.Namespace, argv: list[str] | None) -> tuple[Runtime, list[str]]:
    """Device, precision and seeds; notes for the user about flags that are not used."""
    try:
        rt, notes = setup_runtime(args.device, args.gpus, args.amp)
    except RuntimeError as e:
        raise UserError(str(e)) from e
    notes.append(apply_threads(args.threads, args.workers)[1])  # before any work: a busy core makes threads wait
    seed_everything(args.seed, args.deterministic)
    return rt, notes + flag_notes(args, argv)


def open_run_dir(run_dir: Path, argv, args: argparse.Namespace, cfg: RunConfig, rt: Runtime) -> RunLogger:
    """The run's directory with args.json (the resolved run, readable without a checkpoint); its logger."""
    if rt.is_main:
        resolved = {"argv": argv, "args": checkpoint_args(args), "config": asdict(cfg), "git": git_revision()}
        write_text(run_dir / "args.json", json.dumps(resolved, indent=1, default=str))
    return RunLogger(run_dir, enabled=rt.is_main)


if __name__ == "__main__":
    main()
