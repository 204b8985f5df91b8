"""Which files are images, and a dataset's ``splits.csv`` (listing a dataset's items:
:func:`celebface.data.list_dataset`)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TypeVar

from celebface.errors import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image_file(path: Path) -> bool:
    suffix_ok = path.suffix.lower() in IMAGE_EXTENSIONS
    return suffix_ok and not path.name.startswith(".") and path.is_file()


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
