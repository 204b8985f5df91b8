"""What a labelled face dataset is made of: :class:`FaceItem` (one image: whose face, its
split, where the face is when known), :class:`FaceDataset` (the items, with a pack's images or
an embeddings folder's vectors), the errors of an unusable dataset, and the readers shared by
every kind (:func:`list_dataset`, :func:`crop_geometry`). :mod:`celebface.data.dataset` opens a
folder of any kind into these.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from celebface import errors
from celebface.data.crops import face_from_row, read_manifest
from celebface.data.splits import stratified_splits
from celebface.errors import InputError, MissingFileError
from celebface.geometry import crop_matrix, map_face
from celebface.io import read_image
from celebface.io.datasets import UNSUPPORTED_IMAGE_EXTENSIONS, is_image_file, report_unsupported
from celebface.types import Face

log = logging.getLogger(__name__)

#: the stage kinds (:data:`celebface.data.stage.KINDS`) that are datasets of people
KINDS = ("photos", "crops", "pack", "embeddings", "synth")


class DatasetError(InputError):
    """A dataset folder that cannot be used; the message names it and the reason."""


class MissingDatasetError(DatasetError, MissingFileError):
    """A dataset folder (or a file it needs) that is not there."""


class NotAFolderError(DatasetError, errors.NotAFolderError):
    """A dataset path that is a file, not a folder."""


@dataclass(frozen=True)
class FaceItem:
    """One labelled image. ``face`` is the face's box and landmarks in this image's pixels
    (``None``: not known); ``row`` is its row in a pack's ``all_images.npy`` or an embeddings
    folder's vectors (else ``None``; ``path`` is the image file); ``size`` is the image's
    ``(width, height)`` when a box dataset records it."""

    identity: str
    path: str
    split: str | None = None
    face: Face | None = field(default=None, compare=False)
    row: int | None = None
    size: tuple[int, int] | None = field(default=None, compare=False)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """The face box ``(x1, y1, x2, y2)`` in this image's pixels, when known."""
        return self.face.box if self.face is not None else None

    @property
    def key(self) -> tuple[str, str]:
        """``(identity, filename)``, the key of ``splits.csv``."""
        return (self.identity, Path(self.path).name)


@dataclass
class FaceDataset:
    """The items of a dataset, in a stable order, with their label order (sorted names;
    an embeddings folder's own). ``vectors`` and ``meta`` (its ``embedding.json``) are an
    embeddings folder's; a pack's ``meta`` says how its images were made square (``fit``)."""

    root: Path
    kind: str
    items: list[FaceItem]
    names: list[str]
    array: str | None = None  # a pack's all_images.npy
    vectors: np.ndarray | None = field(default=None, repr=False)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        return np.asarray([index[it.identity] for it in self.items], dtype=np.int64)

    @property
    def identities(self) -> list[str]:
        return [it.identity for it in self.items]

    def split(self, name: str | None) -> FaceDataset:
        """Only the items of split ``name`` (all for ``None``); label order unchanged."""
        if name is None:
            return self
        kept = [it for it in self.items if it.split == name]
        if not kept:
            if all(it.split is None for it in self.items):
                raise DatasetError(f"{self.root}: no images in split {name!r}: no split is "
                                   "recorded (no splits.csv)")
            have = sorted({str(it.split) for it in self.items})
            raise DatasetError(f"{self.root}: no images in split {name!r} (splits: "
                               f"{', '.join(have)}; a folder's splits come from its splits.csv)")
        return replace(self, items=kept)

    def with_splits(self, seed: int = 0, val_fraction: float = 0.15,
                    test_fraction: float = 0.0) -> FaceDataset:
        """Every item with a split, the one split-fill policy of every stage (pack, train,
        evaluate): a recorded split (``splits.csv``) always wins; an item it does not list
        goes to train; when none is recorded, the stratified split of ``seed`` and the
        fractions (:func:`celebface.data.splits.stratified_splits`). Unlisted -> train keeps
        results reproducible: an item's split never depends on which other photos the folder
        holds, so adding photos moves no recorded or earlier one, and the val/test rows stay
        exactly those ``splits.csv`` names."""
        given = [it.split for it in self.items]
        if not any(given):

            filled = stratified_splits(self.labels, val_fraction, test_fraction, seed)
        else:
            missing = sum(s is None for s in given)
            if missing:
                log.warning("%s: %d of %d samples have no split, put in train", self.root,
                            missing, len(given))
            filled = [s or "train" for s in given]
        return replace(self, items=[replace(it, split=s)
                                    for it, s in zip(self.items, filled, strict=True)])

    def vectors_of(self, items: list[FaceItem]) -> np.ndarray:
        """The stored vectors of ``items`` (an embeddings folder's)."""
        if self.vectors is None:
            raise DatasetError(f"{self.root}: a {self.kind} folder holds no embeddings")
        rows = [it.row for it in items if it.row is not None]
        if len(rows) < len(items):
            raise DatasetError(f"{self.root}: an item without a row of the embeddings")
        return np.asarray(self.vectors[rows], np.float32)

    @property
    def images(self) -> np.ndarray | None:
        """A pack's images, ``(N, S, S, 3)`` uint8, memory-mapped (else ``None``)."""
        return _memmap(self.array) if self.array is not None else None

    def load(self, item: FaceItem) -> np.ndarray:
        """The item's RGB uint8 image (``ImageReadError`` for a bad file)."""
        if item.row is not None and self.array is not None:
            return np.ascontiguousarray(_memmap(self.array)[item.row])
        return read_image(item.path).rgb


def list_dataset(root: str | Path) -> list[FaceItem]:
    """The images of ``root/<identity>/*`` as items (no split, no face), sorted by identity
    then file name. A missing ``root`` or a file is a :class:`DatasetError`; empty and
    unreadable identity folders are logged and skipped."""
    root = Path(root)
    if not root.exists():
        raise MissingDatasetError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotAFolderError(f"{root}: not a folder")
    items: list[FaceItem] = []
    others: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            listed = list(folder.iterdir())
        except OSError as exc:  # unreadable person folder: the others go on
            log.error("%s: cannot list identity folder (%s), skipped", folder,
                      exc.strerror or exc)
            continue
        files = sorted(p for p in listed if is_image_file(p))
        others += [p for p in listed if p.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS]
        if not files:
            log.warning("%s: identity folder has no images, skipped", folder)
        items.extend(FaceItem(folder.name, str(f)) for f in files)
    report_unsupported(root, others)
    return items


@functools.lru_cache(maxsize=8)
def _memmap_cached(path: str, mtime_ns: int) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _memmap(path: str) -> np.ndarray:
    return _memmap_cached(path, Path(path).stat().st_mtime_ns)


def crop_geometry(crops: str | Path) -> dict[str, Face]:
    """``{output (relative path): face in crop pixels}`` of a ``celebface crop`` folder."""

    crops = Path(crops)
    try:
        settings = json.loads((crops / "crop.json").read_text(encoding="utf-8"))["settings"]
        margin, size = float(settings["margin"]), int(settings["size"])
        align = bool(settings.get("align", False))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: crop.json unreadable (%s); faces will be located afresh", crops, exc)
        return {}
    out = {}
    for row in read_manifest(crops):
        try:
            face = face_from_row(row)
            out[row["output"]] = map_face(face, crop_matrix(face, margin, size, align))
        except (ValueError, KeyError) as exc:
            log.warning("%s: manifest row for %s unusable (%s)", crops, row.get("output"), exc)
    return out
