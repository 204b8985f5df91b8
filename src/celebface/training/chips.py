"""Aligned 150-px face chips of a whole image dataset, cut once and kept on disk.

Chips are cut by :meth:`celebface.recognition.DlibEmbedder.chip` (dlib's 5-point alignment, the
one the embedders use, so a change there changes the chips and their cache key). The cache is
one ``(N, 150, 150, 3)`` uint8 ``.npy`` (read as a memmap) plus a ``.json`` with the rows that
could not be read, named by a hash of every image's content (in order) and the alignment
settings: the same photos aligned the same way hit the cache whatever their folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from celebface.io import ImageReadError, atomic_write_json, read_image
from celebface.recognition import DlibEmbedder
from celebface.recognition.align import face_tag
from celebface.recognition.dlib_resnet import DlibConfig

log = logging.getLogger(__name__)

CHIP = 150


def default_cache_dir() -> Path:
    """``$CELEBFACE_CACHE/chips`` or ``~/.cache/celebface/chips``."""
    root = os.environ.get("CELEBFACE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "celebface")
    return Path(root) / "chips"


@dataclass
class Chips:
    """Aligned chips of a dataset's rows: ``images[i]`` is row ``i``'s chip, ``ok[i]`` False
    when its file could not be read (its chip is black)."""

    images: np.ndarray  # (N, 150, 150, 3) uint8 memmap
    ok: np.ndarray  # (N,) bool
    key: str
    path: Path


def chips_key(paths: Sequence[str | Path], settings: dict[str, Any]) -> str:
    """A hash of the images' bytes (in order) and the alignment settings."""
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in paths:
        try:
            h.update(hashlib.sha1(Path(p).read_bytes()).digest())
        except OSError:
            h.update(b"unreadable:" + str(p).encode())
    return h.hexdigest()[:20]


#: The ``DlibConfig`` fields that decide how a chip is cut (the rest concern the embedding).
ALIGNMENT_FIELDS = ("aligner", "padding", "box_shrink")


def alignment_config(settings: dict[str, Any] | None = None) -> Any:
    """The ``DlibConfig`` that cuts chips as ``settings`` say (a ``DlibEmbedder.settings()``
    dict, as a model folder records it; its :data:`ALIGNMENT_FIELDS`), default dlib's."""

    return DlibConfig(**{k: v for k, v in (settings or {}).items() if k in ALIGNMENT_FIELDS})


def face_chips(images: Sequence[np.ndarray], embedder: Any,
               faces: Sequence[Any] | None = None) -> list[np.ndarray]:
    """The aligned chips of ``images`` by ``embedder`` (a ``DlibEmbedder``): each face as
    given in ``faces``, else located by the ``auto`` rule of the default face finder
    (:mod:`celebface.detection.finder`) on the embedder's device, as every stage does."""
    from celebface.detection import get_finder

    device = str(getattr(embedder, "device", "auto"))
    located = get_finder(device=device).locate(images, faces, "auto")
    return [embedder.chip(im, f) for im, f in zip(images, located, strict=True)]


def aligned_chips(paths: Sequence[str | Path], embedder: Any = None,
                  cache_dir: str | Path | None = None, workers: int = 2,
                  progress: bool = True) -> Chips:
    """The aligned chips of the images at ``paths`` (faces located by the ``auto`` rule of
    :mod:`celebface.recognition.align`, as every stage does), from the cache or cut now and
    cached. ``embedder`` is a ``DlibEmbedder`` (default
    settings when ``None``); unreadable files are logged and marked in ``ok``."""


    embedder = embedder or DlibEmbedder()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # the auto rule's geometry too, as the embedding caches: chips of another rule differ
    key = chips_key(paths, {**embedder.settings(), "faces": face_tag(None, "auto")})
    npy, meta = cache / f"chips-{key}.npy", cache / f"chips-{key}.json"
    if npy.is_file() and meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        images = np.load(npy, mmap_mode="r")
        if images.shape == (len(paths), CHIP, CHIP, 3):
            ok = np.ones(len(paths), bool)
            ok[info.get("failed", [])] = False
            log.info("aligned chips from %s", npy)
            return Chips(images, ok, key, npy)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".chips-{key}-{os.getpid()}.npy"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                    shape=(len(paths), CHIP, CHIP, 3))
    failed: list[int] = []

    def cut(i: int) -> None:
        try:
            out[i] = face_chips([read_image(paths[i]).rgb], embedder)[0]
        except ImageReadError as exc:
            log.warning("skipped: %s", exc)
            failed.append(i)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in tqdm(pool.map(cut, range(len(paths))), total=len(paths),
                          desc="align chips", unit="img", disable=not progress):
                pass
        out.flush()
        os.replace(tmp, npy)  # complete before the json says so
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(meta, {"count": len(paths), "failed": sorted(failed),
                             "alignment": embedder.settings()})
    log.info("cut %d aligned chips into %s (%d unreadable)", len(paths), npy, len(failed))
    ok = np.ones(len(paths), bool)
    ok[failed] = False
    return Chips(np.load(npy, mmap_mode="r"), ok, key, npy)


def cached_array(path: Path, shape: tuple[int, ...], dtype: Any, fill: Any,
                 progress_desc: str = "cache", progress: bool = True,
                 batch: int = 64) -> np.ndarray:
    """A ``.npy`` at ``path`` (memmap), made on first use by ``fill(start, stop) -> array``
    over rows ``0..shape[0]`` in ``batch``-row chunks (written to a temporary file, renamed
    when complete)."""

    if path.is_file():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == shape:
            return arr
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-{os.getpid()}")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for start in tqdm(range(0, shape[0], batch), desc=progress_desc, unit="batch",
                          disable=not progress):
            stop = min(shape[0], start + batch)
            out[start:stop] = fill(start, stop)
        out.flush()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
