"""Which files are images, and a dataset's ``splits.csv`` (listing a dataset's items:
:func:`celebface.data.list_dataset`)."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, TypeVar

from celebface.errors import InputError

log = logging.getLogger(__name__)


class _Identified(Protocol):
    @property
    def identity(self) -> str: ...


T = TypeVar("T", bound=_Identified)

#: Image types a folder scan reads: those a direct path reads too (Pillow decodes them; a GIF
#: is read as its first frame; AVIF needs a Pillow built with it, as the wheels are).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                              ".avif"})


#: Image types celebface does not read: files of these are reported when a folder is listed.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset({
    ".heic", ".heif", ".jxl", ".jp2", ".ico", ".svg", ".psd", ".raw", ".dng",
    ".cr2", ".nef", ".arw",
})


def is_image_file(path: Path) -> bool:
    suffix_ok = path.suffix.lower() in IMAGE_EXTENSIONS
    return suffix_ok and not path.name.startswith(".") and path.is_file()


def report_unsupported(root: str | Path, paths: Iterable[Path]) -> int:
    """Log one warning naming how many of ``paths`` are images of a type celebface does not
    read (``.gif``, ``.heic``, ...), so they are not skipped without a word; their count."""
    kinds = Counter(p.suffix.lower() for p in paths
                    if p.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS
                    and not p.name.startswith("."))
    n = sum(kinds.values())
    if n:
        what = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        log.warning("%s: %d file(s) skipped, not a supported image type (%s; supported: %s)",
                    root, n, what, " ".join(sorted(IMAGE_EXTENSIONS)))
    return n


def first_per_identity(items: list[T], n: int) -> list[T]:
    """The first ``n`` items of each identity (items have an ``identity``), order kept."""
    counts: dict[str, int] = {}
    kept = []
    for it in items:
        counts[it.identity] = counts.get(it.identity, 0) + 1
        if counts[it.identity] <= n:
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
