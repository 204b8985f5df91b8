"""Measured cosine thresholds of face-to-face comparisons, per (embedder, TTA), read from the
embedder's registry entry (:mod:`celebface.recognition.registry`, where each is documented).

``pair_threshold``: two faces are the same person when the cosine of their vectors is at
least this (a 1% false-accept rate, ``benchmarks/verify.py``). ``cluster_threshold``: the mean
cosine at which ``celebface cluster`` merges groups of faces (for ``rerank``: groups smaller
than ``clustering.group.LARGE``), and ``rerank_cut``: the mean k-reciprocal re-ranked distance
at which ``rerank`` stops merging (``benchmarks/cluster.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from celebface.errors import CelebfaceError
from celebface.recognition.registry import embedder_config

log = logging.getLogger(__name__)


class NoThresholdError(CelebfaceError, ValueError):
    """No measured threshold for an embedder: give one explicitly."""


def embedder_key(embedder: Any) -> tuple[str, str]:
    """``(name, tta)`` of an embedder object."""
    settings = embedder.settings() if hasattr(embedder, "settings") else {}
    return str(getattr(embedder, "name", settings.get("model", "?"))), str(
        settings.get("tta", "none"))


def measured_pair_threshold(name: str, tta: str = "none") -> float | None:
    """The same-person cosine measured for embedder ``name`` with ``tta``, or None."""
    return embedder_config(name).pair_threshold.get(tta)


def pair_threshold(embedder: Any) -> float:
    """The measured same-person cosine threshold of ``embedder``."""
    key = embedder_key(embedder)
    value = measured_pair_threshold(*key)
    if value is None:
        raise NoThresholdError(
            f"no measured pair threshold for embedder {key[0]!r} (tta {key[1]}): give one "
            "(--threshold), or measure it with benchmarks/verify.py")
    return value


def cluster_threshold(embedder: Any, method: str = "rerank") -> float:
    """The measured clustering cosine of ``embedder`` for ``method`` (its pair threshold when
    none was measured)."""
    name, tta = embedder_key(embedder)
    measured = embedder_config(name).cluster_threshold.get((tta, method))
    if measured is not None:
        return measured
    value = pair_threshold(embedder)
    log.warning("no measured %s cluster threshold for %s (tta %s): using its pair threshold "
                "%.3f", method, name, tta, value)
    return value


def rerank_cut(embedder: Any) -> float | None:
    """The measured re-ranked distance cut of ``embedder`` for ``rerank`` clustering, or None
    when none was measured."""
    name, tta = embedder_key(embedder)
    return embedder_config(name).rerank_cut.get(tta)


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
    value = measured_pair_threshold(gallery.spec.name, gallery.spec.tta)
    if value is None:
        raise NoThresholdError(f"{gallery.path}: gallery is not calibrated and embedder "
                               f"{gallery.spec.name!r} has no measured pair threshold; run "
                               "'celebface calibrate' or give --threshold")
    log.warning("%s: gallery is not calibrated; using the embedder's pair threshold %.3f",
                gallery.path, value)
    return value
