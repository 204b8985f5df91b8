"""A FAISS vector index over a gallery, stored in the gallery folder beside its embeddings.

Two *views* of a gallery are indexed: ``centroids`` (one unit vector per identity, for the
``centroid`` method) and ``embeddings`` (every enrolled vector, for ``knn`` and ``topk``).
The index only proposes candidates; :class:`celebface.gallery.matching.GalleryMatcher`
rescores them exactly, so with an exact index (``flat``) names and scores are those of a
brute-force search, and an approximate one (``hnsw``, ``ivf``) can only miss a candidate.

Kinds: ``flat`` (``IndexFlatIP``, exact), ``hnsw`` (``IndexHNSWFlat``, graph, no training),
``ivf`` (``IndexIVFFlat``, k-means cells, trained on the vectors), ``auto`` (``flat`` up to
:attr:`IndexConfig.flat_max` vectors, ``ivf`` past it: benchmarks/results/index.md measured
it at 1M vectors, p50 < 2 ms and recall@1 1.0 with nprobe 64, built 20x faster than HNSW).

Files: ``index-<view>-<generation>.faiss``, named in ``gallery.json`` under ``"index"`` with
their own checksum and the checksum of the embeddings file they were built from, written
before the manifest (whose rename commits them). On load a missing, damaged or stale index
is rebuilt (with a log line), never trusted. ``faiss`` is imported only when an index is used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from celebface.errors import CelebfaceError, InputError
from celebface.io import atomic_write_bytes

log = logging.getLogger(__name__)

KINDS = ("auto", "flat", "hnsw", "ivf")
VIEWS = ("centroids", "embeddings")


class VectorIndexError(CelebfaceError, RuntimeError):
    """The vector index cannot be used (faiss missing, unknown kind)."""


@dataclass(frozen=True)
class IndexConfig:
    """How indexes are built. ``auto`` is exact up to ``flat_max`` vectors, IVF past it.

    ``hnsw_m``/``ef_construction``/``ef_search`` trade build time and memory for recall
    (benchmarks/index.py); ``ivf_nlist`` 0 means ``4 * sqrt(n)`` cells, ``ivf_nprobe`` of them
    are searched. ``threads``: FAISS's OpenMP threads (0: FAISS's default, every core); one
    by default, since a query or a few at a time are faster without OpenMP (30 ms against 1 ms
    for a flat search of 20,000 vectors on a busy 2-core machine); more build big indexes
    faster.
    """

    kind: str = "auto"
    flat_max: int = 50_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    ivf_nlist: int = 0
    ivf_nprobe: int = 64
    threads: int = 1


@functools.cache
def has_faiss() -> bool:
    """Whether FAISS is installed (without it, galleries are searched exactly)."""

    return importlib.util.find_spec("faiss") is not None


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise VectorIndexError("faiss is not installed: pip install faiss-cpu") from None
    return faiss


def resolve_kind(kind: str, n: int, config: IndexConfig | None = None) -> str:
    """The concrete kind ``kind`` means for ``n`` vectors."""
    config = config or IndexConfig()
    if kind not in KINDS:
        raise VectorIndexError(f"unknown index kind {kind!r}: choose {', '.join(KINDS)}")
    if kind == "auto":
        return "flat" if n <= config.flat_max else "ivf"
    if kind == "ivf" and n < 1024:  # too few vectors to train cells
        return "flat"
    return kind


class VectorIndex:
    """A FAISS inner-product index of unit vectors; row ``i`` of what was added is id ``i``."""

    def __init__(self, index: Any, kind: str, config: IndexConfig | None = None):
        self.index, self.kind = index, kind
        self.config = config or IndexConfig()
        self._tune()

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto",
              config: IndexConfig | None = None) -> VectorIndex:
        """Index ``vectors`` (``(n, d)`` float32, unit length) with ``kind``."""
        config = config or IndexConfig()
        faiss = _faiss()
        if config.threads:
            faiss.omp_set_num_threads(config.threads)  # process-wide, for FAISS only
        vectors = np.ascontiguousarray(vectors, np.float32)
        n, d = vectors.shape
        kind = resolve_kind(kind, n, config)
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
        else:
            nlist = config.ivf_nlist or max(1, int(4 * np.sqrt(n)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist,
                                       faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(n, min(n, 64 * nlist), replace=False)]
            index.train(sample)
        index.add(vectors)
        return cls(index, kind, config)

    def _tune(self) -> None:
        faiss = _faiss()
        if self.config.threads:
            faiss.omp_set_num_threads(self.config.threads)
        if self.kind == "hnsw":
            faiss.downcast_index(self.index).hnsw.efSearch = self.config.ef_search
        elif self.kind == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = self.config.ivf_nprobe

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, ids)``, each ``(len(queries), k)``, best first; id -1 = none."""
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        sims, ids = self.index.search(q, max(1, min(int(k), len(self))))
        return sims, ids

    def to_bytes(self) -> bytes:
        data: np.ndarray = _faiss().serialize_index(self.index)
        return data.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str, config: IndexConfig | None = None) -> VectorIndex:
        faiss = _faiss()
        return cls(faiss.deserialize_index(np.frombuffer(data, np.uint8)), kind, config)


# ------------------------------------------------------------------ gallery files
class Gallery(Protocol):
    """What the index files need of a gallery (:class:`celebface.gallery.store.Gallery`;
    named here by its shape, so the store imports this module and not the reverse)."""

    embeddings: np.ndarray
    info: dict[str, Any]
    path: Path | None
    checksum: str | None
    index_meta: dict[str, Any] | None

    def centroids(self) -> np.ndarray: ...


def view_vectors(gallery: Gallery, view: str) -> np.ndarray:
    """The vectors a view indexes (float32, unit length)."""
    if view == "centroids":
        return gallery.centroids().astype(np.float32)
    if view == "embeddings":
        return gallery.embeddings.astype(np.float32)
    raise InputError(f"unknown index view {view!r}: choose {', '.join(VIEWS)}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows_sha256(vectors: np.ndarray) -> str:
    return _sha256(np.ascontiguousarray(vectors, np.float32).tobytes())


def write_indexes(folder: Path, gallery: Gallery, generation: int, embeddings_sha256: str,
                  old: dict[str, Any] | None, config: IndexConfig | None = None
                  ) -> dict[str, Any]:
    """Write both views' index files for a save; returns the manifest's ``"index"`` entry.

    An index of the previous save is extended instead of rebuilt when its vectors are a
    prefix of the new ones (identities or photos only added) and its kind still applies (IVF
    cells stay those trained at the last rebuild).
    """
    kind = str(gallery.info.get("index", "auto"))
    config = config or IndexConfig()
    files: dict[str, Any] = {}
    if kind == "auto" and not has_faiss():  # exact search without an index file
        log.warning("%s: faiss is not installed, so no vector index is written; people are "
                    "matched by exact search (pip install faiss-cpu for large galleries)",
                    folder)
        return {"kind": kind, "files": files}
    for view in VIEWS:
        vectors = view_vectors(gallery, view)
        want = resolve_kind(kind, len(vectors), config)
        index = _extend(folder, old, view, vectors, want, config)
        if index is None:
            index = VectorIndex.build(vectors, want, config) if len(vectors) else None
        if index is None:
            continue
        name = f"index-{view}-{generation:06d}.faiss"
        data = index.to_bytes()
        atomic_write_bytes(folder / name, data)
        files[view] = {"file": name, "kind": index.kind, "sha256": _sha256(data),
                       "count": len(index), "rows_sha256": _rows_sha256(vectors),
                       "embeddings_sha256": embeddings_sha256}
    return {"kind": kind, "files": files}


def _extend(folder: Path, old: dict[str, Any] | None, view: str, vectors: np.ndarray,
            kind: str, config: IndexConfig) -> VectorIndex | None:
    entry = ((old or {}).get("files") or {}).get(view)
    if not entry or entry.get("kind") != kind:
        return None
    count = int(entry.get("count", -1))
    if not 0 < count <= len(vectors) or _rows_sha256(vectors[:count]) != entry.get("rows_sha256"):
        return None
    index = _read(folder, entry, config)
    if index is None or len(index) != count:
        return None
    index.add(vectors[count:])
    log.debug("%s index extended by %d vectors", view, len(vectors) - count)
    return index


def _read(folder: Path, entry: dict[str, Any], config: IndexConfig) -> VectorIndex | None:
    path = folder / str(entry.get("file", ""))
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if _sha256(data) != entry.get("sha256"):
        return None
    return VectorIndex.from_bytes(data, str(entry.get("kind")), config)


def load_index(gallery: Gallery, view: str, config: IndexConfig | None = None) -> VectorIndex:
    """The gallery's stored index of ``view``, checked against the gallery; rebuilt (in
    memory, with a log line) when it is missing, damaged or stale."""
    config = config or IndexConfig()
    meta = gallery.index_meta or {}
    entry = (meta.get("files") or {}).get(view)
    vectors = view_vectors(gallery, view)
    why = "no stored index"
    if entry and gallery.path is not None:
        if (entry.get("embeddings_sha256") != gallery.checksum
                or entry.get("rows_sha256") != _rows_sha256(vectors)):
            why = "index was built from other embeddings (stale)"
        elif (index := _read(gallery.path, entry, config)) is None:
            why = f"{entry.get('file')} missing or damaged"
        elif len(index) != len(vectors) or index.dim != vectors.shape[1]:
            why = "index size does not match the gallery"
        else:
            return index
    kind = str(meta.get("kind") or gallery.info.get("index", "auto"))
    if gallery.path is not None:
        log.warning("%s: %s index rebuilt: %s", gallery.path, view, why)
    return VectorIndex.build(vectors, kind, config)


def top_identities(matcher: Any, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best identities of each unit query for a ``GalleryMatcher``: candidates from
    its index, rescored exactly by ``matcher.identity_scores``. The search widens until the
    n-th best exact score is at least the last hit's similarity (an identity with no hit
    cannot score higher), so an exact index gives exactly the brute-force answer."""
    index: VectorIndex = matcher.index
    labels = (np.arange(len(matcher.names)) if matcher.method == "centroid"
              else matcher._gallery.labels)
    # enough neighbours for n identities, and topk's k photos each, in the first search
    first = n if matcher.method == "centroid" else max(16, 4 * n * matcher.k)
    sims, ids = index.search(queries, first)
    top = np.zeros((len(queries), n), np.int64)
    scores = np.zeros((len(queries), n), np.float32)
    for row, q in enumerate(queries):
        s, h, k = sims[row], ids[row], first
        while True:
            valid = h >= 0
            cand = np.unique(labels[h[valid]])
            exact = matcher.identity_scores(q, cand)
            best = np.argsort(-exact, kind="stable")[:n]
            last = s[valid][-1] + matcher.max_boost if valid.any() else np.inf
            if k >= len(index) or (len(best) == n and exact[best[-1]] >= last):
                break
            k = min(4 * k, len(index))
            s, h = (a[0] for a in index.search(q[None], k))
        if len(best) < n:  # an approximate index returned too few: score everyone
            cand = np.arange(len(matcher.names))
            exact = matcher.identity_scores(q, cand)
            best = np.argsort(-exact, kind="stable")[:n]
        top[row, : len(best)], scores[row, : len(best)] = cand[best], exact[best]
    return top, scores
