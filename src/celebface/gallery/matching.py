"""Naming embeddings against a gallery: per-identity scores, then the unknown rule.

Methods (each gives one score per enrolled identity, higher is more alike):

- ``centroid``: cosine similarity to the identity's average embedding (the reference's method);
- ``knn``: cosine similarity to the identity's nearest enrolled embedding (1-nearest neighbour);
- ``topk``: mean cosine similarity to the identity's ``k`` (default 5) nearest enrolled
  embeddings (more robust than 1-NN to one odd enrolment photo, sharper than the centroid when
  each person has many enrolled photos; calibrate it: its scores depend on that number);
- ``model``: class probabilities of a classifier trained by ``celebface train``.

A person enrolled from one photo has their score lowered or raised by an offset that grows
with how close their vector lies to the average face (:func:`celebface.gallery.policy.
person_offsets`: such a vector is close to many strangers too); the scores of every method
include it.

Names come from :meth:`GalleryMatcher.top`: a FAISS index of the gallery
(:mod:`celebface.gallery.index`) proposes candidate identities, which are rescored exactly, so
an exact (``flat``) index gives the scores of :meth:`GalleryMatcher.scores` (every identity).
:func:`match` hands the scores to the open-set policy, whose
:meth:`~celebface.gallery.policy.OpenSetPolicy.decide` names the face or calls it unknown
(the unknown rule and its thresholds: :mod:`celebface.gallery.policy`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from celebface.errors import InputError
from celebface.gallery.index import load_index
from celebface.gallery.policy import OpenSetPolicy, person_offsets
from celebface.gallery.store import Gallery
from celebface.recognition.base import l2_normalize
from celebface.types import Match

MATCH_METHODS = ("centroid", "knn", "topk")
#: benchmarks/recognize.py: the centroid is the best with up to ~20 photos per person and its
#: uncalibrated threshold holds across gallery sizes; ``topk`` wins (calibrated) only with
#: many photos per person (TAR at 1% FAR 0.90 vs 0.88 with ~116).
DEFAULT_MATCH = "centroid"


class Matcher(Protocol):
    """Anything that scores embeddings against named identities."""

    method: str
    names: list[str]

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, len(names))`` scores, higher = more alike."""
        ...


class GalleryMatcher:
    """Cosine matching against a :class:`Gallery` (``centroid``, ``knn`` or ``topk``)."""

    def __init__(self, gallery: Gallery, method: str = "centroid", k: int = 5):
        if method not in MATCH_METHODS:
            raise InputError(f"unknown match method {method!r}: choose {', '.join(MATCH_METHODS)}")
        if not len(gallery):
            raise InputError("the gallery is empty: enroll people first")
        self.method = method
        self.k = max(1, int(k))
        self.names = list(gallery.names)
        self._centroids = gallery.centroids()
        order = np.argsort(gallery.labels, kind="stable")
        self._emb = gallery.embeddings[order]
        labels = gallery.labels[order]
        self._starts = np.searchsorted(labels, np.arange(len(self.names)))
        self._ends = np.searchsorted(labels, np.arange(len(self.names)), side="right")
        self._gallery = gallery
        self._index: Any = None
        #: subtracted from the scores against each identity (one-photo people; module doc)
        self.offsets = person_offsets(gallery.embedder_name, gallery.spec.tta, self._centroids,
                                      np.bincount(gallery.labels, minlength=len(self.names)))
        #: the most an offset raises a score over the similarity (bounds the index search)
        self.max_boost = float(max(0.0, -self.offsets.min()))

    def _unit(self, embeddings: np.ndarray) -> np.ndarray:
        return l2_normalize(np.asarray(embeddings, np.float32).reshape(-1, self._emb.shape[1]))

    @property
    def index(self) -> Any:
        """The gallery's vector index of this method's view (loaded on first use)."""
        if self._index is None:

            view = "centroids" if self.method == "centroid" else "embeddings"
            self._index = load_index(self._gallery, view)
        return self._index

    def top(self, embeddings: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best identities per embedding: ``(indices, scores)``, best first."""
        from celebface.gallery.index import has_faiss, top_identities

        n = min(n, len(self.names))
        if not has_faiss():  # exact search over every identity (no vector index)
            scores = self.scores(embeddings)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
            return top, np.take_along_axis(scores, top, axis=1)
        return top_identities(self, self._unit(embeddings), n)

    def identity_scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores of one unit ``query`` against identities ``ids``."""
        if self.method == "centroid":
            return self._centroids[ids] @ query - self.offsets[ids]
        out = np.empty(len(ids), np.float32)
        top = 1 if self.method == "knn" else self.k
        for j, i in enumerate(ids):
            sims = self._emb[self._starts[i]:self._ends[i]] @ query
            k = min(top, len(sims))
            out[j] = np.partition(sims, len(sims) - k)[len(sims) - k:].mean()
        return out - self.offsets[ids]

    def scores(self, embeddings: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Scores against every identity (exact, brute force)."""
        emb = self._unit(embeddings)
        if self.method == "centroid":
            return emb @ self._centroids.T - self.offsets
        out = np.empty((len(emb), len(self.names)), np.float32)
        for lo in range(0, len(emb), chunk):
            sims = emb[lo : lo + chunk] @ self._emb.T
            if self.method == "knn":
                out[lo : lo + chunk] = np.maximum.reduceat(sims, self._starts, axis=1)
                continue
            for j, (a, b) in enumerate(zip(self._starts, self._ends, strict=True)):
                block = sims[:, a:b]
                k = min(self.k, b - a)
                top = np.partition(block, b - a - k, axis=1)[:, b - a - k :]
                out[lo : lo + chunk, j] = top.mean(axis=1)
        return out - self.offsets


class ModelMatcher:
    """Class probabilities of a trained classifier (anything with ``predict_embeddings``)."""

    method = "model"

    def __init__(self, model: Any):
        if not hasattr(model, "predict_embeddings"):
            raise InputError(
                f"{type(model).__name__} does not classify embeddings (no predict_embeddings); "
                "train a classifier on embeddings with 'celebface train'"
            )
        self.model = model
        self.names = list(model.label_names)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_embeddings(np.asarray(embeddings, np.float32)),
                          np.float32)


def top_n(matcher: Matcher, embeddings: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best identities of each embedding, ``(indices into names, scores)`` best
    first, in one query: through the gallery's index when the matcher has one
    (:meth:`GalleryMatcher.top`), else from every identity's score. An index that finds fewer
    than ``n`` marks the missing places with index -1."""
    if isinstance(matcher, GalleryMatcher):
        return matcher.top(embeddings, n)
    scores = np.asarray(matcher.scores(embeddings), np.float32)
    if scores.ndim != 2 or scores.shape[1] != len(matcher.names):
        raise ValueError(f"scores of shape {scores.shape} do not match {len(matcher.names)} "
                         "names")
    top = np.argsort(-scores, axis=1)[:, :n]
    return top, np.take_along_axis(scores, top, axis=1)


def match(matcher: Matcher, embeddings: np.ndarray, policy: OpenSetPolicy,
          top: tuple[np.ndarray, np.ndarray] | None = None) -> list[Match]:
    """``policy``'s decision for each embedding, from its two best identities (:func:`top_n`;
    ``top``: its answer for at least two when the caller queried it already, e.g. for more
    people)."""
    if not len(embeddings):
        return []
    ids, scores = top if top is not None else top_n(matcher, embeddings, 2)
    return policy.decide(scores[:, :2], matcher.names, top=ids[:, :2])
