"""Backbones, created by name: `create_model('poseconv3d' | 'motionbert' | 'tsm' | 'stgcn' | 'stgcnpp' | 'ctrgcn' |
'aagcn', **upstream_kwargs)`;
`model_spec(name)` is the contract the engine reads (models/registry.py)."""

from models import aagcn, ctrgcn, motionbert, poseconv3d, stgcn, tsm  # noqa: F401  (registers the models)
from models.registry import (
    ModelSpec,
    check_kwargs,
    create_model,
    list_models,
    model_kwargs,
    model_spec,
    register_model,
)

__all__ = ["ModelSpec", "check_kwargs", "create_model", "model_spec", "list_models", "model_kwargs", "register_model"]
