"""Grouping face embeddings into people without knowing how many there are."""

from __future__ import annotations

import numpy as np

from celebface.errors import InputError
from celebface.recognition.base import l2_normalize

METHODS = ("chinese_whispers", "agglomerative")
SINGLETON = -1


def _chinese_whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """dlib's Chinese whispers on the graph linking faces with cosine >= ``threshold``."""
    import dlib

    sims = vectors @ vectors.T
    a, b = np.nonzero(np.triu(sims >= threshold, 1))
    edges = [(int(i), int(j)) for i, j in zip(a, b, strict=True)]
    edges += [(i, i) for i in range(len(vectors))]  # every face is a node, linked or not
    labels = dlib.chinese_whispers(edges)
    return np.asarray(labels, np.int64)


def _agglomerative(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage agglomerative clustering cut at cosine distance ``1 - threshold``."""
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=1.0 - threshold)
    return model.fit_predict(vectors).astype(np.int64)


def cluster_vectors(
    vectors: np.ndarray, threshold: float, method: str = "agglomerative", min_size: int = 2
) -> np.ndarray:
    """A cluster index per vector (0 = the largest cluster, ties by first member), or
    :data:`SINGLETON` (-1) for faces in clusters smaller than ``min_size``.

    ``threshold``: the cosine at which two faces are linked (``chinese_whispers``) or below
    which two groups' average similarity stops them merging (``agglomerative``).
    """
    if method not in METHODS:
        raise InputError(f"unknown clustering method {method!r}: choose {', '.join(METHODS)}")
    vectors = l2_normalize(np.asarray(vectors, np.float32).reshape(len(vectors), -1))
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    if len(vectors) == 1:
        raw = np.zeros(1, np.int64)
    else:
        raw = (_chinese_whispers if method == "chinese_whispers" else _agglomerative)(
            vectors, threshold)
    ids, first, counts = np.unique(raw, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda k: (-counts[k], first[k]))
    out = np.full(len(raw), SINGLETON, np.int64)
    nxt = 0
    for k in order:
        if counts[k] >= min_size:
            out[raw == ids[k]] = nxt
            nxt += 1
    return out


def centre_similarity(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine of each vector to its cluster's mean direction (1.0 for singletons)."""
    vectors = l2_normalize(np.asarray(vectors, np.float32))
    out = np.ones(len(vectors), np.float32)
    for c in np.unique(labels[labels >= 0]):
        members = labels == c
        centre = l2_normalize(vectors[members].mean(0))
        out[members] = vectors[members] @ centre
    return out


def bcubed(truth: list[str] | np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """BCubed (precision, recall) of cluster ``labels`` against true identities; each
    singleton (-1) is its own cluster."""
    truth = np.asarray(truth)
    labels = np.asarray(labels).copy()
    single = labels < 0
    labels[single] = labels.max(initial=-1) + 1 + np.arange(int(single.sum()))
    same_c = labels[:, None] == labels[None, :]
    same_t = truth[:, None] == truth[None, :]
    both = (same_c & same_t).sum(1)
    return float((both / same_c.sum(1)).mean()), float((both / same_t.sum(1)).mean())
