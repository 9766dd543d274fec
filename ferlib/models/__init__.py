"""The model zoo: every model is built through :func:`create_model`."""

from ferlib.models.registry import create_model, list_models, model_entry, register_model

__all__ = ["create_model", "list_models", "model_entry", "register_model"]
