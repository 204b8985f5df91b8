"""Embeddings of a labelled face set: a folder-per-identity of photos, a crop folder, a pack,
or an ``embed`` output. Used by enrolment and calibration.

Every dataset is read through :func:`celebface.data.open_dataset` and embedded by the one
embedding engine (:class:`celebface.recognition.engine.EmbeddingEngine`, with its content
cache): a face a crop folder carries is used as it is; otherwise the face finder
(:mod:`celebface.detection.finder`) locates it: ``detector="mtcnn"`` (raw photos) by the
``detect`` rule (the largest face that counts; photos without one are skipped, never enrolled
whole; the service's ``POST /v1/people/{name}/photos`` enrols by the same rule), and
``detector="none"`` (face crops of unknown origin) by the ``auto`` rule (the face inside the
crop, else the whole image).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.data import FaceDataset, FaceItem, open_dataset
from celebface.data.stage import folder_kind
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.recognition.engine import EmbedConfig, EmbeddingEngine
from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA, EmbedderSpec, check_tta

log = logging.getLogger(__name__)

__all__ = ["FaceSet", "FaceSetConfig", "embed_faces", "embed_items"]


@dataclass(frozen=True)
class FaceSetConfig:
    """How faces are found and embedded.

    ``detector``: ``mtcnn`` for raw photos (the largest face; photos without one are skipped),
    or ``"none"`` when the images are face crops (the face a crop folder records, else MTCNN
    inside the crop, else the whole image). ``max_side``: photos are shrunk to this longer
    side before detection (speed, memory). ``split``: keep only rows of this split of the
    data's ``splits.csv`` (e.g. ``train``). ``cache_dir``: where computed vectors are cached
    (the content cache ``celebface embed`` keeps; None: enrolment's ``OUT/.cache``,
    calibration's ``GALLERY/.cache``, elsewhere none).
    """

    embedder: str = DEFAULT_EMBEDDER
    detector: str = DEFAULT_DETECTOR
    device: str = "auto"
    max_side: int = 1024
    batch_size: int = 16
    split: str | None = None
    embedder_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    tta: str = DEFAULT_TTA

    def __post_init__(self) -> None:
        validate.in_range("max_side", self.max_side, 16, kind=int)
        validate.positive_int("batch_size", self.batch_size)
        if "tta" in self.embedder_options:  # the layout of earlier versions
            options = dict(self.embedder_options)
            object.__setattr__(self, "tta", options.pop("tta"))
            object.__setattr__(self, "embedder_options", options)
        check_tta(self.tta)

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder these settings describe."""
        return EmbedderSpec.from_config(self)

    def with_spec(self, spec: EmbedderSpec, **changes: Any) -> Any:
        """These settings (with ``changes``) embedding with ``spec``'s embedder (its options,
        else these)."""

        return replace(self, embedder=spec.name, tta=spec.tta,
                       embedder_options=dict(spec.options or self.embedder_options), **changes)

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
    """Whether ``path`` is a ``celebface embed`` output (by its stage manifest)."""
    return Path(path).is_dir() and folder_kind(path) == "embeddings"


def source_key(path: str | Path) -> str:
    """The key a photo is known by in a gallery (its absolute path)."""
    return str(Path(path).resolve())


def open_faces(data: str | Path, split: str | None = None) -> FaceDataset:
    """A labelled dataset of images (photos, crops or a pack), optionally one split of its
    ``splits.csv``; each item with the face geometry the folder records, if any."""
    return open_dataset(data, split)


def load_embedded(
    path: str | Path, split: str | None = None,
    keep: Callable[[FaceDataset], FaceDataset] | None = None,
) -> tuple[FaceSet, dict[str, Any]]:
    """A ``celebface embed`` output folder as a :class:`FaceSet`, plus its metadata;
    ``keep`` filters its items first (enrolment: the people it may name)."""
    dataset = open_dataset(path, split)
    if keep is not None:
        dataset = keep(dataset)
    return FaceSet(dataset.vectors_of(dataset.items), dataset.identities,
                   [source_key(it.path) for it in dataset.items]), dict(dataset.meta)


def embed_items(
    dataset: FaceDataset,
    items: Sequence[FaceItem],
    embedder: Any,
    detector: Any | None,
    config: FaceSetConfig,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> Iterator[FaceSet]:
    """Embed ``items`` of ``dataset`` through the embedding engine, its cache under
    ``config.cache_dir`` (else ``cache_dir``; neither: in memory), part by part (one
    :class:`FaceSet` per part, for checkpointing): the cached vectors, then each computed batch.

    Unreadable photos and photos without a face are logged, skipped and listed in the last
    part's ``skipped``.
    """

    run = EmbedConfig.of_spec(config.spec, workers=1, batch_size=config.batch_size,
                              faces=config.face_rule, progress=progress)
    engine = EmbeddingEngine(embedder, config.cache_dir or cache_dir, run, detector=detector,
                             max_side=config.max_side)
    for rows, vectors in engine.run(dataset, items):
        yield FaceSet(vectors, [items[i].identity for i in rows],
                      [source_key(items[i].path) for i in rows])
    skipped = []
    for i, reason in sorted(engine.errors.items()):
        hint = " (use --detector none for face crops)" if reason.endswith("no face found") else ""
        log.warning("%s (skipped%s)", reason, hint)
        skipped.append(str(items[i].path))
    if skipped:
        yield FaceSet(np.zeros((0, embedder.dim), np.float32), [], [], skipped)


def build_detector(config: FaceSetConfig) -> Any:
    """The face finder of the detector the config names (MTCNN also looks inside crops for
    ``"none"``), built once per process; the rule is :attr:`FaceSetConfig.face_rule`."""
    from celebface.detection import get_finder

    return get_finder(detector=DEFAULT_DETECTOR if config.detector == "none" else config.detector,
                      device=config.device, rule=config.face_rule)


def embed_faces(
    data: str | Path, config: FaceSetConfig | None = None, models: tuple[Any, Any] | None = None,
    cache_dir: str | Path | None = None,
) -> FaceSet:
    """All faces of ``data`` (a photo folder, or an ``embed`` output folder) as one FaceSet
    (photos embedded with their cache under ``config.cache_dir``, else ``cache_dir``)."""
    config = config or FaceSetConfig()
    if is_embeddings_dir(data):
        return load_embedded(data, config.split)[0]
    dataset = open_faces(data, config.split)
    embedder, detector = models or (config.spec.build(config.device), build_detector(config))
    parts = list(embed_items(dataset, dataset.items, embedder, detector, config,
                             cache_dir=cache_dir))
    return FaceSet(
        np.concatenate([p.embeddings for p in parts]) if parts else np.zeros((0, 0), np.float32),
        [i for p in parts for i in p.identities],
        [s for p in parts for s in p.sources],
        [s for p in parts for s in p.skipped],
    )
