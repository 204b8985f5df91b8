"""Embeddings of a labelled face set: a folder-per-identity of photos, or an ``embed`` output.

Used by enrolment and calibration. Photos may be raw (a detector finds the faces; the largest
face of each photo is used) or face crops (``detector="none"``: the whole image is the face).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.io import DatasetItem, ImageReadError, list_dataset, read_image, read_splits
from celebface.types import Face

log = logging.getLogger(__name__)

#: Marker file of a folder written by ``celebface embed``.
EMBEDDINGS_FILE = "face_embeddings.npy"


@dataclass(frozen=True)
class FaceSetConfig:
    """How faces are found and embedded.

    ``detector``: detector name, or ``"none"`` when the images are already face crops.
    ``max_side``: photos are shrunk to this longer side before detection (speed, memory).
    ``split``: keep only rows of this split of the data's ``splits.csv`` (e.g. ``train``).
    """

    embedder: str = "dlib"
    detector: str = "mtcnn"
    device: str = "auto"
    max_side: int = 1024
    batch_size: int = 16
    split: str | None = None
    embedder_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate.in_range("max_side", self.max_side, 16, kind=int)
        validate.positive_int("batch_size", self.batch_size)


@dataclass
class FaceSet:
    """Embeddings with their identity and source file."""

    embeddings: np.ndarray
    identities: list[str]
    sources: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.identities)


def is_embeddings_dir(path: str | Path) -> bool:
    return (Path(path) / EMBEDDINGS_FILE).is_file()


def source_key(path: str | Path) -> str:
    """The key a photo is known by in a gallery (its absolute path)."""
    return str(Path(path).resolve())


def list_items(data: str | Path, split: str | None = None) -> list[DatasetItem]:
    """Photos of a folder-per-identity dataset, optionally one split of its ``splits.csv``."""
    items = list_dataset(data)
    if split:
        csv = Path(data) / "splits.csv"
        if not csv.is_file():
            raise FileNotFoundError(f"{csv}: needed for --split {split}, but it does not exist")
        splits = read_splits(csv)
        items = [it for it in items if splits.get(it.key) == split]
        if not items:
            raise ValueError(f"{data}: no photos in split {split!r}")
    return items


def load_embedded(path: str | Path, split: str | None = None) -> tuple[FaceSet, dict[str, Any]]:
    """A ``celebface embed`` output folder as a :class:`FaceSet`, plus its metadata."""
    from celebface.recognition import load_embeddings

    emb = load_embeddings(path)
    names = list(emb.label_names)
    identities = [names[int(i)] for i in emb.labels]
    sources = [source_key(p) for p in emb.paths]
    vectors = np.asarray(emb.embeddings, np.float32)
    if split:
        splits = emb.splits
        if splits is None:
            csv = Path(emb.meta.get("data") or "") / "splits.csv"
            if not csv.is_file():
                raise FileNotFoundError(f"{path}: --split needs split labels ({csv} missing)")
            table = read_splits(csv)
            splits = [table.get((i, Path(p).name)) for i, p in zip(identities, emb.paths,
                                                                   strict=True)]
        keep = [s == split for s in splits]
        if not any(keep):
            raise ValueError(f"{path}: no embeddings in split {split!r}")
        vectors = vectors[np.asarray(keep, bool)]
        identities = [i for i, k in zip(identities, keep, strict=True) if k]
        sources = [s for s, k in zip(sources, keep, strict=True) if k]
    return FaceSet(vectors, identities, sources), dict(emb.meta)


def pick_face(faces: Sequence[Face]) -> Face | None:
    """The face a portrait is about: the largest one (ties: highest score)."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.area, f.score))


def _batches(items: Sequence[DatasetItem], size: int) -> Iterator[Sequence[DatasetItem]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def embed_items(
    items: Sequence[DatasetItem],
    embedder: Any,
    detector: Any | None,
    config: FaceSetConfig,
    progress: bool = True,
    desc: str = "embed",
) -> Iterable[FaceSet]:
    """Embed ``items`` batch by batch (one :class:`FaceSet` per batch, for checkpointing).

    Unreadable photos and photos without a face are logged, skipped and listed in ``skipped``.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for batch in _batches(items, config.batch_size):
            images, kept, skipped = [], [], []
            for item in batch:
                try:
                    images.append(read_image(item.path, config.max_side).rgb)
                    kept.append(item)
                except ImageReadError as exc:
                    log.warning("%s (skipped)", exc)
                    skipped.append(str(item.path))
            faces: list[Face | None] = [None] * len(images)
            if detector is not None and images:
                found = detector.detect_batch(images)
                faces = [pick_face(f) for f in found]
                for item, face in zip(kept, faces, strict=True):
                    if face is None:
                        log.warning("%s: no face found (skipped; use --detector none for face "
                                    "crops)", item.path)
                        skipped.append(str(item.path))
                keep = [i for i, f in enumerate(faces) if f is not None]
                images = [images[i] for i in keep]
                kept = [kept[i] for i in keep]
                faces = [faces[i] for i in keep]
            vectors = (embedder.embed(images, faces) if images
                       else np.zeros((0, embedder.dim), np.float32))
            yield FaceSet(
                np.asarray(vectors, np.float32),
                [it.identity for it in kept],
                [source_key(it.path) for it in kept],
                skipped,
            )
            bar.update(len(batch))
    finally:
        bar.close()


def build_detector(config: FaceSetConfig) -> Any | None:
    """The detector the config names (``None`` for ``detector == "none"``)."""
    if config.detector == "none":
        return None
    from celebface.detection import get_detector

    return get_detector(config.detector, device=config.device)


def build_models(config: FaceSetConfig) -> tuple[Any, Any | None]:
    """The embedder and (unless ``detector == "none"``) the detector the config names."""
    from celebface.recognition import get_embedder

    embedder = get_embedder(config.embedder, device=config.device, **config.embedder_options)
    return embedder, build_detector(config)


def embed_faces(
    data: str | Path, config: FaceSetConfig | None = None, models: tuple[Any, Any] | None = None
) -> FaceSet:
    """All faces of ``data`` (a photo folder, or an ``embed`` output folder) as one FaceSet."""
    config = config or FaceSetConfig()
    if is_embeddings_dir(data):
        return load_embedded(data, config.split)[0]
    items = list_items(data, config.split)
    embedder, detector = models or build_models(config)
    parts = list(embed_items(items, embedder, detector, config, desc=f"embed {Path(data).name}"))
    return FaceSet(
        np.concatenate([p.embeddings for p in parts]) if parts else np.zeros((0, 0), np.float32),
        [i for p in parts for i in p.identities],
        [s for p in parts for s in p.sources],
        [s for p in parts for s in p.skipped],
    )
