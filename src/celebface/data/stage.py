"""One protocol for stage output folders: each stage writes ``celebface.json`` last, with its
kind, format version, a fingerprint of its settings and its inputs; loaders route by ``kind``.

Folders written before this protocol have no ``celebface.json``; :func:`folder_kind` then
recognises them by their marker files, so they keep working.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from celebface.errors import InputError
from celebface.io import atomic_write_json

STAGE_FILE = "celebface.json"
FORMAT_VERSION = 1
#: kind -> the marker file of a folder of that kind written before ``celebface.json``
LEGACY_MARKERS = (
    ("embeddings", "face_embeddings.npy"),
    ("pack", "all_images.npy"),
    ("gallery", "gallery.json"),
    ("model", "model.json"),
    ("crops", "crop.json"),
    ("synth", "synth.json"),
    ("report", "metrics.json"),
)
KINDS = ("photos", *(k for k, _ in LEGACY_MARKERS))


def fingerprint(settings: dict[str, Any]) -> str:
    """A short stable hash of settings (JSON, keys sorted)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def write_stage(
    folder: str | Path, kind: str, settings: dict[str, Any], inputs: list[str] | None = None
) -> dict[str, Any]:
    """Write ``folder/celebface.json`` (atomically; call it after everything else)."""
    if kind not in KINDS:
        raise InputError(f"unknown stage kind {kind!r}")
    doc = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "settings_fingerprint": fingerprint(settings),
        "inputs": [str(Path(i).resolve()) for i in (inputs or [])],
    }
    atomic_write_json(Path(folder) / STAGE_FILE, doc)
    return doc


def read_stage(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``celebface.json``, or ``None`` (absent or unreadable)."""
    try:
        doc = json.loads((Path(folder) / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") in KINDS else None


def folder_kind(folder: str | Path) -> str:
    """What wrote ``folder``: its ``celebface.json`` kind, else its marker files, else
    ``photos`` (a plain folder of people)."""
    doc = read_stage(folder)
    if doc is not None:
        return str(doc["kind"])
    folder = Path(folder)
    for kind, marker in LEGACY_MARKERS:
        if (folder / marker).is_file():
            if kind in ("crops", "synth") and not (folder / "manifest.csv").is_file():
                continue
            return kind
    # a manifest of face boxes without its settings file: read as a crop output
    return "crops" if has_box_manifest(folder) else "photos"


#: A box dataset's manifest and the columns that make it one (synth and crop write them).
MANIFEST = "manifest.csv"
BOX_COLUMNS = frozenset({"identity", "x1", "y1", "x2", "y2"})


def has_box_manifest(path: str | Path) -> bool:
    """Whether ``path`` holds a ``manifest.csv`` with face boxes (as synth and crop write)."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    with open(manifest, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return set(header) >= BOX_COLUMNS and ("output" in header or "source" in header)
