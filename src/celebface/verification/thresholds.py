"""Measured cosine thresholds of face-to-face comparisons, per (embedder, TTA).

``PAIR_THRESHOLDS``: two faces are the same person when the cosine of their vectors is at
least this. Produced by ``benchmarks/verify.py`` (results in benchmarks/results/verify.md): the
threshold with a 1% false-accept rate over every pair of pins105-dev TRAIN photos (10 per
person) of half of its identities, faces found by MTCNN (whole crop when none is found), as
``celebface verify`` finds them, aligned from MTCNN's landmarks. On balanced VAL pairs of the
other half: accuracy 0.958 (none) / 0.970 (flip), FAR 0.020 / 0.019; the balanced-accuracy
thresholds (0.901 / 0.906) are about as accurate but accept three times as many strangers.

``CLUSTER_THRESHOLDS`` (per embedder, TTA and clustering method): the mean cosine at which
``celebface cluster`` merges groups of faces (for ``rerank``: groups smaller than
``clustering.group.LARGE``), and ``RERANK_CUTS``: the mean k-reciprocal re-ranked distance at
which ``rerank`` stops merging. Produced by ``benchmarks/cluster.py``
(benchmarks/results/cluster.md) on photos of people other than the ones it measures.
"""

from __future__ import annotations

import logging
from typing import Any

from celebface.errors import CelebfaceError

log = logging.getLogger(__name__)

PAIR_THRESHOLDS: dict[tuple[str, str], float] = {
    ("dlib", "none"): 0.9153,
    ("dlib", "flip"): 0.9191,
}

CLUSTER_THRESHOLDS: dict[tuple[str, str, str], float] = {
    # best mean BCubed F1 over four kinds of groups of half-A people (benchmarks/cluster.py)
    ("dlib", "none", "rerank"): 0.915,
    ("dlib", "none", "agglomerative"): 0.91,
}

RERANK_CUTS: dict[tuple[str, str], float] = {
    ("dlib", "none"): 0.70,
}


class NoThresholdError(CelebfaceError, ValueError):
    """No measured threshold for an embedder: give one explicitly."""


def embedder_key(embedder: Any) -> tuple[str, str]:
    """``(name, tta)`` of an embedder object."""
    settings = embedder.settings() if hasattr(embedder, "settings") else {}
    return str(getattr(embedder, "name", settings.get("model", "?"))), str(
        settings.get("tta", "none"))


def pair_threshold(embedder: Any) -> float:
    """The measured same-person cosine threshold of ``embedder``."""
    key = embedder_key(embedder)
    if key not in PAIR_THRESHOLDS:
        raise NoThresholdError(
            f"no measured pair threshold for embedder {key[0]!r} (tta {key[1]}): give one "
            "(--threshold), or measure it with benchmarks/verify.py")
    return PAIR_THRESHOLDS[key]


def cluster_threshold(embedder: Any, method: str = "rerank") -> float:
    """The measured clustering cosine of ``embedder`` for ``method`` (its pair threshold when
    none was measured)."""
    key = embedder_key(embedder)
    if (*key, method) in CLUSTER_THRESHOLDS:
        return CLUSTER_THRESHOLDS[(*key, method)]
    value = pair_threshold(embedder)
    log.warning("no measured %s cluster threshold for %s (tta %s): using its pair threshold "
                "%.3f", method, *key, value)
    return value


def rerank_cut(embedder: Any) -> float | None:
    """The measured re-ranked distance cut of ``embedder`` for ``rerank`` clustering, or None
    when none was measured."""
    return RERANK_CUTS.get(embedder_key(embedder))


def gallery_pair_threshold(gallery: Any) -> float:
    """A gallery's calibrated threshold for comparing two faces: its ``knn`` one (a face-to-
    nearest-face cosine, calibrated on strangers) when calibrated, else another calibrated
    method's, else the embedder's measured pair threshold. Thresholds calibrated on a
    decision score with a gap weight (``calibrate --gap-weight``) are not cosines of a pair
    and are passed over."""
    thresholds = {m: t for m, t in gallery.thresholds.items() if not gallery.gap_weight(m)}
    for method in ("knn", "centroid", "topk"):
        if method in thresholds:
            if method != "knn":
                log.warning("%s: no calibrated knn threshold; using the %s one (face-to-%s "
                            "cosine); run 'celebface calibrate --match knn --gap-weight 0' for a "
                            "face-to-face threshold", gallery.path, method, method)
            return float(thresholds[method])
    tta = str((gallery.embedder.get("options") or {}).get("tta", "none"))
    key = (gallery.embedder_name, tta)
    if key not in PAIR_THRESHOLDS:
        raise NoThresholdError(f"{gallery.path}: gallery is not calibrated and embedder "
                               f"{key[0]!r} has no measured pair threshold; run 'celebface "
                               "calibrate' or give --threshold")
    log.warning("%s: gallery is not calibrated; using the embedder's pair threshold %.3f",
                gallery.path, PAIR_THRESHOLDS[key])
    return PAIR_THRESHOLDS[key]
