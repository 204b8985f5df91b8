"""Grouping face embeddings into people without knowing how many there are.

Methods (``benchmarks/cluster.py`` measures them; results in benchmarks/results/cluster.md):

``rerank`` (the default)
    Average linkage on k-reciprocal re-ranked distances (Zhong et al., "Re-ranking person
    re-identification with k-reciprocal encoding", CVPR 2017): two faces are close when they
    share mutual nearest neighbours, so a face is judged by the company it keeps rather than by
    one cosine, which keeps look-alike people apart and a person's unusual photos together.
    Neighbourhoods mean little among few faces (a person with fewer photos than
    ``neighbours`` has strangers among the nearest neighbours of each of them), so until one
    of two groups has ``large`` faces they also need a mean cosine of ``threshold`` to merge,
    as in ``agglomerative``.
``agglomerative``
    Average linkage on cosine: groups merge while their mean cosine is at least ``threshold``.
``chinese_whispers``
    dlib's Chinese whispers on the graph linking faces with cosine >= ``threshold``; single
    links chain people together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.recognition.base import l2_normalize

METHODS = ("rerank", "agglomerative", "chinese_whispers")
SINGLETON = -1

NEIGHBOURS = 8  # k1 of the k-reciprocal neighbourhoods
EXPANSION = 6  # k2: a face's encoding is averaged over its nearest faces
ORIGINAL_WEIGHT = 0.3  # lambda: share of the plain distance in the re-ranked one
LARGE = 12  # a group this large is judged by re-ranked distances alone


def _nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k + 1`` nearest rows of each row of ``dist`` (a row is its own
    nearest), nearest first, ties by index."""
    n = len(dist)
    k = min(k, n - 1)
    part = np.argpartition(dist, k, axis=1)[:, : k + 1] if k < n - 1 else np.tile(
        np.arange(n), (n, 1))
    key = np.take_along_axis(dist, part, 1)
    order = np.lexsort((part, key), axis=1)
    return np.take_along_axis(part, order, 1)


def _reciprocal(nearest: np.ndarray) -> Any:
    """Sparse 0/1 matrix: ``[i, j]`` = 1 when each of i, j is among the other's nearest."""
    from scipy import sparse

    n, k = nearest.shape
    a = sparse.csr_matrix((np.ones(n * k, np.float32), (np.repeat(np.arange(n), k),
                                                        nearest.ravel())), shape=(n, n))
    return a.multiply(a.T).tocsr()


def reranked_distances(vectors: np.ndarray, neighbours: int = NEIGHBOURS,
                       expansion: int = EXPANSION,
                       weight: float = ORIGINAL_WEIGHT) -> np.ndarray:
    """The ``n x n`` k-reciprocal re-ranked distances of L2-normalised ``vectors``:
    ``(1 - weight) * jaccard + weight * |a - b|^2``, where ``jaccard`` compares the faces'
    (expanded, query-expanded) k-reciprocal neighbour sets, 0 for the same set, 1 for none
    shared. Memory and time grow with ``n^2``."""
    from scipy import sparse

    vectors = l2_normalize(np.asarray(vectors, np.float32))
    n = len(vectors)
    dist = np.clip(2.0 - 2.0 * (vectors @ vectors.T), 0.0, None)
    if n < 2:
        return np.zeros((n, n), np.float32)
    near = _nearest(dist, neighbours)
    wide = _reciprocal(near)
    half = _reciprocal(near[:, : round(min(neighbours, n - 1) / 2) + 1])
    # expand each set by the half-size sets of its members that mostly lie inside it
    overlap = (wide @ half.T).tocsr()  # [i, j]: |R(i) & R_half(j)|
    rows, cols = wide.nonzero()
    half_size = np.asarray(half.sum(1)).ravel()
    keep = np.asarray(overlap[rows, cols]).ravel() > 2.0 / 3.0 * half_size[cols]
    pick = sparse.csr_matrix((np.ones(int(keep.sum()), np.float32),
                              (rows[keep], cols[keep])), shape=(n, n))
    members = ((wide + pick @ half) > 0).tocoo()
    weights = np.exp(-dist[members.row, members.col])
    enc = sparse.csr_matrix((weights, (members.row, members.col)), shape=(n, n))
    enc = sparse.diags(1.0 / np.asarray(enc.sum(1)).ravel()) @ enc
    # query expansion: average the encodings of each face's nearest faces
    k2 = max(1, min(expansion, n))
    if k2 > 1:
        qe = sparse.csr_matrix((np.full(n * k2, 1.0 / k2, np.float32),
                                (np.repeat(np.arange(n), k2), _nearest(dist, k2 - 1).ravel())),
                               shape=(n, n))
        enc = qe @ enc
    enc = enc.tocsc()
    shared = np.zeros((n, n), np.float32)  # sum over neighbours of min(enc_i, enc_j)
    for c in range(n):
        lo, hi = enc.indptr[c], enc.indptr[c + 1]
        if hi > lo:
            idx, val = enc.indices[lo:hi], enc.data[lo:hi]
            shared[np.ix_(idx, idx)] += np.minimum.outer(val, val)
    jaccard = 1.0 - shared / (2.0 - shared)
    out = ((1.0 - weight) * jaccard + weight * dist).astype(np.float32)
    out = np.maximum(out, out.T)
    np.fill_diagonal(out, 0.0)
    return out


def average_linkage(dist: np.ndarray, cut: float, sims: np.ndarray | None = None,
                    threshold: float = -1.0, large: int = 0) -> np.ndarray:
    """Average-linkage clustering of a distance matrix: the two groups with the smallest
    mean distance merge while it is at most ``cut``. With ``sims`` (cosines), two groups both
    smaller than ``large`` may merge only when their mean cosine is at least ``threshold``.
    Returns a group id per row (one member's index; see :func:`renumber`). Memory grows
    with ``n^2``; time with ``n^2`` and the number of merges."""
    n = len(dist)
    dsum = np.array(dist, np.float32)
    gated = sims is not None and large > 1
    csum = np.array(sims if gated else np.zeros((0, 0)), np.float32)
    size = np.ones(n, np.float32)
    alive = np.ones(n, bool)

    def row(i: int) -> np.ndarray:
        """Mean distance from group i to every group; inf where they may not merge."""
        norm = size[i] * size
        ok = alive.copy()
        ok[i] = False
        if gated and size[i] < large:
            ok &= (size >= large) | (csum[i] >= threshold * norm)
        return np.where(ok, dsum[i] / norm, np.inf)

    best = np.full(n, np.inf)
    arg = np.zeros(n, np.int64)
    for i in range(n):
        r = row(i)
        arg[i] = int(np.argmin(r))
        best[i] = r[arg[i]]
    group = np.arange(n)
    while n > 1:
        i = int(np.argmin(best))
        if not best[i] <= cut:
            break
        j = int(arg[i])
        i, j = min(i, j), max(i, j)
        dsum[i] += dsum[j]
        dsum[:, i] = dsum[i]
        if gated:
            csum[i] += csum[j]
            csum[:, i] = csum[i]
        size[i] += size[j]
        alive[j] = False
        best[j] = np.inf
        group[group == j] = i
        r = row(i)
        arg[i] = int(np.argmin(r))
        best[i] = r[arg[i]]
        others = alive.copy()
        others[i] = False
        stale = others & ((arg == i) | (arg == j))  # their nearest group changed: rescan
        closer = others & ~stale & (r < best)
        best[closer], arg[closer] = r[closer], i
        for k in np.flatnonzero(stale):
            rk = row(int(k))
            arg[k] = int(np.argmin(rk))
            best[k] = rk[arg[k]]
    return group


def _chinese_whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """dlib's Chinese whispers on the graph linking faces with cosine >= ``threshold``."""
    import dlib

    sims = vectors @ vectors.T
    a, b = np.nonzero(np.triu(sims >= threshold, 1))
    edges = [(int(i), int(j)) for i, j in zip(a, b, strict=True)]
    edges += [(i, i) for i in range(len(vectors))]  # every face is a node, linked or not
    labels = dlib.chinese_whispers(edges)
    return np.asarray(labels, np.int64)


def cluster_vectors(
    vectors: np.ndarray, threshold: float, method: str = "rerank", min_size: int = 2,
    cut: float | None = None, neighbours: int = NEIGHBOURS, large: int = LARGE,
    distances: np.ndarray | None = None,
) -> np.ndarray:
    """A cluster index per vector (0 = the largest cluster, ties by first member), or
    :data:`SINGLETON` (-1) for faces in clusters smaller than ``min_size``.

    ``threshold``: a cosine: the mean cosine two groups need to merge (``agglomerative``;
    ``rerank`` while both groups are smaller than ``large``) or the cosine linking two faces
    (``chinese_whispers``). ``cut`` (``rerank`` only, required): the largest mean re-ranked
    distance at which groups merge; ``neighbours``: its k-reciprocal neighbourhood size;
    ``distances``: :func:`reranked_distances` of ``vectors`` when already computed (to try
    several settings on the same faces).
    """
    if method not in METHODS:
        raise InputError(f"unknown clustering method {method!r}: choose {', '.join(METHODS)}")
    if method == "rerank" and cut is None:
        raise InputError("method 'rerank' needs a cut (the re-ranked distance groups merge at)")
    cut = float(cut or 0.0)
    vectors = l2_normalize(np.asarray(vectors, np.float32).reshape(len(vectors), -1))
    if len(vectors) < 2:
        return renumber(np.zeros(len(vectors), np.int64), min_size)
    if method == "chinese_whispers":
        return renumber(_chinese_whispers(vectors, threshold), min_size)
    sims = vectors @ vectors.T
    if method == "agglomerative":
        return renumber(average_linkage(1.0 - sims, 1.0 - threshold), min_size)
    if distances is None:
        distances = reranked_distances(vectors, neighbours)
    return renumber(average_linkage(distances, cut, sims, threshold, large), min_size)


def renumber(groups: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Group ids as cluster indices, largest first (ties by first member); members of groups
    smaller than ``min_size`` become :data:`SINGLETON`."""
    ids, first, counts = np.unique(groups, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda k: (-counts[k], first[k]))
    out = np.full(len(groups), SINGLETON, np.int64)
    nxt = 0
    for k in order:
        if counts[k] >= min_size:
            out[groups == ids[k]] = nxt
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
