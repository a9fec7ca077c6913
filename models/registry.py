"""A tiny model registry: `create_model(name, **kwargs)` over the backbones registered by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator registering a model class or factory under `name`."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_kwargs(name: str) -> list[str]:
    """The constructor arguments that `create_model(name, ...)` accepts."""
    params = inspect.signature(_get(name)).parameters
    return [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as `name` with upstream-named keyword arguments.

    Unknown names and unknown keyword arguments fail with the valid choices listed.
    """
    fn = _get(name)
    unknown = sorted(set(kwargs) - set(model_kwargs(name)))
    if unknown:
        raise TypeError(f"{name} got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(model_kwargs(name))}")
    return fn(**kwargs)
