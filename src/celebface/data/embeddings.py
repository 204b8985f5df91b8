"""An embeddings folder (``celebface embed``): one vector per image, with its label and source.

Files: ``face_embeddings.npy`` (N x D float32), ``labels.npy``, ``paths.json`` (``paths.txt``
in older folders), ``label_mapping.json``, ``embedding.json`` (how the vectors were made) and,
when the data had splits, ``splits.txt`` (one split a row). Without ``splits.txt`` the
folder's own ``splits.csv``, else its source dataset's, names the splits.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data.items import DatasetError
from celebface.errors import reading
from celebface.io import read_splits
from celebface.io.checksum import checksum_matches
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
        meta = json.loads((path / "embedding.json").read_text(encoding="utf-8"))
        sums = meta.get("sha256") if isinstance(meta, dict) else None
        vectors = _array(path / VECTORS, sums)
        labels = _array(path / "labels.npy", sums)
        paths = read_paths(path)
        names = label_names(json.loads((path / "label_mapping.json").read_text("utf-8")))
    if not (len(vectors) == len(labels) == len(paths)):
        raise DatasetError(f"{path}: embeddings, labels and paths have different lengths")
    check_values(path, vectors, labels, len(names))
    splits = _splits(path, meta, [(names[int(lab)], Path(p).name)
                                  for lab, p in zip(labels, paths, strict=True)])
    return vectors, labels, paths, names, meta, splits


def _array(file: Path, sums: dict[str, str] | None) -> np.ndarray:
    """A ``.npy`` file as a plain array (never a pickle), checked against its sha256 when the
    folder recorded one (folders written before checksums are only value-checked)."""

    data = file.read_bytes()
    expected = sums.get(file.name) if isinstance(sums, dict) else None
    if not checksum_matches(file, expected, data):
        raise DatasetError(f"{file}: does not match the sha256 recorded in embedding.json "
                           "(changed or damaged); embed the data again")
    return np.load(io.BytesIO(data), allow_pickle=False)


def check_values(path: Path, vectors: np.ndarray, labels: np.ndarray, n_names: int) -> None:
    """Refuse (:class:`DatasetError`) vectors that are not a finite N x D float table, or
    labels that are not whole numbers naming one of the ``n_names`` people."""

    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise DatasetError(f"{path / VECTORS}: not a table of float vectors "
                           f"(shape {vectors.shape}, {vectors.dtype})")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise DatasetError(f"{path / VECTORS}: {int(bad.sum())} vector(s) hold NaN or "
                           f"infinite values (first: row {int(np.argmax(bad))}); damaged file")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path / 'labels.npy'}: not a list of whole-number labels "
                           f"(shape {labels.shape}, {labels.dtype})")
    out = (labels < 0) | (labels >= n_names)
    if out.any():
        raise DatasetError(f"{path / 'labels.npy'}: {int(out.sum())} label(s) out of range "
                           f"(e.g. {int(labels[out][0])}; label_mapping.json names {n_names} "
                           "people)")


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
