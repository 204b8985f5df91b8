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

The decision score's gap weight (:mod:`celebface.gallery.policy`) is chosen by
cross-validation over the stranger PEOPLE (:func:`cross_validate_gap_weights`): for each weight
of :data:`GAP_WEIGHT_GRID` (0 = the similarity alone) and each fold, the threshold is set on
the other folds' strangers and tried on the held-out ones; the weight with the best mean
true-accept rate whose held-out false-accept rate is not significantly above the target (its
Wilson 95% interval reaches the target) wins, ties going to the smaller weight. The held-out
false-accept rate of the chosen weight, with its interval, is what the calibration reports: a
measure on strangers the threshold was not set on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.gallery.matching import Matcher
from celebface.gallery.policy import accepted, best_scores, threshold_for_far

log = logging.getLogger(__name__)

#: The gap weights :func:`calibrate_scores` chooses among (0: the similarity alone).
GAP_WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
#: Folds over the stranger people (fewer when there are fewer stranger people).
CV_FOLDS = 5


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
    #: how the gap weight was set: "cv" (chosen by cross-validation), "given", "classifier"
    gap_weight_source: str = "given"
    #: strangers accepted at thresholds set on the other folds (nan: fewer than 2 stranger
    #: people), with its Wilson 95% interval
    heldout_far: float = float("nan")
    far_low: float = float("nan")
    far_high: float = float("nan")
    folds: int = 0
    #: the cross-validation per weight: ``{"gap_weight", "tar", "far", "far_low", "far_high"}``
    cv: tuple[dict[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: floats rounded, NaN (not measured) as None."""

        def rounded(v: Any) -> Any:
            if isinstance(v, float):
                return None if math.isnan(v) else round(v, 6)
            if isinstance(v, dict):
                return {k: rounded(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [rounded(x) for x in v]
            return v

        return {k: rounded(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class WeightCV:
    """One gap weight's cross-validation (:func:`cross_validate_gap_weights`)."""

    gap_weight: float
    tar: float  # mean over folds of the genuine TAR at the fold's threshold
    false_accepts: int  # held-out strangers accepted, all folds
    strangers: int  # held-out strangers, all folds (each once)

    @property
    def far(self) -> float:
        return self.false_accepts / self.strangers if self.strangers else float("nan")

    def to_dict(self) -> dict[str, float]:
        low, high = wilson_interval(self.false_accepts, self.strangers)
        return {"gap_weight": self.gap_weight, "tar": self.tar, "far": self.far,
                "far_low": low, "far_high": high}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for ``z`` 1.96) of a rate of ``k`` in ``n``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def stranger_folds(identities: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """A fold index per face so that each person's faces share a fold (people shuffled with
    ``seed``, then dealt round-robin)."""
    people = sorted(set(identities))
    order = np.random.default_rng(seed).permutation(len(people))
    fold_of = {people[j]: n % folds for n, j in enumerate(order)}
    return np.array([fold_of[i] for i in identities], np.int64)


def cross_validate_gap_weights(
    scores: np.ndarray, truth: np.ndarray, fold: np.ndarray, far: float,
    grid: Sequence[float] = GAP_WEIGHT_GRID,
) -> list[WeightCV]:
    """For each weight of ``grid``: the threshold for ``far`` set on all stranger folds but
    one, tried on the held-out fold's strangers and on every genuine probe. ``truth`` as in
    :func:`open_set_rates`; ``fold[i]`` the fold of probe ``i`` (ignored for genuine ones)."""
    truth = np.asarray(truth)
    strangers = truth < 0
    folds = sorted(set(fold[strangers].tolist()))
    out = []
    for w in grid:
        best, idx = best_scores(scores, w)
        right = (idx == truth)[~strangers]
        tars, taken, held = [], 0, 0
        for f in folds:
            test = strangers & (fold == f)
            thr = threshold_for_far(best[strangers & (fold != f)], far)
            taken += int(accepted(best[test], thr).sum())
            held += int(test.sum())
            if right.size:
                tars.append(float((right & accepted(best[~strangers], thr)).mean()))
        out.append(WeightCV(float(w), float(np.mean(tars)) if tars else float("nan"),
                            taken, held))
    return out


def choose_gap_weight(results: Sequence[WeightCV], far: float) -> WeightCV:
    """The weight with the best held-out TAR among those whose held-out FAR is not
    significantly above ``far`` (ties and no genuine probes: the smallest weight; none
    eligible: the lowest held-out FAR)."""
    ok = [r for r in results if wilson_interval(r.false_accepts, r.strangers)[0] <= far]
    if not ok:
        return min(results, key=lambda r: (r.far, r.gap_weight))
    return max(ok, key=lambda r: (0.0 if math.isnan(r.tar) else round(r.tar, 9),
                                  -r.gap_weight))


def open_set_rates(scores: np.ndarray, truth: np.ndarray, threshold: float,
                   gap_weight: float = 0.0) -> OpenSetRates:
    """Rates at ``threshold`` (on the decision score with ``gap_weight``, see
    :mod:`celebface.gallery.policy`); ``truth[i]`` is probe ``i``'s gallery index, -1 for a
    stranger."""
    truth = np.asarray(truth)
    best, idx = best_scores(np.asarray(scores), gap_weight)
    named = accepted(best, threshold)
    genuine = truth >= 0
    n_gen, n_str = int(genuine.sum()), int((~genuine).sum())
    correct = named & genuine & (idx == truth)
    return OpenSetRates(
        threshold=float(threshold),
        tar=float(correct.sum() / n_gen) if n_gen else float("nan"),
        accept_rate=float((named & genuine).sum() / n_gen) if n_gen else float("nan"),
        far=float((named & ~genuine).sum() / n_str) if n_str else float("nan"),
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
    """Pick the threshold of ``matcher`` for false-accept rate ``far`` on the decision score
    with ``gap_weight``; None chooses it by cross-validation over the stranger people (module
    doc; a classifier's probabilities use 0: the softmax already weighs the other people).

    Probes whose identity is not among ``matcher.names`` are strangers; the others are
    genuine and give the true-accept rate and the closed-set accuracy. The reported held-out
    false-accept rate and its interval come from the same cross-validation.
    """
    truth = truth_indices(list(identities), matcher.names)
    scores = matcher.scores(embeddings)
    strangers = truth < 0
    if not strangers.any():
        raise InputError(
            "calibration needs faces of people who are NOT in the gallery (none of the "
            "identities in the data is a stranger): hold some identities out of enrolment"
        )
    ids = np.asarray(identities, dtype=object)
    stranger_people = len(set(ids[strangers]))
    grid: tuple[float, ...]
    if gap_weight is not None:
        grid, source = (float(gap_weight),), "given"
    elif matcher.method == "model":
        grid, source = (0.0,), "classifier"
    else:
        grid, source = GAP_WEIGHT_GRID, "cv"
    folds = min(CV_FOLDS, stranger_people)
    cv: list[WeightCV] = []
    if folds >= 2:
        fold = np.full(len(truth), -1, np.int64)
        fold[strangers] = stranger_folds(list(ids[strangers]), folds)
        cv = cross_validate_gap_weights(scores, truth, fold, far, grid)
        chosen = choose_gap_weight(cv, far)
    else:
        log.warning("%d stranger person(s): no cross-validation over strangers (the gap "
                    "weight is %s and no held-out FAR is measured); add more strangers",
                    stranger_people, "the similarity alone" if source == "cv" else "as given")
        chosen = None
        if source == "cv":
            grid, source = (0.0,), "default"
    weight = chosen.gap_weight if chosen is not None else grid[0]
    best, idx = best_scores(scores, weight)
    threshold = threshold_for_far(best[strangers], far)
    rates = open_set_rates(scores, truth, threshold, weight)
    n_str = int(strangers.sum())
    if far and n_str * far < 1:
        log.warning("%d stranger faces cannot measure a %.3g false-accept rate (smallest "
                    "non-zero rate: %.3g); add more strangers", n_str, far, 1 / n_str)
    genuine = ~strangers
    low, high = (wilson_interval(chosen.false_accepts, chosen.strangers) if chosen is not None
                 else (float("nan"), float("nan")))
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
        stranger_identities=stranger_people,
        min_measurable_far=1.0 / n_str,
        gap_weight=float(weight),
        gap_weight_source=source,
        heldout_far=chosen.far if chosen is not None else float("nan"),
        far_low=low,
        far_high=high,
        folds=folds if chosen is not None else 0,
        cv=tuple(r.to_dict() for r in cv),
    )
