"""Optimisers and learning-rate schedules.

Which family a backbone trains with is part of its registry contract (`ModelSpec.optimizer`):
- 'sgd': SGD (Nesterov momentum unless `nesterov` is off) over every trainable parameter, with TCL's
  cosine or step schedule per step;
- 'adamw': AdamW over the model's `param_groups()`, a backbone and a head learning rate, x lr_decay
  after every epoch (the recipe of MotionBERT's fine-tuning).
The schedule is a pure function of the position in the run (`lr_factor`); `set_lr` applies it before
every step, so an epoch of any length (a short supervised warm-up epoch, a resumed one) gets the right
learning rate.
"""

from __future__ import annotations

import math

import torch

from engine.config import OptimConfig


def build_optimizer(model: torch.nn.Module, family: str, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser of `model`; each group's starting learning rate is kept as 'initial_lr'."""
    if family == "adamw":
        groups = {k: [p for p in ps if p.requires_grad] for k, ps in model.param_groups().items()}
        opt = torch.optim.AdamW(
            [{"params": groups["backbone"], "lr": cfg.lr_backbone}, {"params": groups["head"], "lr": cfg.lr_head}],
            weight_decay=cfg.weight_decay_adamw,
        )
    elif family == "sgd":
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    else:
        raise ValueError(f"unknown optimizer family {family!r}; choose sgd or adamw")
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def lr_factor(family: str, cfg: OptimConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate of step `step` (of `steps`) of epoch `epoch`, as a multiple of the initial one.

    sgd 'cos': 0.5 (1 + cos(pi t / T)) with t = epoch * steps + step and T = epochs * steps;
    sgd 'step': 0.1 ** (number of lr_steps epochs reached); adamw: lr_decay ** epoch. With warmup_epochs W,
    each is multiplied by min(1, (t + 1) / (W * steps)): a linear rise over the first W epochs' steps.
    """
    warm = min(1.0, (epoch * steps + step + 1) / (cfg.warmup_epochs * steps)) if cfg.warmup_epochs > 0 else 1.0
    if family == "adamw":
        return warm * cfg.lr_decay**epoch
    if cfg.lr_type == "cos":
        return warm * 0.5 * (1 + math.cos(math.pi * (epoch * steps + step) / (cfg.epochs * steps)))
    if cfg.lr_type == "step":
        return warm * 0.1 ** sum(epoch >= s for s in cfg.lr_steps)
    raise ValueError(f"unknown lr_type {cfg.lr_type!r}; choose cos or step")


def set_lr(opt: torch.optim.Optimizer, factor: float) -> float:
    """Set every group to factor x its initial learning rate; returns the first group's."""
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return opt.param_groups[0]["lr"]
