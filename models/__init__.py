from models.registry import create_model, list_models, model_kwargs, register_model

__all__ = ["create_model", "list_models", "model_kwargs", "register_model"]
