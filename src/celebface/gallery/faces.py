"""Embeddings of a labelled face set: a folder-per-identity of photos, a crop folder, or an
``embed`` output. Used by enrolment and calibration.

Photos are read through :func:`celebface.data.open_dataset` and embedded by the one embedding
step (:func:`celebface.recognition.dataset.embed_batch`): a face a crop folder carries is used
as it is; otherwise ``detector="mtcnn"`` (raw photos) uses the largest face found and skips
photos without one, and ``detector="none"`` (face crops of unknown origin) looks for the face
inside the crop and falls back to the whole image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.data import FaceItem, open_dataset
from celebface.errors import InputError
from celebface.io import ImageReadError, read_image, read_splits
from celebface.recognition.align import pick_face

log = logging.getLogger(__name__)

__all__ = ["FaceSet", "FaceSetConfig", "embed_faces", "embed_items", "pick_face"]

#: Marker file of a folder written by ``celebface embed``.
EMBEDDINGS_FILE = "face_embeddings.npy"


@dataclass(frozen=True)
class FaceSetConfig:
    """How faces are found and embedded.

    ``detector``: ``mtcnn`` for raw photos (the largest face; photos without one are skipped),
    or ``"none"`` when the images are face crops (the face a crop folder records, else MTCNN
    inside the crop, else the whole image). ``max_side``: photos are shrunk to this longer
    side before detection (speed, memory). ``split``: keep only rows of this split of the
    data's ``splits.csv`` (e.g. ``train``).
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

    @property
    def face_rule(self) -> str:
        """The :mod:`celebface.recognition.align` rule for faces not known in advance."""
        return "auto" if self.detector == "none" else "detect"


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


def list_items(data: str | Path, split: str | None = None) -> list[FaceItem]:
    """Images of a labelled folder (photos or crops), optionally one split of its
    ``splits.csv``; each with the face geometry the folder records, if any."""
    return open_dataset(data, split).items


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
            raise InputError(f"{path}: no embeddings in split {split!r}")
        vectors = vectors[np.asarray(keep, bool)]
        identities = [i for i, k in zip(identities, keep, strict=True) if k]
        sources = [s for s, k in zip(sources, keep, strict=True) if k]
    return FaceSet(vectors, identities, sources), dict(emb.meta)


def _batches(items: Sequence[FaceItem], size: int) -> Iterator[Sequence[FaceItem]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def _load(item: FaceItem, max_side: int) -> tuple[np.ndarray, Any]:
    """The image (shrunk to ``max_side``) and its known face in the same pixels."""
    loaded = read_image(item.path, max_side)
    face = item.face.scaled(1 / loaded.scale) if item.face is not None else None
    return loaded.rgb, face


def embed_items(
    items: Sequence[FaceItem],
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

    from celebface.recognition.dataset import embed_batch

    rule = config.face_rule
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for batch in _batches(items, config.batch_size):
            images, known, kept, skipped = [], [], [], []
            for item in batch:
                try:
                    image, face = _load(item, config.max_side)
                except ImageReadError as exc:
                    log.warning("%s (skipped)", exc)
                    skipped.append(str(item.path))
                    continue
                images.append(image)
                known.append(face)
                kept.append(item)
            ok, vecs = (embed_batch(embedder, images, known, ("orig",), rule, detector)
                        if images else ([], {}))
            for i, item in enumerate(kept):
                if i not in ok:
                    log.warning("%s: no face found (skipped; use --detector none for face "
                                "crops)", item.path)
                    skipped.append(str(item.path))
            vectors = vecs.get("orig", np.zeros((0, embedder.dim), np.float32))
            yield FaceSet(
                np.asarray(vectors, np.float32),
                [kept[i].identity for i in ok],
                [source_key(kept[i].path) for i in ok],
                skipped,
            )
            bar.update(len(batch))
    finally:
        bar.close()


def build_detector(config: FaceSetConfig) -> Any:
    """The detector the config names (MTCNN also looks inside crops for ``"none"``)."""
    from celebface.detection import get_detector

    return get_detector("mtcnn" if config.detector == "none" else config.detector,
                        device=config.device)


def build_models(config: FaceSetConfig) -> tuple[Any, Any | None]:
    """The embedder and the detector the config names."""
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
