"""An embeddings folder (``celebface embed``): one vector per image, with its label and source.

Files: ``face_embeddings.npy`` (N x D float32), ``labels.npy``, ``paths.json`` (``paths.txt``
in older folders), ``label_mapping.json``, ``embedding.json`` (how the vectors were made) and,
when the data had splits, ``splits.txt`` (one split a row). Without ``splits.txt`` the
folder's own ``splits.csv``, else its source dataset's, names the splits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import reading
from celebface.io import read_splits
from celebface.io.pathlist import PATHS_FILE, has_paths, read_paths

log = logging.getLogger(__name__)

VECTORS = "face_embeddings.npy"
FILES = (VECTORS, "labels.npy", PATHS_FILE, "label_mapping.json", "embedding.json")
SPLITS_TXT = "splits.txt"


def missing_files(path: Path) -> list[str]:
    """The files of an embeddings folder that ``path`` lacks."""
    return [f for f in FILES if not (path / f).is_file()
            and not (f == PATHS_FILE and has_paths(path))]


def label_names(mapping: dict[str, str] | list[str]) -> list[str]:
    """Label order of a ``label_mapping.json`` (``{"0": name, ...}`` or a list)."""
    if isinstance(mapping, list):
        return [str(n) for n in mapping]
    return [mapping[str(i)] for i in range(len(mapping))]


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str],
                                         dict[str, Any], list[str | None]]:
    """``(vectors, labels, paths, label names, embedding.json, splits)`` of a folder whose
    files are all there (:func:`missing_files`); a split is ``None`` where none is known."""
    with reading(path, "embeddings folder"):
        vectors = np.load(path / VECTORS)
        labels = np.load(path / "labels.npy")
        paths = read_paths(path)
        names = label_names(json.loads((path / "label_mapping.json").read_text("utf-8")))
        meta = json.loads((path / "embedding.json").read_text(encoding="utf-8"))
    if not (len(vectors) == len(labels) == len(paths)):
        from celebface.data.dataset import DatasetError

        raise DatasetError(f"{path}: embeddings, labels and paths have different lengths")
    splits = _splits(path, meta, [(names[int(lab)], Path(p).name)
                                  for lab, p in zip(labels, paths, strict=True)])
    return vectors, labels, paths, names, meta, splits


def _splits(path: Path, meta: dict[str, Any], keys: list[tuple[str, str]]
            ) -> list[str | None]:
    if (path / SPLITS_TXT).is_file():
        rows = [s or None for s in (path / SPLITS_TXT).read_text(encoding="utf-8").splitlines()]
        if len(rows) == len(keys) and any(rows):
            return rows
    csv_path = source_splits_csv(path, meta)
    if csv_path is None:
        return [None] * len(keys)
    table = read_splits(csv_path)
    return [table.get(k) for k in keys]


def source_splits_csv(root: Path, meta: dict[str, Any]) -> Path | None:
    """The ``splits.csv`` that applies to an embeddings folder: its own, or its source's."""
    if (root / "splits.csv").is_file():
        return root / "splits.csv"
    for key in ("data", "source", "src"):
        src = meta.get(key)
        if isinstance(src, str) and (Path(src) / "splits.csv").is_file():
            return Path(src) / "splits.csv"
    return None
