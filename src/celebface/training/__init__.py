"""Training: identity classifiers on face crops (InceptionV3) or on face embeddings (MLP,
logistic regression, linear SVM, k-NN, nearest centroid), saved as folders with
``model.json`` and loaded back with :func:`load_model`."""

from celebface.training.base import Prediction, TrainedModel
from celebface.training.registry import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    load_model,
    register_model_kind,
    register_trainer,
    train_model,
)

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
