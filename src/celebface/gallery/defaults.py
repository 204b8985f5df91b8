"""Unknown thresholds of a gallery that was never calibrated: measured, per embedder.

A stranger is accepted when their best score over the gallery's people passes the threshold,
so the false-accept rate grows with the people: a stranger passes ``t`` with chance about
``sum_i p_i(t)``, where ``p_i(t)`` is the chance that ONE enrolled person ``i`` scores a
stranger at least ``t``. ``p_i`` depends on how many photos person ``i`` has: a one-photo
"centroid" is a single noisy vector, whose impostor (and genuine) scores are lower than a
many-photo centroid's. The measured one-person tails per photos-per-person bucket
(:data:`PHOTO_BUCKETS`) are package data written by ``benchmarks/thresholds.py``
(:func:`celebface.recognition.registry.impostor_tails`): ``(p, t)`` = a stranger scores at
least ``t`` against one given person with chance ``p`` (interpolated in log p), measured on
half of pins105-dev's people (1 photo, enrolled with its mirror image as enroll does; 3 photos
for 2-4; all ~116 train photos for 5+) and checked on the other half
(``benchmarks/results/thresholds_*.md``); an embedder measured only with many photos uses its
5+ tail for every person. The rule (:func:`gallery_threshold`): the
uncalibrated threshold is the ``t`` at which ``sum_i w_bucket(i) p_bucket(i)(t) = DEFAULT_FAR``,
so an N-person gallery whose people all fall in one bucket uses that bucket's ``t`` of
``p = DEFAULT_FAR / (w N)``, and a mixed gallery spends the same budget over its people. These
thresholds apply to the similarity itself (gap weight 0, see :mod:`celebface.gallery.matching`).

The tails give the FAR of the average gallery; one gallery's FAR varies around it, and most
with one-photo people: a single photo that happens to lie near a stranger's face takes many of
that stranger's photos (one false-accepted stranger is often 20-40 of their photos). So a
one-photo person spends more of the budget (:data:`BUCKET_FAR_WEIGHTS`: they count as 1.5
people), which aims the 95th-percentile gallery, rather than the mean, at the 1% promised.

A one-photo vector that lies close to the average face (its ``mean_face``: the unit mean of
the train vectors of half A of pins105-dev, and the median of its dot product with a one-photo
person's vector, so a typical one-photo person's offset is 0) is close to many
strangers too: its impostor scores run high, and a score against it is weaker evidence. So a
person with one photo gets an offset, :func:`person_offsets`: ``ONE_PHOTO_MEAN_FACE_WEIGHT x
(v . mean face - reference)``, subtracted from every score against them (the matcher applies
it, so the "1" tails below are of offset scores). On 30 held-out pins people with one photo
each it named 65.6% instead of 57.3% at about the same FAR (benchmarks/results/
small_gallery_variants.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from celebface.recognition.registry import impostor_tails, measured

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

Tail = Sequence[tuple[float, float]]


def person_offsets(embedder: str, tta: str, vectors: np.ndarray, photos: Sequence[int],
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
        (bucket, n), = people.items()
        return tail_threshold(tails[bucket], far / n)
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
