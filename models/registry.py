"""A tiny model registry: `create_model(name, **kwargs)` over the backbones registered by name.

Every backbone meets the engine through one contract, declared where it is registered
(`register_model(name, reads=..., clip_len=..., ...)`) and checked there:
- core keywords: `num_classes`, `dropout`, and `in_channels` (models that read rendered volumes) or
  `num_joints` (models that read joint coordinates);
- `model.param_groups()` -> {'backbone': [...], 'head': [...]}, the parameters of the optimiser groups;
- a `ModelSpec`: what input it reads, its default clip length, the optimiser it trains with, and the
  constructor arguments that fix or bound the clip length.
The engine reads the spec and never a backbone's name.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

# What a model reads (READS), and how a model of joint coordinates wants its clips prepared (JOINTS_PREPS:
# MotionBERT's normalisation and resampling, or pyskl's GCN pipeline): the data path's own vocabulary.
from datasets.pipeline.clips import JOINTS_PREPS, READS

OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class ModelSpec:
    """What the engine knows of a backbone.

    name: registry name. factory: class or function building the model from keyword arguments.
    reads: 'volume' (rendered heatmap volumes (N, C, T, H, W), sized by `in_channels`) or 'joints'
        (joint coordinates (N, M, T, V, 3), sized by `num_joints`).
    clip_len: default frames per clip.
    clip_len_arg: constructor argument that fixes the frames per clip (TSM's `num_segments`), or None.
    max_clip_len_arg: constructor argument that bounds the frames per clip (MotionBERT's `maxlen`), or None.
    optimizer: 'sgd' (one group, SGD with a per-step schedule) or 'adamw' (backbone and head groups with
        their own learning rates, decayed per epoch).
    unused_parameters: some parameters get no gradient in training (DDP must look for them).
    joints_prep: for reads 'joints', how the clips are prepared: 'motionbert' (camera normalisation or
        centring, resampling to clip_len) or 'gcn' (pyskl's PreNormalize, GenSkeFeat of the run's stream per
        clip, UniformSample; several test clips per video). The constructor of a 'gcn' model takes `layout`.
    """

    name: str
    factory: Callable[..., nn.Module]
    reads: str
    clip_len: int
    clip_len_arg: str | None = None
    max_clip_len_arg: str | None = None
    optimizer: str = "sgd"
    unused_parameters: bool = False
    joints_prep: str = "motionbert"

    @property
    def size_arg(self) -> str:
        """The core keyword that sizes the input: `in_channels` or `num_joints`."""
        return "in_channels" if self.reads == "volume" else "num_joints"

    def kwargs(self) -> list[str]:
        """The constructor arguments that `create_model(name, ...)` accepts."""
        params = inspect.signature(self.factory).parameters
        return [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]

    def default(self, arg: str):
        """The constructor's default value of `arg`."""
        return inspect.signature(self.factory).parameters[arg].default


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    reads: str,
    clip_len: int,
    clip_len_arg: str | None = None,
    max_clip_len_arg: str | None = None,
    optimizer: str = "sgd",
    unused_parameters: bool = False,
    joints_prep: str = "motionbert",
) -> Callable:
    """Decorator registering a model class or factory under `name`, with its contract (see ModelSpec)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        if reads not in READS or optimizer not in OPTIMIZERS or joints_prep not in JOINTS_PREPS:
            raise ValueError(f"model {name!r}: reads must be one of {READS}, optimizer one of {OPTIMIZERS} and "
                             f"joints_prep one of {JOINTS_PREPS}")  # fmt: skip
        spec = ModelSpec(name, fn, reads, clip_len, clip_len_arg, max_clip_len_arg, optimizer, unused_parameters,
                         joints_prep)  # fmt: skip
        missing = {"num_classes", "dropout", spec.size_arg} - set(spec.kwargs())
        missing |= {"layout"} - set(spec.kwargs()) if reads == "joints" and joints_prep == "gcn" else set()
        missing |= {a for a in (clip_len_arg, max_clip_len_arg) if a is not None} - set(spec.kwargs())
        if missing:
            raise TypeError(f"model {name!r} lacks the core keyword(s) {', '.join(sorted(missing))}")
        _MODELS[name] = spec
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_spec(name: str) -> ModelSpec:
    """The contract of the model registered as `name`; unknown names fail with the registered ones."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name]


def model_kwargs(name: str) -> list[str]:
    """The constructor arguments that `create_model(name, ...)` accepts."""
    return model_spec(name).kwargs()


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as `name` with upstream-named keyword arguments.

    Unknown names and unknown keyword arguments fail with the valid choices listed.
    """
    spec = model_spec(name)
    unknown = sorted(set(kwargs) - set(spec.kwargs()))
    if unknown:
        raise TypeError(f"{name} got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(spec.kwargs())}")
    return spec.factory(**kwargs)


def check_kwargs(name: str, **kwargs) -> None:
    """Build the model registered as `name` with `kwargs` on PyTorch's meta device (shapes only: no memory, in
    milliseconds) and raise ValueError, one line, when its constructor rejects them (whatever it raises) or they
    leave a layer without weights (a width of 0, which fails only in the first forward pass). A constructor
    that cannot run on the meta device (it reads a tensor's values) is tried again on the CPU."""
    try:
        with warnings.catch_warnings():  # a probe: its warnings (zero-element tensors) would be the run's
            warnings.simplefilter("ignore")
            try:
                with torch.device("meta"):
                    model = create_model(name, **kwargs)
            except Exception:  # a meta-device limitation, or the constructor's own refusal
                model = create_model(name, **kwargs)
    except Exception as e:  # whatever the constructor raises, it is about these values
        message = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{name} cannot be built: {message}") from e
    empty = [(k, tuple(p.shape)) for k, p in model.named_parameters() if p.numel() == 0]
    if empty:
        raise ValueError(f"{name} would have a layer without weights ({empty[0][0]} of shape {empty[0][1]})")
