"""Folder-per-identity datasets and their ``splits.csv``."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from celebface.errors import InputError, MissingFileError, NotAFolderError

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class DatasetItem:
    """One image of a folder-per-identity dataset."""

    path: Path
    identity: str

    @property
    def key(self) -> tuple[str, str]:
        """``(identity, filename)``, the key used by ``splits.csv``."""
        return (self.identity, self.path.name)


def is_image_file(path: Path) -> bool:
    suffix_ok = path.suffix.lower() in IMAGE_EXTENSIONS
    return suffix_ok and not path.name.startswith(".") and path.is_file()


def list_dataset(root: str | Path) -> list[DatasetItem]:
    """All images of ``root/<identity>/*``, sorted by identity then file name.

    Raises ``FileNotFoundError``/``NotADirectoryError`` with a clear message when ``root`` is
    not a folder. Empty and unreadable identity folders are logged and skipped.
    """
    root = Path(root)
    if not root.exists():
        raise MissingFileError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotAFolderError(f"{root}: not a folder")
    items: list[DatasetItem] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            files = sorted(p for p in folder.iterdir() if is_image_file(p))
        except OSError as exc:  # unreadable person folder: the others go on
            log.error("%s: cannot list identity folder (%s), skipped", folder,
                      exc.strerror or exc)
            continue
        if not files:
            log.warning("%s: identity folder has no images, skipped", folder)
        items.extend(DatasetItem(f, folder.name) for f in files)
    return items


def first_per_identity(items: list[T], n: int) -> list[T]:
    """The first ``n`` items of each identity (items have an ``identity``), order kept."""
    counts: dict[str, int] = {}
    kept = []
    for it in items:
        counts[it.identity] = counts.get(it.identity, 0) + 1  # type: ignore[attr-defined]
        if counts[it.identity] <= n:  # type: ignore[attr-defined]
            kept.append(it)
    return kept


def read_splits(path: str | Path) -> dict[tuple[str, str], str]:
    """``splits.csv`` (columns ``split,identity,filename``) as ``{(identity, filename): split}``."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        missing = {"split", "identity", "filename"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return {(row["identity"], row["filename"]): row["split"] for row in reader}
