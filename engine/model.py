"""The model a run trains: built from its run configuration, with earlier weights when asked (--pretrained:
the backbone, --tune_from: the whole model), and what trains it (the same module, or its DDP / compiled
wrapper)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoint import INPUT_FIELDS, build_model, config_differences
from engine.config import RunConfig, TrainConfig
from models import model_spec
from utils.checkpoint import load_weights, read_checkpoint
from utils.errors import UserError
from utils.logger import echo
from utils.runtime import Runtime


def build_training_model(
    cfg: RunConfig,
    train: TrainConfig,
    rt: Runtime,
    weights: str | Path | None = None,
    backbone_only: bool = False,
    trusted: bool = False,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the model on rt.device, what trains it: the same module, or its DDP / compiled wrapper).
    weights: a checkpoint to start from (main.py's, pyskl's or MotionBERT's), its backbone alone when
    `backbone_only` (--pretrained) or the whole model (--tune_from); a main.py checkpoint of another input
    is refused (UserError, one line). trusted: the file may hold more than tensors (--trust_checkpoint)."""
    spec = model_spec(cfg.model_name)
    try:
        model = build_model(cfg).to(rt.device)
    except (ValueError, TypeError) as e:  # a --model_cfg value the backbone rejects
        raise UserError(f"{cfg.model_name} cannot be built with {cfg.model_cfg}: {e}; change --model_cfg") from e
    if weights:
        ckpt = read_checkpoint(weights, trusted=trusted)
        diff = config_differences(ckpt["config"], cfg, INPUT_FIELDS) if isinstance(ckpt.get("config"), dict) else []
        if diff:  # a main.py checkpoint of another input: its weights would not mean the same here
            flag = "--pretrained" if backbone_only else "--tune_from"
            raise UserError(f"{flag} {weights} was trained on another input ({'; '.join(diff)}); give the flags "
                            "of that run (--input_f, data of its layout) or another checkpoint")  # fmt: skip
        echo(load_weights(model, weights, backbone_only=backbone_only, ckpt=ckpt), rt.is_main)
    if train.channels_last and spec.reads == "volume":
        model = model.to(memory_format=torch.channels_last_3d)
    train_model = model
    if rt.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=spec.unused_parameters,
        )  # fmt: skip
    if train.compile:
        train_model = torch.compile(train_model)
    n_params = sum(p.numel() for p in model.parameters())
    echo(f"model: {cfg.model_name} {cfg.model_cfg} ({n_params / 1e6:.2f} M parameters) on {rt.device}", rt.is_main)
    return model, train_model
