"""The list of source paths beside packed images and embeddings, in a form any name survives.

``paths.json`` is a JSON list of strings: newlines, tabs and quotes in names are escaped, and
names that are not valid UTF-8 (kept by Python as surrogate escapes) are written as ``\\u``
escapes that load back to the same string, so ``os.fsencode`` gives the original bytes. The
older ``paths.txt`` (one path per line) is still read. :func:`csv_text` writes CSV rows that
hold names safely.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from celebface.errors import CelebfaceError
from celebface.io.atomic import TEXT_ENCODING, atomic_write_json

PATHS_FILE = "paths.json"
LEGACY_PATHS_FILE = "paths.txt"


class PathListError(CelebfaceError, ValueError):
    """A path list that cannot be read."""


def has_paths(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / PATHS_FILE).is_file() or (folder / LEGACY_PATHS_FILE).is_file()


def write_paths(folder: str | Path, paths: Iterable[str | Path]) -> Path:
    """Write ``folder/paths.json`` atomically (and drop an older ``paths.txt``)."""
    folder = Path(folder)
    atomic_write_json(folder / PATHS_FILE, [str(p) for p in paths], indent=None)
    (folder / LEGACY_PATHS_FILE).unlink(missing_ok=True)
    return folder / PATHS_FILE


def read_paths(folder: str | Path) -> list[str]:
    """The paths of ``folder/paths.json``, else of the older ``folder/paths.txt``."""
    folder = Path(folder)
    path = folder / PATHS_FILE
    if path.is_file():
        try:
            paths = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PathListError(f"{path}: damaged path list ({exc})") from None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise PathListError(f"{path}: not a JSON list of paths")
        return paths
    legacy = folder / LEGACY_PATHS_FILE
    text = legacy.read_text(**TEXT_ENCODING)
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """CSV lines (``\\n``-terminated) for rows that may hold any file name: Python's csv
    module leaves a lone carriage return unquoted with a ``\\n`` terminator, which splits the
    row when read back, so such rows are written fully quoted."""
    buf = io.StringIO()
    plain = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any("\r" in str(v) for v in row) else plain).writerow(row)
    return buf.getvalue()
