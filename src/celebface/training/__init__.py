"""Training: identity classifiers on face crops (InceptionV3) or on face embeddings (MLP,
logistic regression, linear SVM, k-NN, nearest centroid), saved as folders with
``model.json`` and loaded back with :func:`load_model`."""

from typing import Any

from celebface.errors import InputError
from celebface.training.base import Prediction, TrainedModel
from celebface.training.registry import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    load_model,
    register_model_kind,
    register_trainer,
    train_model,
)


def folder_embedder(path: str, device: str = "auto") -> Any:
    """A trained model folder's embedding layer, as an embedder (the ``model-folder`` kind
    the package root registers in :mod:`celebface.plugins`)."""
    model = load_model(path, device=device)
    if not hasattr(model, "as_embedder"):
        raise InputError(f"{path}: this model kind has no embedding layer")
    return model.as_embedder()


__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "Prediction",
    "TrainedModel",
    "folder_embedder",
    "load_model",
    "register_model_kind",
    "register_trainer",
    "train_model",
]
