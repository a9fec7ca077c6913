"""Backbones, created by name: `create_model('poseconv3d' | 'motionbert' | 'tsm', **upstream_kwargs)`."""

from models import motionbert, poseconv3d, tsm  # noqa: F401  (registers the models)
from models.registry import create_model, list_models, model_kwargs, register_model

__all__ = ["create_model", "list_models", "model_kwargs", "register_model"]
