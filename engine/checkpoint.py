"""Checkpoints of a run: what they hold, how a run resumes from one, and how a trained model is rebuilt
from its own configuration (`--evaluate`, `predict`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from datasets.annotations import AnnotationError, KeypointStore
from datasets.clips import JOINTS_PIPELINE
from datasets.layouts import Layout
from engine.config import RunConfig
from models import create_model
from utils.checkpoint import CheckpointError, load_full, read_checkpoint
from utils.runtime import git_revision


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def build_model(cfg: RunConfig) -> torch.nn.Module:
    return create_model(cfg.model_name, **cfg.model_cfg)


def checkpoint_state(model, opt, scaler, epoch: int, best: dict, cfg: RunConfig, args: dict) -> dict:
    """Tensors and plain values only, so the file loads with weights_only=True. `epoch` is the next epoch
    to run; `args` the command line's flags as plain values."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "best": best,
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "config": asdict(cfg),
        "args": args,
        "git": git_revision(),
    }


def restore(ckpt: dict, model, opt, scaler, cfg: RunConfig, source: str | Path) -> tuple[int, dict]:
    """Resume from `ckpt` (read from `source`): weights, optimiser, scaler and RNG state.
    Returns (next epoch, best so far). A checkpoint of another configuration is refused."""
    # A field added to RunConfig after the checkpoint was written (absent there) does not block a resume.
    if {**asdict(cfg), **ckpt.get("config", {})} != asdict(cfg):
        raise CheckpointError(f"{source} was trained with another configuration; use another --name")
    unwrap(model).load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng_torch"])
    if ckpt["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
    return ckpt["epoch"], ckpt["best"]


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
        cfg = RunConfig(**ckpt["config"])
        model = build_model(cfg)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its configuration does not build a model here ({e})") from e
    load_full(model, ckpt["model"])  # strict, with missing/unexpected keys named in one line
    return model.to(device).eval(), cfg, ckpt


def check_fits(store: KeypointStore, cfg: RunConfig, layout: Layout, source: str) -> None:
    """The keypoints must fit the model: its joint layout, and for a model of joint coordinates the
    dimension it was trained on (rendered inputs take 3D clips through datasets/clips.project_3d)."""
    if store.coord_dim != cfg.coord_dim and cfg.pipeline == JOINTS_PIPELINE:
        raise AnnotationError(
            f"{source} holds {store.coord_dim}D keypoints, but this {cfg.model_name} model was trained on "
            f"{cfg.coord_dim}D keypoints ({layout.name}); give it keypoints of that kind"
        )
    if store.num_joints != layout.num_joints:
        raise AnnotationError(
            f"{source} has {store.num_joints} joints per person, but the model was trained on {layout.name} "
            f"with {layout.num_joints}; convert the keypoints to {layout.name} order first"
        )
