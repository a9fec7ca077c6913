"""Train and evaluate noise-robust skeleton action recognisers.

    python main.py synthetic                              # built-in data, PoseConv3D, contrastive losses
    python main.py ntu60 --model_type motionbert --input_f Skeleton ...
    python main.py ntu60 --evaluate runs/NAME/best.pt     # accuracy across the noise sweep

`main(argv)` reads as the outline of a run: options, runtime, data, model, optimiser, resume, the
epoch loop, and the final robustness evaluation. Each clip yields a clean and a noisy view; the loss is
cross-entropy on labelled clips + gamma x instance contrastive + gamma2 x group contrastive between the
two views (+ TCL's pseudo-label loss in the optional fine-tuning stage).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from datasets.annotations import AnnotationError, KeypointStore
from datasets.catalog import get_spec, load_store, split_names
from datasets.clips import SkeletonClips
from datasets.label_maps import LABEL_MAPS, ntu_label_map
from datasets.layouts import Layout, get_layout
from losses import group_contrastive_loss, instance_contrastive_loss, pseudo_label_loss, total_loss
from models import create_model
from opts import MODEL_TYPES, ignored_flags, parse_args
from utils.checkpoint import CheckpointError, load_weights, read_checkpoint, save_atomic
from utils.logger import RunLogger, echo
from utils.render import input_channels, render
from utils.robustness import write_robustness
from utils.runtime import Runtime, all_reduce_sum, close_runtime, git_revision, seed_everything, setup_runtime
from utils.semisup import load_split, save_split, split_labelled

# ----------------------------------------------------------------------------------------------------
# Configuration derived from the flags and the data (args itself is never modified)


@dataclass(frozen=True)
class RunConfig:
    """What the model and the data path depend on; saved in every checkpoint."""

    model_name: str  # registry name
    model_cfg: dict  # constructor keyword arguments
    pipeline: str  # 'pose' (rendered volumes) or 'motionbert' (joint coordinates)
    input_format: str  # Heatmap | Limb | Grayscale | Skeleton
    clip_len: int
    input_size: int
    max_persons: int
    layout: str
    num_classes: int
    coord_dim: int = 2  # of the training keypoints: 2 (pixels + scores) or 3 (metres)
    label_map: str | None = None  # a custom file's class names ('ntu60', 'ntu120'); None: by the dataset's name


def resolve_config(
    args: argparse.Namespace, store: KeypointStore, num_classes: int, layout: Layout, label_map: str | None = None
) -> RunConfig:
    """Derive the run configuration; a combination that cannot work exits with a one-line error (code 2)."""
    model_name = MODEL_TYPES[args.model_type]
    fmt = "Heatmap" if args.input_f == "NCTHW_Heatmap" else args.input_f
    if store.num_joints != layout.num_joints:
        sys.exit(f"error: the data has {store.num_joints} joints but layout {layout.name} has {layout.num_joints}")
    if model_name == "motionbert":
        if layout.name != "coco17" and store.coord_dim == 2:
            _usage_error(
                f"MotionBERT's 2D preprocessing maps COCO-17 joints to H36M; 2D layout {layout.name} is not "
                "supported (3D files of any layout are)"
            )
        clip_len = args.clip_len or 243
        cfg = {"num_classes": num_classes, "dropout_ratio": args.dropout, "num_joints": layout.num_joints}
    else:
        clip_len = args.num_segments if model_name == "tsm" else (args.clip_len or 24)
        needed = input_channels(fmt, args.max_persons, layout)
        if args.in_channels is not None and args.in_channels != needed:
            _usage_error(
                f"--in_channels {args.in_channels} does not fit --input_f {args.input_f} with {args.max_persons} "
                f"persons and {layout.num_joints} joints: use --in_channels {needed}"
            )
        cfg = {"in_channels": needed, "num_classes": num_classes, "dropout": args.dropout}
        if model_name == "tsm":
            cfg.update(
                arch=args.arch,
                num_segments=args.num_segments,
                shift=args.shift,
                shift_div=args.shift_div,
                shift_place=args.shift_place,
                consensus_type=args.consensus_type,
                partial_bn=not args.npb,
            )
    cfg.update(dict(args.model_cfg))
    if model_name == "motionbert" and args.num_clips > 1:
        _usage_error("--num_clips is for PoseConv3D and TSM: MotionBERT's test clip is the whole sequence resampled")
    if model_name == "motionbert" and clip_len > cfg.get("maxlen", 243):
        _usage_error(f"--clip_len {clip_len} exceeds MotionBERT's maxlen {cfg.get('maxlen', 243)}")
    return RunConfig(
        model_name=model_name,
        model_cfg=cfg,
        pipeline="motionbert" if model_name == "motionbert" else "pose",
        input_format=fmt,
        clip_len=clip_len,
        input_size=args.input_size,
        max_persons=args.max_persons,
        layout=layout.name,
        num_classes=num_classes,
        coord_dim=store.coord_dim,
        label_map=label_map,
    )


def _usage_error(msg: str) -> None:
    print(f"main.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def run_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    flags = f"g{args.gamma:g}_a{args.noise_alpha:g}_s{args.seed}"
    return f"{args.dataset}_{args.split}_{args.model_type}_{args.input_f}_{flags}"


# ----------------------------------------------------------------------------------------------------
# Data


class ShardedSampler(Sampler):
    """Indices of one epoch for this rank: shuffled from (seed, epoch) when `shuffle`, sharded rank::world.

    Training pads to equal shards so every rank takes the same number of steps (DDP needs it);
    evaluation does not pad, so each clip is counted exactly once across ranks.
    """

    def __init__(self, n: int, rt: Runtime, seed: int, shuffle: bool) -> None:
        self.n, self.rt, self.seed, self.shuffle, self.epoch = n, rt, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> np.ndarray:
        idx = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.shuffle and self.rt.world_size > 1:
            idx = np.resize(idx, math.ceil(self.n / self.rt.world_size) * self.rt.world_size)
        return idx[self.rt.rank :: self.rt.world_size]

    def __iter__(self):
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return len(self._indices())


def make_loader(ds: SkeletonClips, batch_size: int, rt: Runtime, seed: int, train: bool, workers: int) -> DataLoader:
    sampler = ShardedSampler(len(ds), rt, seed, shuffle=train)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=train and len(sampler) >= batch_size,  # no batch of 1 for BatchNorm
        pin_memory=rt.device.type == "cuda",
        persistent_workers=False,  # workers must see set_epoch: they copy the dataset per epoch
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)


def cycle(loader: DataLoader, epoch: int):
    """Endless labelled batches: each pass over the loader is reshuffled from its own seed."""
    k = 0
    while True:
        set_loader_epoch(loader, epoch * 10_000 + k)
        yield from loader
        k += 1


def model_input(
    kp: torch.Tensor,
    score: torch.Tensor | None,
    cfg: RunConfig,
    layout: Layout,
    double: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keypoint batch on the device -> model input. Pose: (B, M, T, V, 2) -> rendered (B, C, T, H, W)
    (2B with `double`; into `out` when given, Heatmap and Limb only); MotionBERT: (B, 2, T, 17, 3) is
    already its input."""
    if cfg.pipeline == "motionbert":
        return kp
    size = (cfg.input_size, cfg.input_size)
    return render(cfg.input_format, kp, score, size, layout=layout, double=double, out=out)


def step_input(views: list[tuple[dict, str]], cfg: RunConfig, layout: Layout, rt: Runtime, buffers: dict):
    """The model input of one training step: the views (collated batch, '' clean or 'noisy_'), one after
    another along the batch dimension.

    Heatmap and limb volumes are rendered straight into their slice of one volume that `buffers` keeps
    from step to step (by shape), which saves a fresh allocation and a concatenation per step (on a CPU
    the allocation alone costs more than the rendering, bench/render.py). The previous step's backward
    pass is over before the volume is reused.
    """
    kps = []
    for batch, prefix in views:  # collated (B, 1, M, T, V, C): one clip per item
        kp = batch[prefix + "keypoint"][:, 0].to(rt.device, non_blocking=True)  # (B, M, T, V, C)
        score = batch.get(prefix + "keypoint_score")
        kps.append((kp, None if score is None else score[:, 0].to(rt.device, non_blocking=True)))
    if cfg.pipeline != "pose" or cfg.input_format not in ("Heatmap", "Limb"):
        return torch.cat([model_input(kp, score, cfg, layout) for kp, score in kps])
    n, t = sum(len(kp) for kp, _ in kps), kps[0][0].shape[2]
    c = input_channels(cfg.input_format, kps[0][0].shape[1], layout)
    shape = (n, c, t, cfg.input_size, cfg.input_size)
    if shape not in buffers:
        buffers.clear()  # one shape at a time (the last, smaller batch of an epoch changes it)
        buffers[shape] = torch.empty(shape, dtype=torch.float32, device=rt.device)
    x, start = buffers[shape], 0
    for kp, score in kps:
        model_input(kp, score, cfg, layout, out=x[start : start + len(kp)])
        start += len(kp)
    return x


# ----------------------------------------------------------------------------------------------------
# Model and optimisation


def build_model(cfg: RunConfig) -> torch.nn.Module:
    return create_model(cfg.model_name, **cfg.model_cfg)


def build_optimizer(model: torch.nn.Module, args: argparse.Namespace, cfg: RunConfig, steps_per_epoch: int):
    """PoseConv3D/TSM: SGD with TCL's cosine or step schedule (per step). MotionBERT: AdamW, backbone and
    head learning rates, x lr_decay1 after every epoch (its own schedule)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.model_name == "motionbert":
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        head = [p for p in params if id(p) not in ids]
        opt = torch.optim.AdamW(
            [{"params": backbone, "lr": args.lr_backbone1}, {"params": head, "lr": args.lr_head1}],
            weight_decay=args.weight_decay1,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: args.lr_decay1 ** (step // steps_per_epoch))
        return opt, sched
    opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, nesterov=True)
    total = args.epochs * steps_per_epoch
    if args.lr_type == "cos":
        fn = lambda step: 0.5 * (1 + math.cos(math.pi * step / total))  # noqa: E731
    else:
        fn = lambda step: 0.1 ** sum(step >= s * steps_per_epoch for s in args.lr_steps)  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, fn)


def uses_views(args: argparse.Namespace) -> bool:
    """Whether any loss term compares the clean and the noisy view (otherwise training is plain CE)."""
    return args.gamma > 0 or args.use_group_contrastive or args.use_finetuning


def stage_of(epoch: int, args: argparse.Namespace) -> str:
    """'supervised' (cross-entropy only), 'contrastive', or TCL's pseudo-label 'finetune' stage."""
    if epoch < args.sup_thresh or not uses_views(args):
        return "supervised"
    if args.use_finetuning and epoch >= args.finetune_start_epoch:
        return "finetune"
    if args.gamma > 0 or args.use_group_contrastive:
        return "contrastive"
    return "supervised"  # fine-tuning alone, before it starts


# ----------------------------------------------------------------------------------------------------
# Training


def train_one_epoch(model, loaders, opt, sched, scaler, epoch, args, cfg, layout, rt, logger, buffers) -> dict:
    """One epoch. Labelled clips give cross-entropy; the clean and noisy views of unlabelled clips (of the
    labelled clips when --percentage 0) give the contrastive terms, or TCL's pseudo-label loss. `buffers`
    holds the rendered input volume from step to step (`step_input`)."""
    model.train()
    stage = stage_of(epoch, args)
    labelled, unlabelled = loaders
    use_ul = stage != "supervised" and unlabelled is not None
    contrast_labelled = stage != "supervised" and unlabelled is None
    steps = len(unlabelled) if use_ul else len(labelled)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    lab_iter = cycle(labelled, epoch)
    if use_ul:
        set_loader_epoch(unlabelled, epoch)
        ul_iter = iter(unlabelled)
    sums, n = {}, 0
    show = rt.is_main and sys.stderr.isatty()
    bar = _progress(steps, f"epoch {epoch}", show)
    t0 = time.perf_counter()
    for step in range(steps):
        lab = next(lab_iter)
        ul = next(ul_iter) if use_ul else None
        data_time = time.perf_counter() - t0
        y = lab["label"].to(rt.device, non_blocking=True)
        views = [(lab, "")]
        if use_ul:
            views += [(ul, ""), (ul, "noisy_")]
        elif contrast_labelled:
            views.append((lab, "noisy_"))
        x = step_input(views, cfg, layout, rt, buffers)
        if args.channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with rt.autocast():
            logits = model(x).float()
        n_lab = len(y)
        logits_l = logits[:n_lab]
        terms = {"ce": F.cross_entropy(logits_l, y)}
        if stage != "supervised":
            clean, noisy = logits[n_lab:].chunk(2) if use_ul else (logits_l, logits[n_lab:])
            if stage == "finetune":
                terms["pseudo"] = pseudo_label_loss(clean, noisy, args.threshold)
            else:
                detach = not args.no_detach_clean
                terms["instance"] = instance_contrastive_loss(clean, noisy, args.temperature, detach_a=detach)
                if args.use_group_contrastive:
                    terms["group"] = group_contrastive_loss(clean, noisy, args.temperature, detach_a=detach)
        loss = total_loss(
            terms["ce"],
            terms.get("instance"),
            terms.get("group"),
            terms.get("pseudo"),
            gamma=args.gamma,
            gamma2=args.gamma2,
            gamma_finetune=args.gamma_finetune,
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at epoch {epoch}, step {step} "
                f"({', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())}); the last good checkpoint is kept: "
                "lower the learning rate, check the data for outliers, or resume from it"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if args.gd > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.gd)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step_time = time.perf_counter() - t0
        row = {
            "loss": loss.item(),
            **{k: v.item() for k, v in terms.items()},
            "data_time": data_time,
            "step_time": step_time,
        }
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
        if rt.is_main and (step % args.print_freq == 0 or step == steps - 1):
            lr = opt.param_groups[0]["lr"]
            logger.log(
                {"split": "train", "epoch": epoch, "step": step, "stage": stage, "lr": lr, **row},
                step=epoch * steps + step,
                tb_prefix="train",
            )
            if not show:
                echo(
                    f"epoch {epoch} step {step}/{steps} "
                    + " ".join(f"{k} {v:.4f}" for k, v in row.items())
                    + f" lr {lr:.3g}"
                )
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        t0 = time.perf_counter()
    bar.close()
    means = {k: v / max(n, 1) for k, v in sums.items()}
    return {"stage": stage, **means}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def batch_probs(model, batch: dict, cfg: RunConfig, layout: Layout, rt: Runtime, test_flip: bool) -> torch.Tensor:
    """Class probabilities (B, C) of a test batch, pyskl's multi-clip test: softmax per clip view (and
    flipped view), then the mean over the views."""
    kp = batch["keypoint"].to(rt.device)  # (B, S, M, T, V, 2); MotionBERT (B, S, 2, T, 17, 3)
    b = kp.shape[0]
    score = batch["keypoint_score"].to(rt.device).flatten(0, 1) if "keypoint_score" in batch else None
    x = model_input(kp.flatten(0, 1), score, cfg, layout, double=test_flip)  # (B*S*D, ...)
    with rt.autocast():
        logits = model(x).float()
    return logits.softmax(-1).view(b, -1, logits.shape[-1]).mean(1)  # (B, C)


@torch.no_grad()
def evaluate(model, loader: DataLoader, cfg: RunConfig, layout: Layout, rt: Runtime, test_flip: bool) -> dict:
    """Top-1 / top-5 over the loader with multi-clip testing; counts are summed across ranks."""
    model.eval()
    correct1 = correct5 = total = 0.0
    for batch in loader:
        probs = batch_probs(model, batch, cfg, layout, rt, test_flip)
        y = batch["label"].to(rt.device)
        top5 = probs.topk(min(5, probs.shape[1]), dim=1).indices
        correct1 += (top5[:, 0] == y).sum().item()
        correct5 += (top5 == y[:, None]).any(1).sum().item()
        total += len(y)
    correct1, correct5, total = all_reduce_sum([correct1, correct5, total], rt)
    return {"top1": correct1 / max(total, 1), "top5": correct5 / max(total, 1), "clips": int(total)}


def robustness_sweep(model, store, test_idx, cfg, layout, args, rt, logger, epoch) -> list[dict]:
    """Accuracy at every --eval_alphas level, on identical corrupted clips for every model."""
    rows = []
    for alpha in args.eval_alphas:
        loader = make_loader(
            eval_dataset(store, test_idx, cfg, layout, args, alpha),
            args.valbatchsize,
            rt,
            args.seed,
            False,
            args.workers,
        )
        res = evaluate(model, loader, cfg, layout, rt, args.test_flip)
        rows.append({"alpha": alpha, **res})
        logger.log({"split": "robustness", "epoch": epoch, "alpha": alpha, **res})
        echo(
            f"noise alpha {alpha:<6g} top1 {100 * res['top1']:6.2f}  top5 {100 * res['top5']:6.2f}",
            rt.is_main,
        )
    return rows


def eval_dataset(store, idx, cfg: RunConfig, layout: Layout, args, alpha: float) -> SkeletonClips:
    return SkeletonClips(
        store,
        idx,
        pipeline=cfg.pipeline,
        train=False,
        clip_len=cfg.clip_len,
        layout=layout,
        num_clips=args.num_clips,
        input_size=cfg.input_size,
        noise_alpha=alpha,
        seed=args.seed,
        max_persons=cfg.max_persons,
    )


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_state(model, opt, sched, scaler, epoch, best, cfg, args) -> dict:
    """Tensors and plain values only, so the file loads with weights_only=True."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,  # the next epoch to run
        "best": best,
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "config": asdict(cfg),
        "args": checkpoint_args(args),
        "git": git_revision(),
    }


def checkpoint_args(args: argparse.Namespace) -> dict:
    """The parsed flags as plain values (--model_cfg pairs become a dict)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    out["model_cfg"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.model_cfg}
    return out


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def restore(ckpt: dict, model, opt, sched, scaler) -> tuple[int, dict]:
    unwrap(model).load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng_torch"])
    if ckpt["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
    return ckpt["epoch"], ckpt["best"]


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:  # python main.py predict --checkpoint RUN/best.pt --input FILE
        import predict

        return predict.main(argv[1:])
    args = parse_args(argv)
    try:
        result = run(args, argv)
    except (FileNotFoundError, AnnotationError, CheckpointError, FloatingPointError) as e:
        sys.exit(f"error: {e}")
    close_runtime()
    return result


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    # -- runtime
    rt, notes = setup_runtime(args.device, args.gpus, args.amp)
    seed_everything(args.seed, args.deterministic)
    if args.modality is not None:
        notes.append(f"modality {args.modality!r} is accepted for compatibility and not used (see --input_f)")
    skipped = ignored_flags(args, argv)
    if skipped:
        notes.append(f"ignored for --model_type {args.model_type}: {', '.join(skipped)}")

    # -- data
    spec = get_spec(args.dataset)
    synthetic = {"clips_per_class_per_subject": args.synthetic_clips, "seed": args.synthetic_seed}
    fixed_classes = args.dataset not in ("synthetic", "custom")  # others count the labels they hold
    store, ann_path = load_store(args.dataset, args.data_root, args.ann_file, synthetic_options=synthetic,
                                 num_classes=spec.num_classes if fixed_classes else 10**9)  # fmt: skip
    num_classes = spec.num_classes if fixed_classes else int(store.labels.max()) + 1
    label_map = ntu_label_map(store.names, store.labels) if args.dataset == "custom" else None
    if label_map is not None:  # NTU clips keep NTU's label set, whichever of its classes they hold
        num_classes = len(LABEL_MAPS[label_map])
        notes.append(f"the clips are named and labelled as NTU RGB+D: {num_classes} classes, {label_map} names")
    layout = get_layout(store.layout or spec.layout)
    try:
        train_split, test_split = split_names(spec, args.split)
        train_idx, test_idx = store.split_indices(train_split), store.split_indices(test_split)
    except (ValueError, KeyError) as e:
        _usage_error(str(e.args[0]))

    # -- evaluation only
    if args.evaluate:
        return evaluate_only(args, store, test_idx, ann_path, rt, notes)

    cfg = resolve_config(args, store, num_classes, layout, label_map)
    run_dir = Path(args.run_dir) / run_name(args)
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(run_dir, enabled=rt.is_main)
    if rt.is_main:  # the resolved run, readable without loading a checkpoint
        resolved = {"argv": argv, "args": checkpoint_args(args), "config": asdict(cfg), "git": git_revision()}
        (run_dir / "args.json").write_text(json.dumps(resolved, indent=1, default=str))
    for note in notes:
        echo(f"note: {note}", rt.is_main)
    echo(
        f"data: {ann_path} ({len(train_idx)} train / {len(test_idx)} test clips, {num_classes} classes)",
        rt.is_main,
    )

    # -- labelled / unlabelled split, saved with the run and reused on resume
    split_file = run_dir / "split.json"
    train_names = [store.names[i] for i in train_idx]
    if split_file.exists():
        lab_pos, ul_pos = load_split(split_file, train_names)
    else:
        lab_pos, ul_pos = split_labelled(store.labels[train_idx], args.percentage, args.strategy, args.seed)
        if rt.is_main:
            save_split(split_file, lab_pos, ul_pos, train_names)
    contrastive = uses_views(args)
    train_ds = lambda idx, noisy: SkeletonClips(  # noqa: E731
        store, idx, pipeline=cfg.pipeline, train=True, clip_len=cfg.clip_len, layout=layout,
        input_size=cfg.input_size, noise_alpha=args.noise_alpha, noisy_view=noisy, seed=args.seed,
        max_persons=cfg.max_persons,
    )  # fmt: skip
    labelled = make_loader(
        train_ds(train_idx[lab_pos], contrastive and len(ul_pos) == 0),
        args.batch_size,
        rt,
        args.seed,
        True,
        args.workers,
    )
    unlabelled = None
    if len(ul_pos) and contrastive:
        unlabelled = make_loader(
            train_ds(train_idx[ul_pos], True),
            args.batch_size * args.mu,
            rt,
            args.seed + 1,
            True,
            args.workers,
        )
    val_loader = make_loader(
        eval_dataset(store, test_idx, cfg, layout, args, 0.0),
        args.valbatchsize,
        rt,
        args.seed,
        False,
        args.workers,
    )
    echo(f"split: {len(lab_pos)} labelled / {len(ul_pos)} unlabelled training clips", rt.is_main)

    # -- model
    model = build_model(cfg).to(rt.device)
    if args.pretrained or args.tune_from:
        echo(
            load_weights(
                model,
                args.pretrained or args.tune_from,
                backbone_only=bool(args.pretrained),
                trusted=args.trust_checkpoint,
            ),
            rt.is_main,
        )
    if args.channels_last and cfg.pipeline == "pose":
        model = model.to(memory_format=torch.channels_last_3d)
    train_model = model
    if rt.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=cfg.model_name == "motionbert",  # its pretraining pose head is unused
        )  # fmt: skip
    if args.compile:
        train_model = torch.compile(train_model)
    n_params = sum(p.numel() for p in model.parameters())
    echo(
        f"model: {cfg.model_name} {cfg.model_cfg} ({n_params / 1e6:.2f} M parameters) on {rt.device}",
        rt.is_main,
    )

    # -- optimiser, resume
    steps = len(unlabelled) if unlabelled is not None else len(labelled)
    steps = min(steps, args.max_steps) if args.max_steps else steps
    opt, sched = build_optimizer(model, args, cfg, max(steps, 1))
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype is torch.float16)
    start_epoch, best = 0, {"top1": -1.0, "epoch": -1}
    resume = args.resume or (run_dir / "last.pt" if (run_dir / "last.pt").exists() else None)
    if resume:
        ckpt = read_checkpoint(resume, trusted=args.trust_checkpoint)
        # A field added to RunConfig after the checkpoint was written (absent there) does not block a resume.
        if {**asdict(cfg), **ckpt.get("config", {})} != asdict(cfg):
            raise CheckpointError(f"{resume} was trained with another configuration; use another --name")
        start_epoch, best = restore(ckpt, model, opt, sched, scaler)
        echo(f"resumed from {resume} at epoch {start_epoch}", rt.is_main)

    # -- the epoch loop
    buffers = {}  # the rendered input volume, reused by every step
    for epoch in range(start_epoch, args.epochs):
        stats = train_one_epoch(
            train_model, (labelled, unlabelled), opt, sched, scaler, epoch, args, cfg, layout, rt, logger, buffers
        )
        logger.log({"split": "train_epoch", "epoch": epoch, **stats}, step=epoch, tb_prefix="epoch")
        if (epoch + 1) % args.eval_freq == 0 or epoch + 1 == args.epochs:
            res = evaluate(model, val_loader, cfg, layout, rt, test_flip=False)
            logger.log({"split": "val", "epoch": epoch, **res}, step=epoch, tb_prefix="val")
            echo(
                f"epoch {epoch}: {stats['stage']} loss {stats.get('loss', float('nan')):.4f}, "
                f"val top1 {100 * res['top1']:.2f} top5 {100 * res['top5']:.2f}",
                rt.is_main,
            )
            if res["top1"] > best["top1"]:
                best = {"top1": res["top1"], "epoch": epoch}
                if rt.is_main:
                    save_atomic(
                        checkpoint_state(model, opt, sched, scaler, epoch + 1, best, cfg, args),
                        run_dir / "best.pt",
                    )
        if rt.is_main:
            save_atomic(checkpoint_state(model, opt, sched, scaler, epoch + 1, best, cfg, args), run_dir / "last.pt")

    # -- the final robustness evaluation, with the best checkpoint
    if (run_dir / "best.pt").exists():
        model.load_state_dict(read_checkpoint(run_dir / "best.pt")["model"])
    echo(f"robustness of {run_dir / 'best.pt'} (epoch {best['epoch']}):", rt.is_main)
    rows = robustness_sweep(model, store, test_idx, cfg, layout, args, rt, logger, best["epoch"])
    if rt.is_main:
        write_robustness(rows, run_dir, title=run_dir.name)
    logger.close()
    return {"run_dir": str(run_dir), "best": best, "robustness": rows}


def check_fits(store: KeypointStore, cfg: RunConfig, layout: Layout, source: str) -> None:
    """The keypoints must fit the model: its joint layout, and for MotionBERT the dimension it was trained
    on (rendered inputs take 3D clips through datasets/clips.project_3d)."""
    if store.coord_dim != cfg.coord_dim and cfg.pipeline != "pose":
        raise AnnotationError(
            f"{source} holds {store.coord_dim}D keypoints, but this {cfg.model_name} model was trained on "
            f"{cfg.coord_dim}D keypoints ({layout.name}); give it keypoints of that kind"
        )
    if store.num_joints != layout.num_joints:
        raise AnnotationError(
            f"{source} has {store.num_joints} joints per person, but the model was trained on {layout.name} "
            f"with {layout.num_joints}; convert the keypoints to {layout.name} order first"
        )


def evaluate_only(args, store, test_idx, ann_path, rt, notes) -> dict:
    """--evaluate CKPT: rebuild the model from the checkpoint's own configuration and run the sweep."""
    ckpt = read_checkpoint(args.evaluate, trusted=args.trust_checkpoint)
    if "config" not in ckpt:
        raise CheckpointError(f"{args.evaluate} has no run configuration; evaluate checkpoints written by main.py")
    cfg = RunConfig(**ckpt["config"])
    layout = get_layout(cfg.layout)  # the model's, not the data file's: the data must fit it
    check_fits(store, cfg, layout, Path(ann_path).name)
    model = build_model(cfg).to(rt.device)
    model.load_state_dict(ckpt["model"])
    run_dir = Path(args.run_dir) / args.name if args.name else Path(args.evaluate).resolve().parent
    logger = RunLogger(run_dir, enabled=rt.is_main)
    for note in notes:
        echo(f"note: {note}", rt.is_main)
    rows = robustness_sweep(model, store, test_idx, cfg, layout, args, rt, logger, ckpt["best"]["epoch"])
    if rt.is_main:
        write_robustness(rows, run_dir, title=run_dir.name)
    logger.close()
    return {"run_dir": str(run_dir), "robustness": rows}


if __name__ == "__main__":
    main()
