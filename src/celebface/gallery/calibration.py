"""Choosing the unknown threshold from faces of people who are NOT in the gallery.

Recommended protocol: hold some identities out of enrolment. Enroll the known people from some
of their photos; calibrate on (a) photos of the held-out people (the strangers: they fix the
threshold for the wanted false-accept rate) and (b) other photos of the enrolled people (they
give the true-accept rate at that threshold). Photos used for enrolment are ignored as genuine
probes (they would overstate the true-accept rate). Strangers that appear in the calibration
data but also later in a test must not be the same people, or the measured false-accept rate
is optimistic.

Definitions: a *false accept* is a stranger given any enrolled name. A *true accept* is an
enrolled person's photo given the right name with a score at or above the threshold (the
open-set "detection and identification rate").
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.gallery.matching import DEFAULT_GAP_WEIGHT, Matcher, best_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenSetRates:
    threshold: float
    tar: float  # genuine probes accepted with the right name
    accept_rate: float  # genuine probes accepted with any name
    far: float  # strangers accepted with any name
    genuine: int
    strangers: int


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate_scores`: the chosen threshold and what it gives."""

    method: str
    target_far: float
    threshold: float
    far: float
    tar: float
    accept_rate: float
    closed_set_accuracy: float
    genuine: int
    genuine_identities: int
    strangers: int
    stranger_identities: int
    min_measurable_far: float
    gap_weight: float = 0.0  # the decision score's weight of the lead over the runner-up

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def threshold_for_far(stranger_scores: np.ndarray, far: float) -> float:
    """The lowest threshold at which at most ``far`` of the strangers are accepted.

    A face is accepted when its score is ``>= threshold``.
    """
    s = np.sort(np.asarray(stranger_scores, np.float64).reshape(-1))[::-1]
    if not len(s):
        raise InputError("no stranger faces to calibrate on")
    if not 0.0 <= far < 1.0:
        raise InputError(f"false-accept rate must be in [0, 1), got {far}")
    allowed = math.floor(far * len(s) + 1e-9)
    if allowed >= len(s):
        return float(s[-1])
    # strictly above the first rejected stranger; ties with it are rejected too
    return float(np.nextafter(np.float32(s[allowed]), np.float32(np.inf)))


def open_set_rates(scores: np.ndarray, truth: np.ndarray, threshold: float,
                   gap_weight: float = 0.0) -> OpenSetRates:
    """Rates at ``threshold`` (on the decision score with ``gap_weight``, see
    :mod:`celebface.gallery.matching`); ``truth[i]`` is probe ``i``'s gallery index, -1 for a
    stranger."""
    truth = np.asarray(truth)
    best, idx = best_scores(np.asarray(scores), gap_weight)
    accepted = best >= threshold
    genuine = truth >= 0
    n_gen, n_str = int(genuine.sum()), int((~genuine).sum())
    correct = accepted & genuine & (idx == truth)
    return OpenSetRates(
        threshold=float(threshold),
        tar=float(correct.sum() / n_gen) if n_gen else float("nan"),
        accept_rate=float((accepted & genuine).sum() / n_gen) if n_gen else float("nan"),
        far=float((accepted & ~genuine).sum() / n_str) if n_str else float("nan"),
        genuine=n_gen,
        strangers=n_str,
    )


def truth_indices(identities: list[str], names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([index.get(i, -1) for i in identities], np.int64)


def calibrate_scores(
    matcher: Matcher, embeddings: np.ndarray, identities: list[str], far: float = 0.01,
    gap_weight: float | None = None,
) -> Calibration:
    """Pick the threshold of ``matcher`` for false-accept rate ``far``, on the decision score
    with ``gap_weight`` (default :data:`DEFAULT_GAP_WEIGHT`; 0 for a classifier's
    probabilities, whose softmax already weighs the other people).

    Probes whose identity is not among ``matcher.names`` are strangers; the others are
    genuine and give the true-accept rate and the closed-set accuracy.
    """
    truth = truth_indices(list(identities), matcher.names)
    scores = matcher.scores(embeddings)
    strangers = truth < 0
    if not strangers.any():
        raise InputError(
            "calibration needs faces of people who are NOT in the gallery (none of the "
            "identities in the data is a stranger): hold some identities out of enrolment"
        )
    if gap_weight is None:
        gap_weight = DEFAULT_GAP_WEIGHT if matcher.method != "model" else 0.0
    best, idx = best_scores(scores, gap_weight)
    threshold = threshold_for_far(best[strangers], far)
    rates = open_set_rates(scores, truth, threshold, gap_weight)
    n_str = int(strangers.sum())
    if far and n_str * far < 1:
        log.warning("%d stranger faces cannot measure a %.3g false-accept rate (smallest "
                    "non-zero rate: %.3g); add more strangers", n_str, far, 1 / n_str)
    genuine = ~strangers
    ids = np.asarray(identities, dtype=object)
    return Calibration(
        method=matcher.method,
        target_far=float(far),
        threshold=threshold,
        far=rates.far,
        tar=rates.tar,
        accept_rate=rates.accept_rate,
        closed_set_accuracy=float((idx[genuine] == truth[genuine]).mean())
        if genuine.any() else float("nan"),
        genuine=int(genuine.sum()),
        genuine_identities=len(set(ids[genuine])),
        strangers=n_str,
        stranger_identities=len(set(ids[strangers])),
        min_measurable_far=1.0 / n_str,
        gap_weight=float(gap_weight),
    )
