"""The open-set policy: every threshold that says whether a face is named, and the one rule
that turns scores into names.

:func:`policy_for` makes an :class:`OpenSetPolicy` from a gallery, a match method and an
override; :meth:`OpenSetPolicy.decide` is the one place scores become decisions
(:class:`~celebface.types.Match`). Still images, video tracks, the service and calibration
read their thresholds from it; verification and clustering read theirs from
:func:`pair_threshold`, :func:`cluster_threshold` and :func:`rerank_cut` below.

**The decision score.** A face is named when its *decision score* reaches the threshold, else
it is ``unknown`` (its ``runner_up`` is then the closest enrolled identity). The decision score
is ``similarity + gap_weight * (similarity - runner-up similarity)``: with ``gap_weight`` 0 it
is the similarity itself (what an uncalibrated gallery and an explicit ``--threshold`` use); a
calibrated gallery stores the gap weight its threshold was chosen with, which ``calibrate``
chooses by cross-validation on the user's strangers (0 included;
:mod:`celebface.gallery.calibration`). A clear lead over the second-best person is evidence
for the name; a stranger tends to be about as close to several people, but how much the lead
helps depends on the strangers: on pins strangers a weight of 1/3 raised TAR at 0.1% FAR
(benchmarks/results/recognize.md), on 4,268 strangers from another source it lowered it
(issue 24).

**Uncalibrated thresholds** (measured, per embedder). A stranger is accepted when their best
score over the gallery's people passes the threshold, so the false-accept rate grows with the
people: a stranger passes ``t`` with chance about ``sum_i p_i(t)``, where ``p_i(t)`` is the
chance that ONE enrolled person ``i`` scores a stranger at least ``t``. ``p_i`` depends on how
many photos person ``i`` has: a one-photo "centroid" is a single noisy vector, whose impostor
(and genuine) scores are lower than a many-photo centroid's. The measured one-person tails per
photos-per-person bucket (:data:`PHOTO_BUCKETS`) are package data written by
``benchmarks/thresholds.py`` (:func:`celebface.recognition.registry.impostor_tails`):
``(p, t)`` = a stranger scores at least ``t`` against one given person with chance ``p``
(interpolated in log p), measured on half of pins105-dev's people (1 photo, enrolled with its
mirror image as enroll does; 3 photos for 2-4; all ~116 train photos for 5+) and checked on the
other half (``benchmarks/results/thresholds_*.md``); an embedder measured only with many photos
uses its 5+ tail for every person. The rule (:func:`gallery_threshold`): the uncalibrated
threshold is the ``t`` at which ``sum_i w_bucket(i) p_bucket(i)(t) = DEFAULT_FAR``, so an
N-person gallery whose people all fall in one bucket uses that bucket's ``t`` of
``p = DEFAULT_FAR / (w N)``, and a mixed gallery spends the same budget over its people. These
thresholds apply to the similarity itself (gap weight 0).

The tails give the FAR of the average gallery; one gallery's FAR varies around it, and most
with one-photo people: a single photo that happens to lie near a stranger's face takes many of
that stranger's photos (one false-accepted stranger is often 20-40 of their photos). So a
one-photo person spends more of the budget (:data:`BUCKET_FAR_WEIGHTS`: they count as 1.5
people), which aims the 95th-percentile gallery, rather than the mean, at the 1% promised.

**Per-person offsets.** A one-photo vector that lies close to the average face (its
``mean_face``: the unit mean of the train vectors of half A of pins105-dev, and the median of
its dot product with a one-photo person's vector, so a typical one-photo person's offset is 0)
is close to many strangers too: its impostor scores run high, and a score against it is weaker
evidence. So a person with one photo gets an offset, :func:`person_offsets`:
``ONE_PHOTO_MEAN_FACE_WEIGHT x (v . mean face - reference)``, subtracted from every score
against them (the matcher applies it, so the "1" tails above are of offset scores). On 30
held-out pins people with one photo each it named 65.6% instead of 57.3% at about the same FAR
(benchmarks/results/small_gallery_variants.md).

**Video.** A track's threshold is lowered by the embedder's measured offset once it has 2, 3,
4 or more distinct views (:meth:`OpenSetPolicy.track_threshold`, measured at the same
false-accept rate by ``benchmarks/track_tails.py``); a view scoring more than the measured
``name_drop`` under the threshold ends the track's name (:meth:`OpenSetPolicy.dropped`).

**Pairs.** Two faces are the same person when the cosine of their vectors reaches
:func:`pair_threshold`: an explicit value, else a gallery's calibrated face-to-face one, else
the embedder's measured one (a 1% false-accept rate, ``benchmarks/verify.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.errors import CelebfaceError, InputError
from celebface.recognition.registry import embedder_config, impostor_tails, measured
from celebface.types import UNKNOWN, Match

if TYPE_CHECKING:
    from celebface.gallery.store import Gallery

log = logging.getLogger(__name__)

#: The false-accept rate an uncalibrated gallery aims at: 0.5%, half the 1% it promises,
#: because the tails below are estimated from a few dozen scores past p = 1e-4 (on 80-person
#: galleries aiming at 1% the realised rate was 1.85%, benchmarks/results/recognize.md).
DEFAULT_FAR = 0.005
#: Photos-per-person buckets of the tails: ``(name, fewest photos)``, in increasing order.
PHOTO_BUCKETS = (("1", 1), ("2-4", 2), ("5+", 5))
#: How many people one person of a bucket counts as when the FAR budget is spent (module doc;
#: 1 when not listed). One photo: 1.5, the smallest of (1, 1.25, 1.5, 1.75, 2, ...) whose
#: 95th-percentile gallery stays under 1% FAR on 50 galleries of 30 half-A people (one photo
#: + mirror each, the mean-face offset; strangers: every photo of the other 22 A people, ~3,200
#: a gallery): weight 1: TAR 62.9%, FAR mean 0.61%, p95 1.31%, worst 1.63%; 1.25: 61.1%,
#: 0.49%, 1.03%, 1.50%; 1.5: 59.6%, 0.39%, 0.84%, 1.19%; 2 (every gallery under 1%): 57.2%,
#: 0.28%, 0.58%, 0.95%. On half B (held out; benchmarks/results/small_gallery.md): 1.5:
#: 63.3%, mean 0.35%, p95 0.90%, worst 1.35% (2 of 50 galleries over 1%); 1: 66.4%, 0.51%,
#: 1.11%, 1.83% (5 over 1%).
BUCKET_FAR_WEIGHTS = {"1": 1.5}
#: Weight of the mean-face offset of a one-photo person (module doc): chosen on half A of
#: pins105-dev (0.25: TAR 62.3%, FAR 0.44%, worst 1.07%; 0.5: 64.1%, 0.44%, worst 1.10%; the
#: smaller correction kept), checked on half B (benchmarks/results/small_gallery.md).
ONE_PHOTO_MEAN_FACE_WEIGHT = 0.25
#: Used when nothing is known: a classifier's probability, or an embedder not measured above.
FALLBACK_THRESHOLD = 0.5
#: Where an :class:`OpenSetPolicy`'s threshold came from.
SOURCES = ("given", "calibrated", "measured", "fallback")

Tail = Sequence[tuple[float, float]]


class NoThresholdError(CelebfaceError, ValueError):
    """No measured threshold for an embedder: give one explicitly."""


# ------------------------------------------------------------------ the policy
@dataclass(frozen=True)
class OpenSetPolicy:
    """Everything that decides whether a face is named (module doc), made by
    :func:`policy_for`.

    ``threshold``: the unknown threshold of one face's decision score; ``gap_weight``: that
    score's weight of the lead over the runner-up; ``source``: one of :data:`SOURCES`;
    ``calibrated``: whether the gallery holds a calibrated threshold for ``method`` (even when
    ``source`` is ``given``). ``photos``: each enrolled person's photos (their bucket).
    Video: ``view_offsets`` lower a track's threshold for 2, 3, 4+ distinct views, counted
    with ``same_view`` (the cosine at which two views are one; -1 and ``()``: not counted);
    ``name_drop``: how far under the threshold a view of a one-photo / many-photo person may
    score before the track's name ends (None: not measured).
    """

    threshold: float
    gap_weight: float = 0.0
    method: str = "centroid"
    source: str = "given"
    calibrated: bool = False
    photos: Mapping[str, int] = field(default_factory=dict, compare=False)
    view_offsets: tuple[float, ...] = ()
    same_view: float = -1.0
    name_drop: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"policy source {self.source!r} is not one of {', '.join(SOURCES)}")

    # -------------------------------------------------------------- thresholds
    def track_threshold(self, views: int) -> float:
        """The threshold of a video track with ``views`` distinct views: :attr:`threshold`
        (one view), lowered by the embedder's offset for 2, 3, 4 or more views."""
        if views < 2 or not self.view_offsets:
            return self.threshold
        return self.threshold - self.view_offsets[min(views, len(self.view_offsets) + 1) - 2]

    def bucket(self, identity: str) -> str:
        """The :data:`PHOTO_BUCKETS` bucket of an enrolled person (unknown people: 2-4)."""
        return photo_bucket(self.photos.get(identity, 2))

    def drop_for(self, identity: str) -> float | None:
        """The measured name drop of a person: the one-photo value for one photo, else the
        many-photo one (None: none measured)."""
        if not self.name_drop:
            return None
        return self.name_drop[0 if self.photos.get(identity, 2) == 1 else -1]

    # -------------------------------------------------------------- decisions
    def earns(self, score: float, views: int = 1) -> bool:
        """Whether a score for one person reaches the threshold of a track with ``views``
        distinct views (1: a single face)."""
        return score >= self.track_threshold(views)

    def dropped(self, score: float, identity: str) -> bool:
        """Whether a view's score for ``identity`` lies more than the measured name drop
        (:meth:`drop_for`) under the threshold (none measured: never)."""
        drop = self.drop_for(identity)
        return drop is not None and score < self.threshold - drop

    def decide(self, scores: np.ndarray, names: Sequence[str], *, top: np.ndarray | None = None,
               views: Sequence[int] | None = None) -> list[Match]:
        """The decision (name or unknown, similarity, runner-up, decision score) per row.

        ``scores``: every identity's score per row (``(N, len(names))``), or with ``top``
        (indices into ``names``, best first) the scores of those identities. ``views``: each
        row is a video track with that many distinct views (its :meth:`track_threshold`);
        default: one face, :attr:`threshold`."""
        scores = np.asarray(scores, np.float32)
        if top is None:
            if scores.ndim != 2 or scores.shape[1] != len(names):
                raise ValueError(f"scores of shape {scores.shape} do not match {len(names)} "
                                 "names")
            top = np.argsort(-scores, axis=1)[:, : min(2, scores.shape[1])]
            scores = np.take_along_axis(scores, top, axis=1)
        second = scores[:, 1] if scores.shape[1] > 1 else None
        decision = decision_scores(scores[:, 0], second, self.gap_weight)
        threshold = (self.threshold if views is None
                     else np.array([self.track_threshold(v) for v in views]))
        thresholds = np.broadcast_to(np.asarray(threshold, np.float32), decision.shape)
        out = []
        for idx, row, score, t in zip(top, scores, decision, thresholds, strict=True):
            best = float(row[0])
            if accepted(score, t):
                runner = (names[idx[1]], float(row[1])) if len(idx) > 1 else (None, None)
                out.append(Match(names[idx[0]], best, runner[0], runner[1], float(score)))
            else:  # unknown: the runner-up is the closest known person
                out.append(Match(UNKNOWN, best, names[idx[0]], best, float(score)))
        return out


def policy_for(gallery: Gallery | None, method: str, override: float | None = None
               ) -> OpenSetPolicy:
    """The open-set policy of ``gallery`` matched by ``method`` (``model``: a classifier's
    probabilities): ``override`` when given (on the similarity, gap weight 0); else the
    gallery's calibrated threshold and gap weight; else the uncalibrated threshold measured
    for its embedder (:func:`default_threshold`); else (nothing measured, no gallery)
    :data:`FALLBACK_THRESHOLD`."""
    calibrated = gallery is not None and method in gallery.thresholds
    photos: dict[str, int] = {} if gallery is None else gallery.counts()
    if override is not None:
        threshold, gap, source = float(override), 0.0, "given"
    elif gallery is None:
        threshold, gap, source = FALLBACK_THRESHOLD, 0.0, "fallback"
    elif calibrated:
        threshold, source = float(gallery.thresholds[method]), "calibrated"
        # a classifier's softmax already weighs the other people
        gap = 0.0 if method == "model" else float(
            gallery.calibration.get(method, {}).get("gap_weight", 0.0))
    else:
        spec = gallery.spec
        known = method in impostor_tails(spec.name, spec.tta)
        threshold = default_threshold(spec.name, spec.tta, method, len(gallery.names),
                                      list(photos.values()))
        gap, source = 0.0, "measured" if known else "fallback"
    # video: a track's view offsets (counted with the near-duplicate bound) and name drop
    view_offsets: tuple[float, ...] = ()
    same_view, drop = -1.0, None
    if gallery is not None and method != "model":
        cfg, tta = embedder_config(gallery.spec.name), gallery.spec.tta
        bound, offsets = cfg.near_duplicate.get(tta), cfg.view_offsets.get(tta, ())
        if bound is not None and offsets:
            view_offsets, same_view = tuple(offsets), bound
        drop = cfg.name_drop.get(tta)
    return OpenSetPolicy(threshold, gap, method, source, calibrated, photos,
                         view_offsets=view_offsets, same_view=same_view,
                         name_drop=None if drop is None else tuple(drop))


def store_calibration(gallery: Gallery, method: str, threshold: float,
                      record: dict[str, Any]) -> None:
    """Record a calibration (its threshold and ``Calibration.to_dict()``) in ``gallery`` (in
    memory): what :func:`policy_for` reads back."""
    gallery.thresholds[method] = threshold
    gallery.calibration[method] = record
    gallery.info["threshold_note"] = "calibrated"


# ------------------------------------------------------------------ decision scores
def accepted(scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Which decision scores (or pair cosines) reach ``threshold``: the one comparison every
    decision and every measured rate makes."""
    return np.asarray(scores) >= threshold


def same_person(score: float, threshold: float) -> bool:
    """Two faces are the same person when their cosine reaches the pair threshold
    (:func:`pair_threshold`)."""
    return bool(accepted(np.asarray(score), threshold))


def decision_scores(best: np.ndarray, second: np.ndarray | None, gap_weight: float
                    ) -> np.ndarray:
    """``best + gap_weight * (best - second)``; no second identity (a one-person gallery)
    counts as no lead."""
    best = np.asarray(best, np.float32)
    if second is None or not gap_weight:
        return best
    return best + np.float32(gap_weight) * (best - np.asarray(second, np.float32))


def best_scores(scores: np.ndarray, gap_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(decision score, index of best identity)`` per row (the best score itself when
    ``gap_weight`` is 0)."""
    scores = np.asarray(scores, np.float32)
    idx = np.argmax(scores, axis=1)
    best = scores[np.arange(len(scores)), idx]
    if not gap_weight or scores.shape[1] < 2:
        return best, idx
    second = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2]
    return decision_scores(best, second, gap_weight), idx


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


# ------------------------------------------------------------------ uncalibrated thresholds
def person_offsets(embedder: str, tta: str, vectors: np.ndarray,
                   photos: Sequence[int] | np.ndarray,
                   weight: float = ONE_PHOTO_MEAN_FACE_WEIGHT) -> np.ndarray:
    """What the matcher subtracts from the scores against each person (module doc): ``weight x
    (vectors[i] . mean face - reference)`` for a person with one photo (``vectors[i]``: their
    unit vector), 0 for the others and for an embedder without a measured mean face (or
    vectors of another size: a gallery that does not say its embedder)."""
    offsets = np.zeros(len(photos), np.float32)
    mean = measured(embedder, tta).get("mean_face", {})
    ref, face = float(mean.get("reference", 0.0)), mean.get("vector", [])
    vectors = np.asarray(vectors, np.float32)
    if not weight or vectors.ndim != 2 or vectors.shape[1] != len(face):
        return offsets
    single = np.asarray(photos) == 1
    if single.any():
        dots = vectors[single] @ np.asarray(face, np.float32)
        offsets[single] = weight * (dots - ref)
    return offsets


def photo_bucket(photos: int) -> str:
    """The bucket of :data:`PHOTO_BUCKETS` of a person with ``photos`` enrolled photos."""
    name = PHOTO_BUCKETS[0][0]
    for bucket, fewest in PHOTO_BUCKETS:
        if photos >= fewest:
            name = bucket
    return name


def tail_threshold(tail: Tail, p: float) -> float:
    """The score ``t`` with ``P(impostor >= t) = p`` from a measured tail (log-p
    interpolation; clamped to the tail's ends)."""
    ps = np.log([q for q, _ in tail])[::-1]  # increasing
    ts = np.asarray([t for _, t in tail], dtype=np.float64)[::-1]
    return float(np.interp(np.log(max(p, 1e-12)), ps, ts))


def tail_chance(tail: Tail, t: float) -> float:
    """``P(impostor >= t)`` from a measured tail (the inverse of :func:`tail_threshold`)."""
    ts = np.asarray([x for _, x in tail], dtype=np.float64)
    logp = np.log([q for q, _ in tail])
    return float(np.exp(np.interp(t, ts, logp)))


def gallery_threshold(tails: Mapping[str, Tail], photos: Sequence[int],
                      far: float = DEFAULT_FAR,
                      weights: Mapping[str, float] = BUCKET_FAR_WEIGHTS) -> float:
    """The ``t`` at which the people's one-person tails, weighted, add up to ``far``:
    ``sum_i w_b(i) P_b(i)(impostor >= t) = far`` (module doc), with ``photos[i]`` person
    ``i``'s enrolled photos, ``b(i)`` the bucket whose tail they use and ``w`` ``weights``
    (1 when not listed); ``tails`` holds the method's tails per bucket (a missing bucket uses
    the measured one with the most photos, and its weight). Clamped to the measured range."""
    if not len(photos):
        photos = [PHOTO_BUCKETS[-1][1]]
    fallback = [b for b, _ in PHOTO_BUCKETS if b in tails][-1]
    people: dict[str, float] = {}
    for n in photos:
        bucket = photo_bucket(int(n))
        bucket = bucket if bucket in tails else fallback
        people[bucket] = people.get(bucket, 0.0) + weights.get(bucket, 1.0)
    if len(people) == 1:  # one bucket: exactly p = far / (w N)
        (bucket, weight), = people.items()
        return tail_threshold(tails[bucket], far / weight)
    used = [tails[b] for b in people]
    lo = min(t for tab in used for _, t in tab)
    hi = max(t for tab in used for _, t in tab)
    for _ in range(60):  # the sum falls as t rises: bisect
        mid = (lo + hi) / 2
        if sum(n * tail_chance(tails[b], mid) for b, n in people.items()) > far:
            lo = mid
        else:
            hi = mid
    return hi


def default_threshold(embedder: str, tta: str, method: str, people: int,
                      photos: Sequence[int] | int | None = None) -> float:
    """The uncalibrated threshold of a ``people``-person gallery of ``embedder`` vectors whose
    people have ``photos`` enrolled photos each (one count per person, or one count for all;
    None: many, the 5+ bucket) (``FALLBACK_THRESHOLD`` for an embedder or method not
    measured)."""
    tails = impostor_tails(embedder, tta)
    if method not in tails:
        return FALLBACK_THRESHOLD
    if photos is None:
        photos = PHOTO_BUCKETS[-1][1]
    counts = [photos] * max(1, people) if isinstance(photos, int) else list(photos)
    return gallery_threshold(tails[method], counts)


# ------------------------------------------------------------------ pairs and clusters
def embedder_key(embedder: Any) -> tuple[str, str]:
    """``(name, tta)`` of an embedder object."""
    settings = embedder.settings() if hasattr(embedder, "settings") else {}
    return str(getattr(embedder, "name", settings.get("model", "?"))), str(
        settings.get("tta", "none"))


def measured_pair_threshold(name: str, tta: str = "none") -> float | None:
    """The same-person cosine measured for embedder ``name`` with ``tta``, or None."""
    return embedder_config(name).pair_threshold.get(tta)


def pair_threshold(*, embedder: Any | None = None, gallery: Gallery | None = None,
                   override: float | None = None) -> float:
    """The cosine at or above which two faces are the same person: ``override`` when given;
    with a ``gallery``, its calibrated threshold for comparing two faces: its ``knn`` one (a
    face-to-nearest-face cosine, calibrated on strangers) when calibrated, else another
    calibrated method's (thresholds calibrated on a decision score with a gap weight are not
    cosines of a pair and are passed over), else its embedder's measured pair threshold;
    else ``embedder``'s measured one. :class:`NoThresholdError` when there is none."""
    if override is not None:
        return float(override)
    if gallery is None:
        key = embedder_key(embedder)
        value = measured_pair_threshold(*key)
        if value is None:
            raise NoThresholdError(
                f"no measured pair threshold for embedder {key[0]!r} (tta {key[1]}): give one "
                "(--threshold), or measure it with benchmarks/verify.py")
        return value
    for method in ("knn", "centroid", "topk"):
        policy = policy_for(gallery, method)
        if policy.calibrated and not policy.gap_weight:
            if method != "knn":
                log.warning("%s: no calibrated knn threshold; using the %s one (face-to-%s "
                            "cosine); run 'celebface calibrate --match knn --gap-weight 0' for a "
                            "face-to-face threshold", gallery.path, method, method)
            return policy.threshold
    value = measured_pair_threshold(gallery.spec.name, gallery.spec.tta)
    if value is None:
        raise NoThresholdError(f"{gallery.path}: gallery is not calibrated and embedder "
                               f"{gallery.spec.name!r} has no measured pair threshold; run "
                               "'celebface calibrate' or give --threshold")
    log.warning("%s: gallery is not calibrated; using the embedder's pair threshold %.3f",
                gallery.path, value)
    return value


def cluster_threshold(embedder: Any, method: str = "rerank") -> float:
    """The measured clustering cosine of ``embedder`` for ``method`` (its pair threshold when
    none was measured)."""
    name, tta = embedder_key(embedder)
    value = embedder_config(name).cluster_threshold.get((tta, method))
    if value is not None:
        return value
    value = pair_threshold(embedder=embedder)
    log.warning("no measured %s cluster threshold for %s (tta %s): using its pair threshold "
                "%.3f", method, name, tta, value)
    return value


def rerank_cut(embedder: Any) -> float | None:
    """The measured re-ranked distance cut of ``embedder`` for ``rerank`` clustering, or None
    when none was measured."""
    name, tta = embedder_key(embedder)
    return embedder_config(name).rerank_cut.get(tta)
