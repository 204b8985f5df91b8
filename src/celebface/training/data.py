"""Training data as arrays: face images (a folder of crops or photos, or a pack) or embeddings,
each row with its label and split. Both are views of :func:`celebface.data.open_dataset`; the
split is the recorded one, else the stratified split of a seed
(:meth:`celebface.data.FaceDataset.with_splits`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data import DatasetError, FaceDataset, kind_of, open_dataset
from celebface.data.splits import stratified_splits
from celebface.io import read_image

log = logging.getLogger(__name__)


def stratified_split(
    labels: Sequence[int] | np.ndarray, val_fraction: float = 0.15, seed: int = 0
) -> np.ndarray:
    """``"train"``/``"val"`` per sample (:func:`celebface.data.splits.stratified_splits`,
    the splitter ``pack`` uses too)."""

    return np.asarray(stratified_splits(labels, val_fraction, 0.0, seed), dtype=object)


def limit_rows(rows: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """``rows`` (sorted) keeping at most ``limit`` per label, drawn at random by ``seed``
    (all of them when ``limit`` is None or 0)."""
    if not limit:
        return rows
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(rows[labels[rows] == c])[:limit]
                                   for c in np.unique(labels[rows])]))


@dataclass
class _Rows:
    """Labels, splits and source paths of a dataset's rows."""

    root: Path
    label_names: list[str]
    labels: np.ndarray
    splits: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.splits == split)


def _rows(dataset: FaceDataset) -> dict[str, Any]:
    return {"root": dataset.root, "label_names": list(dataset.names), "labels": dataset.labels,
            "splits": np.asarray([it.split for it in dataset.items], dtype=object),
            "paths": [it.path for it in dataset.items]}


@dataclass
class ImageData(_Rows):
    """Face images with labels and splits. ``image(i)`` decodes sample ``i`` (RGB uint8);
    for a folder it may raise :class:`celebface.io.ImageReadError`."""

    kind: str = "photos"  # the dataset's kind (:func:`celebface.data.kind_of`)
    _images: Any = field(default=None, repr=False)  # packed: (N, S, S, 3) memmap
    fit: str = "stretch"  # how a packed folder made its images square (its pack.json)

    def image(self, i: int) -> np.ndarray:
        if self._images is not None:
            return np.asarray(self._images[i])
        return read_image(self.paths[i]).rgb


@dataclass
class EmbeddingData(_Rows):
    """Embeddings with labels and splits, and the embedder settings that made them."""

    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    embedder: dict[str, Any] = field(default_factory=dict)


def load_image_data(path: str | Path, *, seed: int = 0, val_fraction: float = 0.15) -> ImageData:
    """A folder-per-identity or a packed folder, with its split."""
    path = Path(path)
    kind = kind_of(path)
    if kind == "embeddings":
        raise DatasetError(f"{path}: holds embeddings; this model trains on face images "
                           "(give a folder of crops or a packed folder)")
    dataset = open_dataset(path).with_splits(seed, val_fraction)
    return ImageData(**_rows(dataset), kind=kind, _images=dataset.images,
                     fit=str(dataset.meta.get("fit", "stretch")))


def load_embedding_data(
    path: str | Path, *, seed: int = 0, val_fraction: float = 0.15
) -> EmbeddingData:
    """An embeddings folder from ``celebface embed``, with its split: the one it records
    (``splits.txt``, else its or its source dataset's ``splits.csv``), else stratified."""
    if kind_of(path) != "embeddings":
        raise DatasetError(f"{path}: not an embeddings folder (give the output of "
                           "`celebface embed`)")
    dataset = open_dataset(path).with_splits(seed, val_fraction)
    return EmbeddingData(**_rows(dataset), embeddings=dataset.vectors_of(dataset.items),
                         embedder=dict(dataset.meta))
