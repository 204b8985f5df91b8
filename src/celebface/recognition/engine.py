"""The one embedding engine: every stage that embeds labelled images (embed, enroll,
calibrate, and train/evaluate through embed) runs :class:`EmbeddingEngine`.

Each image's key is its content plus what decides its chip (the face a dataset records, else
the face rule, the detector and any shrinking), so a vector computed once, by any stage, is
found again in the cache (:class:`~celebface.recognition.cache.EmbeddingCache`) by the next.
Missing vectors are computed in chunks (here, in worker processes for dlib's own network, or on
Ray) and each chunk is cached as soon as it is done, so an interrupted run resumes.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from celebface import validate
from celebface.data import FaceDataset, FaceItem
from celebface.io import ImageReadError
from celebface.plugins import LOCAL, engine_runner
from celebface.recognition.align import DEFAULT_RULE, check_rule, face_tag
from celebface.recognition.base import Embedder
from celebface.recognition.batch import embed_chunk, init_worker, worker_task
from celebface.recognition.cache import EmbeddingCache, content_hash
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA, EmbedderSpec
from celebface.recognition.tta import FlipTTA, combine_views, views_for

log = logging.getLogger(__name__)

#: At most this many bytes of image files still to embed are kept from hashing to decoding;
#: files past it are read a second time (a folder of huge photos).
READ_AHEAD_BYTES = 1 << 30


@dataclass
class EmbedConfig:
    """How ``embed_dataset`` runs. ``workers`` 0 means one per CPU core (dlib only);
    ``cache_dir`` None means ``OUT/.cache``; ``faces`` is the rule for images whose face is
    not known (:mod:`celebface.recognition.align`: ``auto``, ``detect`` or ``whole``);
    ``engine`` ``ray`` embeds on a Ray cluster (``address``;
    :mod:`celebface.engines.ray_engine`); ``compact_cache`` merges the cache's shards into one
    at the end (otherwise a run adds one shard: :mod:`celebface.recognition.cache`)."""

    embedder: str = DEFAULT_EMBEDDER
    tta: str = DEFAULT_TTA
    device: str = "auto"
    weights: str | None = None
    workers: int = 0
    batch_size: int = 64
    cache_dir: str | None = None
    progress: bool = True
    faces: str = DEFAULT_RULE
    options: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    address: str | None = None
    compact_cache: bool = False

    def __post_init__(self) -> None:
        validate.nonneg_int("workers", self.workers)
        validate.positive_int("batch_size", self.batch_size)

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder these settings describe."""
        return EmbedderSpec.from_config(self)

    @classmethod
    def of_spec(cls, spec: EmbedderSpec, **settings: Any) -> EmbedConfig:
        """The settings that embed with ``spec``'s embedder (``settings``: the rest)."""
        options = dict(spec.options)
        return cls(embedder=spec.name, tta=spec.tta, weights=options.pop("weights", None),
                   options=options, **settings)


def cache_settings(embedder: Embedder, name: str | None = None) -> dict[str, Any]:
    """What keys an embedder's cache: its settings, plus the files of a trained-model folder
    ``name`` (retraining it changes the vectors)."""
    settings = embedder.settings()
    if name and Path(name).is_dir():
        folder = Path(name)
        parts = sorted(f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                       for p in folder.rglob("*") if p.is_file())
        settings = {**settings, "model_files": content_hash("\n".join(parts).encode())}
    return settings


def _read(item: FaceItem) -> bytes:
    """The bytes of an item's image file (:class:`ImageReadError` when it cannot be read)."""
    try:
        return Path(item.path).read_bytes()
    except OSError as exc:
        raise ImageReadError(item.path, f"cannot open: {exc.strerror or exc}") from None


def _longer_side(data: bytes) -> int:
    """The longer side of an encoded image, from its header (0 when unreadable)."""

    try:
        with Image.open(io.BytesIO(data)) as img:
            return max(img.size)
    except Exception:  # decoding reports it properly later
        return 0


class EmbeddingEngine:
    """``embedder`` with its content cache under ``cache_dir`` (None: kept in memory only).

    ``config`` says how chunks run (``batch_size``, ``workers``, ``engine``, ``faces`` rule,
    ``progress``; ``embedder``, when a trained-model folder, adds its files to the cache key:
    :func:`cache_settings`); ``views`` default to the embedder's own (a :class:`FlipTTA` is
    cached view by view, as ``embed --tta flip`` caches it); ``detector`` finds unknown faces
    (default MTCNN); ``max_side`` shrinks large photos before detection. After a run, ``errors``
    (index -> reason: unreadable, or no face under the ``detect`` rule), ``computed``,
    ``cached`` and ``compute_seconds`` describe it."""

    def __init__(
        self,
        embedder: Embedder,
        cache_dir: str | Path | None,
        config: EmbedConfig | None = None,
        *,
        views: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
        detector: Any | None = None,
        max_side: int | None = None,
    ) -> None:
        self.config = config or EmbedConfig()
        self.rule = check_rule(self.config.faces)
        if views is None and isinstance(embedder, FlipTTA):
            embedder, views = embedder.base, views_for("flip")
        self.embedder = embedder
        self.views = tuple(views or ("orig",))
        self.settings = (settings if settings is not None
                         else cache_settings(embedder, self.config.embedder))
        self.caches = {v: EmbeddingCache(cache_dir, self.settings, v) for v in self.views}
        self.detector, self.max_side = detector, max_side
        self.errors: dict[int, str] = {}
        self.computed = self.cached = 0
        self.compute_seconds = 0.0

    # ---- keys ----

    def key(self, dataset: FaceDataset, item: FaceItem) -> str:
        """Cache key: the image content plus what decides its chip."""
        return self._key(dataset, item, None if item.row is not None else _read(item))

    def _key(self, dataset: FaceDataset, item: FaceItem, data: bytes | None) -> str:
        """:meth:`key` of an item whose file's bytes (``data``) are already read."""
        shrunk = False
        if data is not None:
            raw = content_hash(data)
            shrunk = _longer_side(data) > self.max_side if self.max_side else False
        else:
            raw = content_hash(dataset.load(item))
        tag = face_tag(item.face, self.rule)
        name = getattr(self.detector, "name", "mtcnn")
        if item.face is None and self.rule != "whole" and name != "mtcnn":
            tag += f"|detector:{name}"
        if shrunk:
            tag += f"|max_side:{self.max_side}"
        return content_hash(f"{raw}|{tag}".encode())

    def _keys(self, dataset: FaceDataset, items: Sequence[FaceItem]
              ) -> tuple[list[str | None], dict[int, bytes]]:
        """Every item's key, and the bytes of the files still to embed (so each image is read
        once: hashed, then decoded from the same bytes), up to :data:`READ_AHEAD_BYTES` of
        them in all; files past that are read again when embedded."""
        lock, kept = threading.Lock(), [0]

        def one(item: FaceItem) -> tuple[str | None, bytes | None, str | None]:
            try:
                data = None if item.row is not None else _read(item)
                key = self._key(dataset, item, data)
            except ImageReadError as exc:
                return None, None, str(exc)
            if data is None or self._has(key):
                return key, None, None
            with lock:
                if kept[0] + len(data) > READ_AHEAD_BYTES:
                    return key, None, None
                kept[0] += len(data)
            return key, data, None

        keys: list[str | None] = []
        blobs: dict[int, bytes] = {}
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, (key, data, error) in enumerate(pool.map(one, items)):
                keys.append(key)
                if data is not None:
                    blobs[i] = data
                if error is not None:
                    self.errors[i] = error
        return keys, blobs

    def _has(self, key: str | None) -> bool:
        return key is not None and all(key in c for c in self.caches.values())

    def _vectors(self, keys: Sequence[str | None], rows: Sequence[int]) -> np.ndarray:
        def one(key: str) -> np.ndarray:
            if len(self.views) == 1:
                return self.caches[self.views[0]].get(key)
            return combine_views([self.caches[v].get(key) for v in self.views])

        return np.stack([one(keys[i]) for i in rows]).astype(np.float32)  # type: ignore[arg-type]

    # ---- runs ----

    def run(self, dataset: FaceDataset, items: Sequence[FaceItem]
            ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Vectors of ``items`` part by part, ``(indices into items, (n, dim) vectors)``:
        the cached ones first, then each chunk as it is computed (and cached)."""
        self.errors, self.computed, self.compute_seconds = {}, 0, 0.0
        keys, blobs = self._keys(dataset, items)
        todo = [i for i, k in enumerate(keys) if k is not None and not self._has(k)]
        cached = [i for i, k in enumerate(keys) if self._has(k)]
        self.cached = len(cached)
        log.info("%d images: %d cached, %d to embed (%s, views %s)", len(items), len(cached),
                 len(todo), self.embedder.name, "+".join(self.views))
        if cached:
            yield cached, self._vectors(keys, cached)
        try:
            for rows in self._compute(dataset, items, keys, todo, blobs):
                if rows:
                    yield rows, self._vectors(keys, rows)
        finally:
            for cache in self.caches.values():
                if self.config.compact_cache:  # merges every shard (this run's included)
                    cache.compact()
                else:  # merges this run's shards
                    cache.settle()

    def embed(self, dataset: FaceDataset, items: Sequence[FaceItem]
              ) -> tuple[list[int], np.ndarray]:
        """All of :meth:`run` at once, in the order of ``items``: (indices, vectors)."""
        parts = list(self.run(dataset, items))
        rows = sorted(i for part, _ in parts for i in part)
        if not rows:
            return [], np.zeros((0, self.embedder.dim), np.float32)
        where = {i: (p, j) for p, (part, _) in enumerate(parts) for j, i in enumerate(part)}
        return rows, np.stack([parts[where[i][0]][1][where[i][1]] for i in rows])

    def _compute(self, dataset: FaceDataset, items: Sequence[FaceItem],
                 keys: list[str | None], todo: list[int], blobs: dict[int, bytes]
                 ) -> Iterator[list[int]]:
        """Compute the missing vectors of ``todo`` chunk by chunk (decoding the files' bytes
        ``blobs`` already read); yield each chunk's indices now cached."""

        if not todo:
            return
        config = self.config
        chunks = [todo[s:s + config.batch_size] for s in range(0, len(todo), config.batch_size)]
        # views still missing for the chunk (usually all of them, or only a new one)
        tasks = [(dataset, [items[i] for i in chunk],
                  [v for v in self.views if any(_missing(keys[i], self.caches[v])
                                                for i in chunk)],
                  self.rule, self.max_side, [blobs.pop(i, None) for i in chunk])
                 for chunk in chunks]
        workers = config.workers or os.cpu_count() or 1
        # dlib's own network runs in worker processes (one model each); torch uses its threads
        use_pool = (isinstance(self.embedder, DlibEmbedder) and self.embedder.backend == "dlib"
                    and self.detector is None and workers > 1 and len(chunks) > 1)
        t0 = time.perf_counter()
        bar = tqdm(total=len(todo), unit="face", desc=f"embed ({self.embedder.name})",
                   disable=not config.progress, smoothing=0.1)
        try:
            for chunk, (ok, vecs, errs) in zip(chunks, self._results(tasks, workers, use_pool),
                                               strict=True):
                for j, reason in errs:
                    self.errors[chunk[j]] = reason
                for view, v in vecs.items():
                    self.caches[view].add([keys[chunk[j]] for j in ok], v)
                failed = {j for j, _ in errs}
                for j in set(range(len(chunk))) - set(ok) - failed:  # ``detect``: no face
                    self.errors[chunk[j]] = f"{items[chunk[j]].path}: no face found"
                self.computed += len(ok)
                bar.update(len(chunk))
                yield [chunk[j] for j in sorted(ok) if self._has(keys[chunk[j]])]
        finally:
            bar.close()
            self.compute_seconds = time.perf_counter() - t0

    def _results(self, tasks: list[tuple[Any, ...]], workers: int, use_pool: bool
                 ) -> Iterator[Any]:
        if self.config.engine != LOCAL:  # the same tasks, computed elsewhere (e.g. ray)
            yield from engine_runner("embed", self.config.engine)(self.embedder, self.config,
                                                                 tasks)
        elif use_pool:

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=init_worker,
                          initargs=(self.embedder.config,)) as pool:  # type: ignore[attr-defined]
                # imap keeps results in order; chunks are small so no worker idles long
                yield from pool.imap(worker_task, tasks)
        else:
            for task in tasks:
                yield embed_chunk(self.embedder, *task, detector=self.detector)


def _missing(key: str | None, cache: EmbeddingCache) -> bool:
    """Whether the vector of ``key`` must be computed (a photo without a key is never cached)."""
    return key is None or key not in cache
