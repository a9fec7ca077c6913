"""Checkpoints of a run: what they hold, how a run resumes from one, and how a trained model is rebuilt
from its own configuration (`--evaluate`, `predict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from datasets.pipeline.clips import JOINTS
from datasets.store.annotations import AnnotationError, KeypointStore
from datasets.store.layouts import Layout
from engine.config import RunConfig, load_run_config, saved_config
from models import create_model
from utils.checkpoint import CheckpointError, load_full, read_checkpoint
from utils.runtime import git_revision


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def build_model(cfg: RunConfig) -> torch.nn.Module:
    return create_model(cfg.model_name, **cfg.model_cfg)


@dataclass
class Position:
    """Where a run is: the one object that changes as it trains, saved in every checkpoint and restored as a
    whole. epoch: the epoch to run (next); step, sums: the step inside it and that epoch's running sums of
    the logged values (a mid-epoch checkpoint: a stop signal or --ckpt_every; 0 and {} at an epoch's start);
    best: the best validation top-1 so far and its epoch."""

    epoch: int = 0
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    best: dict = field(default_factory=lambda: {"top1": -1.0, "epoch": -1})

    def state(self) -> dict:
        """The checkpoint's entries: epoch, best, and 'position' {'step', 'sums'} inside the epoch (mid-epoch only)."""
        out = {"epoch": self.epoch, "best": dict(self.best)}
        if self.step:
            out["position"] = {"step": self.step, "sums": dict(self.sums)}
        return out

    @classmethod
    def of(cls, ckpt: dict) -> Position:
        inside = ckpt.get("position") or {"step": 0, "sums": {}}
        return cls(int(ckpt["epoch"]), int(inside["step"]), dict(inside["sums"]), dict(ckpt["best"]))


def checkpoint_state(model, opt, scaler, pos: Position, cfg: RunConfig, args: dict, seen: tuple[str, ...] = ()) -> dict:
    """Tensors and plain values only, so the file loads with weights_only=True: the weights, optimiser,
    scaler and RNG state, the run's position (`Position.state`), configuration and flags (`args`, plain values),
    and the corruption families its training views were drawn from (`seen`: what --evaluate calls seen)."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "config": asdict(cfg),
        "args": args,
        "git": git_revision(),
        "seen_families": list(seen),
        **pos.state(),
    }


def config_differences(saved: dict, cfg: RunConfig, fields: tuple[str, ...] | None = None) -> list[str]:
    """'field: checkpoint X, now Y' for each of `fields` (default: all) where a checkpoint's saved
    configuration differs from `cfg`. A field absent from the checkpoint (added to RunConfig since) does
    not count; old names are read as today's (engine/config.saved_config)."""
    saved, now, out = saved_config(saved), asdict(cfg), []
    for k in fields or tuple(now):
        if k not in saved or saved[k] == now[k]:
            continue
        if isinstance(saved[k], dict) and isinstance(now[k], dict):  # model_cfg: the keys that differ
            keys = [j for j in {**saved[k], **now[k]} if saved[k].get(j) != now[k].get(j)]
            out += [f"{k} {j}: checkpoint {saved[k].get(j)!r}, now {now[k].get(j)!r}" for j in keys]
        else:
            out.append(f"{k}: checkpoint {saved[k]!r}, now {now[k]!r}")
    return out


def restore(ckpt: dict, model, opt, scaler, cfg: RunConfig, source: str | Path) -> Position:
    """Resume from `ckpt` (read from `source`): weights, optimiser, scaler and RNG state. Returns the run's
    position (the epoch to run next, the step inside it, the best so far). A checkpoint of another
    configuration is refused."""
    if "model" not in ckpt or "optimizer" not in ckpt or "epoch" not in ckpt:
        raise CheckpointError(f"{source} is not a training checkpoint of main.py (no optimiser state); resume from "
                              "a last.pt, or load weights with --pretrained / --tune_from")  # fmt: skip
    diff = config_differences(ckpt.get("config", {}), cfg)
    if diff:
        raise CheckpointError(f"{source} was trained with another configuration ({'; '.join(diff[:3])}); "
                              "use another --name, or the flags and data of that run")  # fmt: skip
    unwrap(model).load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng_torch"])
    if ckpt["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
    return Position.of(ckpt)


def resume_position(
    given: str | Path | None, run_dir: Path, trusted: bool, model, opt, scaler, cfg: RunConfig
) -> tuple[Position, Path | None]:
    """(the run's position, the checkpoint it resumes from or None): `given` (--resume), else the run
    directory's last.pt, else the start. Restores the weights, optimiser, scaler and RNG state."""
    resume = given or (run_dir / "last.pt" if (run_dir / "last.pt").exists() else None)
    if not resume:
        return Position(), None
    hint = None if given else "delete it to start the run over, or pass --resume with another checkpoint"
    ckpt = read_checkpoint(resume, trusted=trusted, hint=hint)
    return restore(ckpt, model, opt, scaler, cfg, resume), Path(resume)


def load_run_model(
    path: str | Path, device: torch.device, trusted: bool = False
) -> tuple[torch.nn.Module, RunConfig, dict]:
    """Rebuild the model of a main.py checkpoint from its own configuration.

    Returns (model in eval mode on `device`, its RunConfig, the checkpoint dict).
    Raises CheckpointError (one line) for missing, corrupt or foreign files.
    """
    ckpt = read_checkpoint(path, trusted=trusted)
    if "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path} has no run configuration; use a checkpoint written by main.py")
    try:
        cfg = load_run_config(ckpt["config"])
        model = build_model(cfg)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its configuration does not build a model here ({e})") from e
    load_full(model, ckpt["model"])  # strict, with missing/unexpected keys named in one line
    return model.to(device).eval(), cfg, ckpt


# What a checkpoint's model must share with the run that loads its weights (its input): the joint layout
# (a declared one by its definition too), the coordinates' dimension, the input format, the data path that
# makes it and the coordinate stream.
INPUT_FIELDS = ("layout", "layout_def", "coord_dim", "input_format", "reads", "stream", "skeleton_depth", "visibility")


def check_classes(cfg: RunConfig, num_classes: int, source: str, counted: bool) -> None:
    """A trained model scores data of its own classes: the dataset's class count must be the model's
    (`counted`: the count comes from the labels a file holds, so a subset of the classes also fits).
    Raises CheckpointError (one line)."""
    if num_classes > cfg.num_classes or (num_classes != cfg.num_classes and not counted):
        raise CheckpointError(
            f"{source} has {num_classes} classes, but the checkpoint's model predicts {cfg.num_classes}; score it "
            "on the dataset it was trained on, or train a model for these classes"
        )


def check_layout(declared: Layout | str | None, cfg: RunConfig, source: str) -> None:
    """The joint layout data declares must be the model's: by name, and a declaration by its definition too
    (two layouts of one name declared differently order or connect the joints differently), as --pretrained
    compares them (INPUT_FIELDS). A bare name stands for the model's layout when the names agree; None
    (nothing declared) passes, and the joint count decides (`check_fits`). Raises AnnotationError (one line)."""
    if declared is None:
        return
    name = declared if isinstance(declared, str) else declared.name
    if name != cfg.layout:
        raise AnnotationError(
            f"{source} is in the {name} joint layout, but the model was trained on {cfg.layout}; convert the "
            f"keypoints to {cfg.layout} first"
        )
    if isinstance(declared, Layout):
        ours, theirs = cfg.joint_layout.to_dict(), declared.to_dict()
        differ = [k for k in ours if ours[k] != theirs[k]]
        if differ:
            raise AnnotationError(
                f"{source} declares joint layout {name!r} differently from the model's ({', '.join(differ)} differ); "
                f"convert the keypoints to the model's {name}, or declare it as the checkpoint's run did"
            )


def check_fits(store: KeypointStore, cfg: RunConfig, source: str) -> None:
    """The keypoints must fit the model: its joint layout, and for a model of joint coordinates the
    dimension it was trained on (rendered inputs take 3D clips through datasets/pipeline/clips.project_3d)."""
    layout = cfg.joint_layout
    if store.coord_dim != cfg.coord_dim and cfg.reads == JOINTS:
        raise AnnotationError(
            f"{source} holds {store.coord_dim}D keypoints, but this {cfg.model_name} model was trained on "
            f"{cfg.coord_dim}D keypoints ({layout.name}); give it keypoints of that kind"
        )
    if store.num_joints != layout.num_joints:
        raise AnnotationError(
            f"{source} has {store.num_joints} joints per person, but the model was trained on {layout.name} "
            f"with {layout.num_joints}; convert the keypoints to {layout.name} order first"
        )
