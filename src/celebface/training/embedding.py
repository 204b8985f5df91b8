"""Models that classify face embeddings: they keep the embedder's settings and apply it
themselves, so ``predict(images)`` works on face crops; ``predict_embeddings`` skips it."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data import kind_of
from celebface.recognition import EmbedConfig, embed_dataset
from celebface.recognition.spec import EmbedderSpec
from celebface.training.base import TrainedModel
from celebface.training.data import EmbeddingData, load_embedding_data

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER: dict[str, Any] = EmbedderSpec().to_dict()


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    z = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def embedder_settings(meta: dict[str, Any], spec: EmbedderSpec) -> dict[str, Any]:
    """The spec stored in a model: from the embeddings' metadata, else the settings' own."""
    return (EmbedderSpec.of_embeddings(meta) if meta else spec).to_dict()


def prepare_embeddings(
    data: str | Path,
    out: str | Path,
    *,
    spec: EmbedderSpec | None = None,
    device: str = "auto",
    seed: int = 0,
    val_fraction: float = 0.15,
) -> EmbeddingData:
    """Embeddings with splits for ``data``: read as they are from an embeddings folder, or
    computed with ``spec``'s embedder (default dlib) and cached in ``out/embeddings`` from a
    folder of crops or a packed folder."""
    data = Path(data)
    if kind_of(data) != "embeddings":

        spec = spec or EmbedderSpec()
        emb_dir = Path(out) / "embeddings"
        log.info("embedding %s with %s into %s", data, spec.describe(), emb_dir)
        embed_dataset(data, emb_dir, EmbedConfig.of_spec(spec, device=device))
        data = emb_dir
    return load_embedding_data(data, seed=seed, val_fraction=val_fraction)


class EmbeddingModel(TrainedModel):
    """Base of classifiers on embeddings. ``meta["embedder"]`` holds the embedder settings."""

    def __init__(self, label_names: Sequence[str], meta: dict[str, Any] | None = None,
                 device: str = "auto"):
        super().__init__(label_names, meta)
        self.device = device
        self._embedder: Any = None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = EmbedderSpec.from_dict(
                self.meta.get("embedder", DEFAULT_EMBEDDER)).build(self.device)
        return self._embedder

    @abstractmethod
    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, num_classes)`` probabilities for ``(N, dim)`` embeddings."""

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
              ) -> np.ndarray:
        """Vectors of the faces, located as every stage does (the ``auto`` rule of the
        default face finder, :mod:`celebface.detection.finder`, on the model's device)."""
        from celebface.detection import get_finder

        located = get_finder(device=str(self.device)).locate(images, faces, "auto")
        return self.embedder.embed(images, located)

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self.predict_embeddings(self.embed(images, faces))
