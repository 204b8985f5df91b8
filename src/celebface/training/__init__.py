"""Training: identity classifiers on face crops (InceptionV3) or on face embeddings (MLP,
logistic regression, linear SVM, k-NN, nearest centroid), saved as folders with
``model.json`` and loaded back with :func:`load_model`."""

from celebface.errors import InputError
from celebface.recognition.spec import register_builder
from celebface.training.base import Prediction, TrainedModel
from celebface.training.registry import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    load_model,
    register_model_kind,
    register_trainer,
    train_model,
)


def _embedder_from_folder(path: str, device: str = "auto"):
    """A trained model folder's embedding layer, as an embedder."""
    model = load_model(path, device=device)
    if not hasattr(model, "as_embedder"):
        raise InputError(f"{path}: this model kind has no embedding layer")
    return model.as_embedder()


register_builder("model-folder", _embedder_from_folder)

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "Prediction",
    "TrainedModel",
    "load_model",
    "register_model_kind",
    "register_trainer",
    "train_model",
]
