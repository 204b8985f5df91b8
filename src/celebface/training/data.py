"""Training data: a folder-per-identity of face crops, a packed folder or an embeddings folder,
with its train/val split (``splits.csv`` when present, else stratified with a fixed seed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.io import list_dataset, read_image, read_splits

log = logging.getLogger(__name__)

EMBEDDINGS_FILE = "face_embeddings.npy"
PACKED_FILE = "all_images.npy"


def data_kind(path: str | Path) -> str:
    """``embeddings`` (from ``celebface embed``), ``packed`` (``celebface pack``) or ``folder``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder")
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: not a folder")
    from celebface.data.stage import folder_kind

    kind = folder_kind(path)
    return {"embeddings": "embeddings", "pack": "packed"}.get(kind, "folder")


def stratified_split(
    labels: Sequence[int] | np.ndarray, val_fraction: float = 0.15, seed: int = 0
) -> np.ndarray:
    """``"train"``/``"val"`` per sample (:func:`celebface.data.splits.stratified_splits`,
    the splitter ``pack`` uses too)."""
    from celebface.data.splits import stratified_splits

    return np.asarray(stratified_splits(labels, val_fraction, 0.0, seed), dtype=object)


def _splits_from_csv(
    csv_path: Path, keys: Sequence[tuple[str, str]], labels: np.ndarray, seed: int,
    val_fraction: float,
) -> np.ndarray:
    table = read_splits(csv_path)
    splits = np.array([table.get(k, "") for k in keys], dtype=object)
    missing = splits == ""
    if missing.all():
        log.warning("%s: matches none of the data, using a stratified split", csv_path)
        return stratified_split(labels, val_fraction, seed)
    if missing.any():
        log.warning("%s: %d of %d samples not listed, put in train", csv_path,
                    int(missing.sum()), len(keys))
        splits[missing] = "train"
    return splits


def _fill_splits(given: Sequence[str | None] | None, labels: np.ndarray, seed: int,
                 val_fraction: float) -> np.ndarray:
    """Splits as given; a stratified split when none is known; rows without one go to train."""
    if given is None or not any(given):
        return stratified_split(labels, val_fraction, seed)
    splits = np.array([s or "" for s in given], dtype=object)
    if (splits == "").any():
        log.warning("%d of %d samples have no split, put in train", int((splits == "").sum()),
                    len(splits))
        splits[splits == ""] = "train"
    return splits


@dataclass
class ImageData:
    """Face images with labels and splits. ``image(i)`` decodes sample ``i`` (RGB uint8);
    for a folder it may raise :class:`celebface.io.ImageReadError`."""

    root: Path
    kind: str
    label_names: list[str]
    labels: np.ndarray
    splits: np.ndarray
    paths: list[str]
    _images: Any = field(default=None, repr=False)  # packed: (N, S, S, 3) memmap
    fit: str = "stretch"  # how a packed folder made its images square (its pack.json)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        if self._images is not None:
            return np.asarray(self._images[i])
        return read_image(self.paths[i]).rgb

    def indices(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.splits == split)


@dataclass
class EmbeddingData:
    """Embeddings with labels and splits, and the embedder settings that made them."""

    root: Path
    label_names: list[str]
    labels: np.ndarray
    splits: np.ndarray
    paths: list[str]
    embeddings: np.ndarray
    embedder: dict[str, Any]

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.splits == split)


def load_image_data(path: str | Path, *, seed: int = 0, val_fraction: float = 0.15) -> ImageData:
    """A folder-per-identity or a packed folder, with its split."""
    path = Path(path)
    kind = data_kind(path)
    if kind == "embeddings":
        raise InputError(f"{path}: holds embeddings; this model trains on face images "
                         "(give a folder of crops or a packed folder)")
    if kind == "packed":
        from celebface.packing import load_packed

        packed = load_packed(path)
        names = list(packed.label_names)
        labels = np.asarray(packed.labels, dtype=np.int64)
        paths = [str(p) for p in packed.paths]
        splits = _fill_splits(packed.splits, labels, seed, val_fraction)
        return ImageData(path, kind, names, labels, splits, paths, packed.images, packed.fit)
    items = list_dataset(path)
    if not items:
        raise InputError(f"{path}: no images in identity sub-folders")
    names = sorted({it.identity for it in items})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[it.identity] for it in items], dtype=np.int64)
    csv_path = path / "splits.csv"
    if csv_path.is_file():
        splits = _splits_from_csv(csv_path, [it.key for it in items], labels, seed, val_fraction)
    else:
        splits = stratified_split(labels, val_fraction, seed)
    return ImageData(path, kind, names, labels, splits, [str(it.path) for it in items])


def _source_splits_csv(root: Path, meta: dict[str, Any]) -> Path | None:
    """The ``splits.csv`` that applies to an embeddings folder: its own, or its source's."""
    if (root / "splits.csv").is_file():
        return root / "splits.csv"
    for key in ("data", "source", "src"):
        src = meta.get(key)
        if isinstance(src, str) and (Path(src) / "splits.csv").is_file():
            return Path(src) / "splits.csv"
    return None


def load_embedding_data(
    path: str | Path, *, seed: int = 0, val_fraction: float = 0.15
) -> EmbeddingData:
    """An embeddings folder from ``celebface embed``, with its split: its (or its source
    dataset's) ``splits.csv`` keyed on the identity folder and file name of each path, else
    stratified."""
    from celebface.recognition import load_embeddings

    path = Path(path)
    emb = load_embeddings(path)
    meta = dict(emb.meta or {})
    names = list(emb.label_names)
    labels = np.asarray(emb.labels, dtype=np.int64)
    paths = [str(p) for p in emb.paths]
    csv_path = _source_splits_csv(path, meta)
    if emb.splits is not None and any(emb.splits):
        splits = _fill_splits(emb.splits, labels, seed, val_fraction)
    elif csv_path is not None:
        keys = [(names[lab], Path(p).name) for lab, p in zip(labels, paths, strict=True)]
        splits = _splits_from_csv(csv_path, keys, labels, seed, val_fraction)
    else:
        splits = stratified_split(labels, val_fraction, seed)
    return EmbeddingData(path, names, labels, splits, paths,
                         np.asarray(emb.embeddings, dtype=np.float32), meta)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
