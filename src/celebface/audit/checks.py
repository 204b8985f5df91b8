"""The checks of ``celebface audit``, on plain arrays: each returns :class:`Finding` rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celebface.recognition.base import l2_normalize

#: The near-duplicate bound of each embedder is measured and kept in its registry entry
#: (``EmbedderConfig.near_duplicate``, :mod:`celebface.recognition.registry`).
#: Used for an embedder with no measured bound.
FALLBACK_NEAR_DUPLICATE = 0.995

KINDS = (
    "exact_duplicate_across_people", "exact_duplicate_across_splits",
    "exact_duplicate_within_person", "near_duplicate_across_people",
    "near_duplicate_across_splits", "near_duplicate_within_person", "likely_mislabelled",
    "no_face", "several_faces", "tiny_face", "unreadable", "too_few_photos",
)


@dataclass(frozen=True)
class Finding:
    """One problem: ``files`` involved (one, or a pair), the ``person`` (or ``A | B``), a
    ``score`` (cosine, margin, count or size: see ``detail``)."""

    kind: str
    files: tuple[str, ...]
    person: str
    score: float
    detail: str = ""


def pair_scope(id_a: str, id_b: str, split_a: str | None, split_b: str | None) -> str:
    if id_a != id_b:
        return "across_people"
    if split_a and split_b and split_a != split_b:
        return "across_splits"
    return "within_person"


def _pair_finding(kind: str, i: int, j: int, score: float, paths: Sequence[str],
                  ids: Sequence[str], splits: Sequence[str | None]) -> Finding:
    scope = pair_scope(ids[i], ids[j], splits[i], splits[j])
    person = ids[i] if ids[i] == ids[j] else f"{ids[i]} | {ids[j]}"
    detail = f"splits {splits[i]} / {splits[j]}" if splits[i] or splits[j] else ""
    return Finding(f"{kind}_{scope}", (paths[i], paths[j]), person, float(score), detail)


def exact_duplicates(hashes: Sequence[str], paths: Sequence[str], ids: Sequence[str],
                     splits: Sequence[str | None]) -> list[Finding]:
    """Pairs of files with the same content hash (each file paired with the first copy)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for k, h in enumerate(hashes):
        groups[h].append(k)
    out = []
    for members in groups.values():
        out += [_pair_finding("exact_duplicate", members[0], j, 1.0, paths, ids, splits)
                for j in members[1:]]
    return out


def near_pairs(vectors: np.ndarray, bound: float, chunk: int = 2048
               ) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` with ``i < j`` and cosine >= ``bound``, highest first."""
    v = l2_normalize(np.asarray(vectors, np.float32))
    found = []
    for lo in range(0, len(v), chunk):
        sims = v[lo:lo + chunk] @ v.T
        rows, cols = np.nonzero(sims >= bound)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if lo + r < c:
                found.append((lo + r, c, float(sims[r, c])))
    return sorted(found, key=lambda t: -t[2])


def near_duplicates(vectors: np.ndarray, bound: float, hashes: Sequence[str],
                    paths: Sequence[str], ids: Sequence[str],
                    splits: Sequence[str | None]) -> list[Finding]:
    """Pairs of different files (by content) whose embeddings are at least ``bound`` alike."""
    return [_pair_finding("near_duplicate", i, j, s, paths, ids, splits)
            for i, j, s in near_pairs(vectors, bound) if hashes[i] != hashes[j]]


def centre_scores(vectors: np.ndarray, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray,
                                                                     list[str]]:
    """Per photo: cosine to its own person's centre without itself, the best cosine to
    another person's centre, and that person."""
    v = l2_normalize(np.asarray(vectors, np.float64))
    names = sorted(set(ids))
    index = {n: k for k, n in enumerate(names)}
    lab = np.asarray([index[i] for i in ids])
    sums = np.zeros((len(names), v.shape[1]))
    np.add.at(sums, lab, v)
    counts = np.bincount(lab, minlength=len(names))
    own_sum = sums[lab] - v  # leave the photo out of its own centre
    own = np.einsum("ij,ij->i", l2_normalize(own_sum), v)
    own[counts[lab] < 2] = np.nan
    sims = v @ l2_normalize(sums).T
    sims[np.arange(len(v)), lab] = -np.inf
    best = sims.argmax(1)
    return own, sims[np.arange(len(v)), best], [names[b] for b in best]


def mislabels(vectors: np.ndarray, paths: Sequence[str], ids: Sequence[str],
              margin: float = 0.0) -> list[Finding]:
    """Photos closer (by more than ``margin``) to another person's centre than to their own;
    score = that difference, largest first."""
    if len(set(ids)) < 2:
        return []
    own, other, who = centre_scores(vectors, ids)
    gap = other - own
    flagged = np.flatnonzero(np.nan_to_num(gap, nan=-np.inf) > margin).tolist()
    return [Finding("likely_mislabelled", (paths[k],), ids[k], float(gap[k]),
                    f"own centre {own[k]:.3f}, {who[k]} {other[k]:.3f}")
            for k in sorted(flagged, key=lambda k: -gap[k])]


def too_few(ids: Sequence[str], minimum: int) -> list[Finding]:
    counts: dict[str, int] = defaultdict(int)
    for i in ids:
        counts[i] += 1
    return [Finding("too_few_photos", (), name, float(n), f"{n} < {minimum} photos")
            for name, n in sorted(counts.items()) if n < minimum]


def balance(ids: Sequence[str]) -> dict[str, float]:
    """Photos per person: people, min, median, max, and max/min."""
    counts = np.bincount(np.unique(np.asarray(ids), return_inverse=True)[1]) if len(ids) \
        else np.zeros(0, int)
    if not len(counts):
        return {"people": 0}
    return {"people": len(counts), "min": int(counts.min()), "median": float(np.median(counts)),
            "max": int(counts.max()), "max_over_min": round(float(counts.max() / counts.min()), 2)}
