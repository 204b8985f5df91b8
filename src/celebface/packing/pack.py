"""Packing a folder of face crops into arrays: ``celebface pack DATA DST``."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from celebface import validate
from celebface.data import FaceDataset, FaceItem, open_dataset
from celebface.data.dataset import DatasetError
from celebface.data.pack import PACK_FILES
from celebface.data.stage import write_stage
from celebface.errors import InputError
from celebface.io import ImageReadError, atomic_write, atomic_write_json, atomic_write_text
from celebface.io.pathlist import csv_text, write_paths

log = logging.getLogger(__name__)

FITS = ("stretch", "pad", "crop")
__all__ = ["FITS", "PACK_FILES", "PackConfig", "PackSummary", "fit_square", "pack_dataset"]


@dataclass
class PackConfig:
    """``size``: side of the square images; ``fit``: how a non-square crop becomes square
    (``stretch`` it, ``pad`` it with black borders, or ``crop`` its centre); split fractions
    and ``seed`` apply only when DATA has no ``splits.csv``."""

    size: int = 224
    fit: str = "stretch"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise InputError(f"unknown fit {self.fit!r}: choose one of {', '.join(FITS)}")
        validate.in_range("size", self.size, 8, kind=int)
        validate.nonneg_int("workers", self.workers)
        validate.fraction("val_fraction", self.val_fraction)
        validate.fraction("test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise validate.ConfigError("val_fraction + test_fraction",
                                       "must be less than 1 (some images must train)")


@dataclass
class PackSummary:
    count: int
    skipped: list[str]
    identities: int
    splits: dict[str, int]
    dst: str


def fit_square(rgb: np.ndarray, size: int, fit: str = "stretch") -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` x ``size``."""

    img = Image.fromarray(rgb)
    w, h = img.size
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif fit == "pad":
        side = max(w, h)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def _load(dataset: FaceDataset, item: FaceItem, size: int, fit: str) -> np.ndarray | str:
    try:
        return fit_square(dataset.load(item), size, fit)
    except ImageReadError as exc:
        return str(exc)


def pack_dataset(
    data: str | Path, dst: str | Path, config: PackConfig | None = None, **overrides: Any
) -> PackSummary:
    """Pack ``data`` (any dataset :func:`~celebface.data.open_dataset` reads but embeddings)
    into ``dst`` (see :data:`PACK_FILES`), with its splits (:meth:`FaceDataset.with_splits`:
    a ``splits.csv`` row wins, an unlisted image trains; no ``splits.csv``: the seeded
    stratified split of the config's fractions).

    Images go through a memory map, so memory stays small for any size of dataset. Each file is
    written atomically; ``pack.json`` is removed first and written last, so a folder with it
    holds one complete pack (a crash in between leaves no ``pack.json``, and loading says so).
    Unreadable files are logged with the reason and skipped.
    """

    config = config or PackConfig()
    if overrides:
        config = PackConfig(**{**asdict(config), **overrides})
    data, dst = Path(data), Path(dst)
    dataset = open_dataset(data)
    if dataset.kind == "embeddings":
        raise DatasetError(f"{data}: embeddings, not images; give the images they came from")
    dataset = dataset.with_splits(config.seed, config.val_fraction, config.test_fraction)
    items, names = dataset.items, dataset.names
    index = {n: i for i, n in enumerate(names)}
    splits = [str(it.split) for it in items]
    dst.mkdir(parents=True, exist_ok=True)

    s = config.size
    tmp_images = dst / f".all_images.npy.{os.getpid()}.tmp"
    tmp_small = dst / f".all_images.npy.{os.getpid()}.small.tmp"
    images = _memmap(tmp_images, (len(items), s, s, 3), dst)
    kept: list[int] = []
    skipped: list[str] = []
    workers = config.workers or min(4, os.cpu_count() or 1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
            total=len(items), unit="img", desc="pack", disable=not config.progress
        ) as bar:
            for start in range(0, len(items), 256):  # bounded: results never pile up
                block = items[start:start + 256]
                for i, result in enumerate(pool.map(_load, [dataset] * len(block), block,
                                                    [s] * len(block),
                                                    [config.fit] * len(block)), start):
                    if isinstance(result, str):
                        log.warning("skipped %s", result)
                        skipped.append(result)
                    else:
                        images[len(kept)] = result
                        kept.append(i)
                bar.update(len(block))
        images.flush()
        del images
        if len(kept) < len(items):  # shrink to the rows kept
            full = np.load(tmp_images, mmap_mode="r")
            small = _memmap(tmp_small, (len(kept), s, s, 3), dst)
            for start in range(0, len(kept), 1024):
                stop = min(start + 1024, len(kept))
                small[start:stop] = full[start:stop]
            small.flush()
            del small, full
            os.replace(tmp_small, tmp_images)
        (dst / "pack.json").unlink(missing_ok=True)  # the pack is incomplete from here
        _write_small_files(dst, items, kept, names, index, splits, skipped)
        os.replace(tmp_images, dst / "all_images.npy")
        atomic_write_json(dst / "pack.json", {**asdict(config), "count": len(kept),
                                              "skipped": len(skipped), "identities": len(names)})
        write_stage(dst, "pack", asdict(config), [str(data)])
    finally:
        tmp_images.unlink(missing_ok=True)
        tmp_small.unlink(missing_ok=True)
    counts: dict[str, int] = defaultdict(int)
    for i in kept:
        counts[splits[i]] += 1
    log.info("packed %d images of %d identities into %s (%d skipped)", len(kept), len(names),
             dst, len(skipped))
    return PackSummary(len(kept), skipped, len(names), dict(counts), str(dst))


def _memmap(path: Path, shape: tuple[int, ...], dst: Path) -> np.memmap:
    """A new uint8 ``.npy`` memory map whose disk space is reserved up front: a full disk is
    an ``OSError`` naming ``dst`` here, not a SIGBUS crash when a page is written later."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    except OSError as exc:
        del array
        raise OSError(exc.errno, f"{exc.strerror} (packing {int(np.prod(shape)):,} bytes)",
                      str(dst)) from None
    return array


def _write_small_files(
    dst: Path,
    items: list[FaceItem],
    kept: list[int],
    names: list[str],
    index: dict[str, int],
    splits: list[str],
    skipped: list[str],
) -> None:
    with atomic_write(dst / "all_labels.npy") as fh:
        np.save(fh, np.asarray([index[items[i].identity] for i in kept], dtype=np.int64))
    atomic_write_json(dst / "label_mapping.json", {str(i): n for i, n in enumerate(names)})
    with atomic_write(dst / "label_mapping.npy") as fh:
        np.save(fh, np.asarray(names))
    write_paths(dst, (Path(items[i].path).absolute() for i in kept))
    atomic_write_text(dst / "splits.csv", csv_text(
        [["split", "identity", "filename"],
         *([splits[i], *items[i].key] for i in kept)]))
    atomic_write_text(dst / "errors.txt", "".join(f"{e}\n" for e in skipped))
