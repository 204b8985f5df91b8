"""One chunk of labelled images embedded: the step every stage's embedding runs (in this
process, a worker process or a Ray actor; :mod:`celebface.recognition.engine` drives it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.data import FaceDataset, FaceItem
from celebface.detection.finder import as_finder
from celebface.io import ImageReadError, read_image, read_image_bytes
from celebface.recognition.align import DEFAULT_RULE
from celebface.recognition.base import Embedder
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.types import Face


def embed_batch(
    embedder: Embedder,
    images: Sequence[np.ndarray],
    known: Sequence[Face | None] | None,
    views: Sequence[str] = ("orig",),
    rule: str = DEFAULT_RULE,
    detector: Any | None = None,
) -> tuple[list[int], dict[str, np.ndarray]]:
    """The one embedding step: locate each face by ``rule`` (``detector``: a
    :class:`~celebface.detection.finder.FaceFinder`, a detector, or None: the default finder
    on the embedder's device), then embed the ``views``. Returns the indices embedded (a
    ``detect``-rule image without a face is left out) and ``{view: vectors}`` for them."""
    finder = (as_finder(detector) if detector is not None
              else as_finder(device=str(getattr(embedder, "device", "cpu"))))
    faces = finder.locate(images, known, rule)
    ok = [i for i, f in enumerate(faces) if f is not None]
    if not ok:
        return [], {}
    vecs = embedder.embed_views([images[i] for i in ok], [faces[i] for i in ok], views)
    return ok, vecs


_WORKER_EMBEDDER: Embedder | None = None


def init_worker(config: DlibConfig) -> None:
    global _WORKER_EMBEDDER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_EMBEDDER = DlibEmbedder(config)


def _load(dataset: FaceDataset, item: FaceItem, max_side: int | None, data: bytes | None
          ) -> tuple[np.ndarray, Face | None]:
    """The item's image (a file shrunk to ``max_side``; decoded from ``data``, its bytes,
    when the caller has already read them) and its known face in those pixels."""
    if item.row is not None:
        return dataset.load(item), item.face
    loaded = (read_image_bytes(data, item.path, max_side) if data is not None
              else read_image(item.path, max_side))
    return loaded.rgb, item.face.scaled(1 / loaded.scale) if item.face is not None else None


def embed_chunk(
    embedder: Embedder | None,
    dataset: FaceDataset,
    chunk: Sequence[FaceItem],
    views: Sequence[str],
    rule: str,
    max_side: int | None = None,
    data: Sequence[bytes | None] | None = None,
    *,
    detector: Any | None = None,
) -> tuple[list[int], dict[str, np.ndarray], list[tuple[int, str]]]:
    """Embed the images of ``chunk``: (indices that worked, {view: vectors}, errors).
    ``data``: the files' bytes where already read (each image is read once)."""
    embedder = embedder or _WORKER_EMBEDDER
    if embedder is None:
        raise RuntimeError("no embedder: worker process was not initialised")
    images, known, ok, errors = [], [], [], []
    for i, item in enumerate(chunk):
        try:
            image, face = _load(dataset, item, max_side,
                                data[i] if data is not None else None)
        except ImageReadError as exc:
            errors.append((i, str(exc)))
            continue
        images.append(image)
        known.append(face)
        ok.append(i)
    if not images:
        return [], {}, errors
    done, vecs = embed_batch(embedder, images, known, views, rule, detector)
    return [ok[j] for j in done], vecs, errors


def worker_task(args: tuple[Any, ...]) -> tuple[list[int], dict[str, np.ndarray],
                                                 list[tuple[int, str]]]:
    return embed_chunk(None, *args)
