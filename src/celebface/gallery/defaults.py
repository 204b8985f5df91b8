"""Unknown thresholds of a gallery that was never calibrated: measured, per embedder.

A stranger is accepted when their best score over the gallery's people passes the threshold,
so the false-accept rate grows with the people: a stranger passes ``t`` with chance about
``sum_i p_i(t)``, where ``p_i(t)`` is the chance that ONE enrolled person ``i`` scores a
stranger at least ``t``. ``p_i`` depends on how many photos person ``i`` has: a one-photo
"centroid" is a single noisy vector, whose impostor (and genuine) scores are lower than a
many-photo centroid's. :data:`IMPOSTOR_TAILS` holds the measured one-person tails per
photos-per-person bucket (:data:`PHOTO_BUCKETS`); the rule (:func:`gallery_threshold`): the
uncalibrated threshold is the ``t`` at which ``sum_i p_bucket(i)(t) = DEFAULT_FAR``, so an
N-person gallery whose people all fall in one bucket uses that bucket's ``t`` of
``p = DEFAULT_FAR / N``, and a mixed gallery spends the same budget over its people. These
thresholds apply to the similarity itself (gap weight 0, see :mod:`celebface.gallery.matching`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from celebface.recognition.registry import add_impostor_tails, embedder_config

#: The false-accept rate an uncalibrated gallery aims at: 0.5%, half the 1% it promises,
#: because the tails below are estimated from a few dozen scores past p = 1e-4 (on 80-person
#: galleries aiming at 1% the realised rate was 1.85%, benchmarks/results/recognize.md).
DEFAULT_FAR = 0.005
#: Photos-per-person buckets of the tails: ``(name, fewest photos)``, in increasing order.
PHOTO_BUCKETS = (("1", 1), ("2-4", 2), ("5+", 5))
#: Upper tails of ONE enrolled person's scores against strangers, per (embedder, TTA), match
#: method and photos-per-person bucket: ``(p, t)`` = a stranger scores at least ``t`` against
#: one given person with chance ``p`` (interpolated in log p). Measured by
#: benchmarks/thresholds.py on half of pins105-dev's people (1 photo, enrolled with its mirror
#: image as enroll does, or flip TTA; 3 photos for 2-4; all ~116 train photos for 5+) and
#: checked on the other half (benchmarks/results/thresholds_dlib.md, _dlib_flip.md). An
#: embedder measured only with many photos (dlib+facenet: _dlib+facenet.md) uses its 5+ tail
#: for every person.
IMPOSTOR_TAILS: dict[tuple[str, str], dict[str, dict[str, list[tuple[float, float]]]]] = {
    ("dlib", "none"): {
        "centroid": {
            "1": [
                (0.2, 0.882), (0.1, 0.8962), (0.05, 0.9064), (0.02, 0.9163), (0.01, 0.9225),
                (0.005, 0.9274), (0.002, 0.9329), (0.001, 0.9366), (0.0005, 0.9392),
                (0.0002, 0.943), (0.0001, 0.9456), (5e-05, 0.9476), (2e-05, 0.9498), (1e-05, 0.95),
            ],
            "2-4": [
                (0.2, 0.8953), (0.1, 0.9084), (0.05, 0.9175), (0.02, 0.9264), (0.01, 0.9317),
                (0.005, 0.9363), (0.002, 0.9411), (0.001, 0.9442), (0.0005, 0.947),
                (0.0002, 0.9503), (0.0001, 0.9525), (5e-05, 0.9539), (2e-05, 0.9567),
                (1e-05, 0.9605),
            ],
            "5+": [
                (0.2, 0.9038), (0.1, 0.9163), (0.05, 0.925), (0.02, 0.9332), (0.01, 0.938),
                (0.005, 0.9418), (0.002, 0.9465), (0.001, 0.949), (0.0005, 0.9516),
                (0.0002, 0.9547), (0.0001, 0.9563), (5e-05, 0.9582),
            ],
        },
        "knn": {
            "1": [
                (0.2, 0.882), (0.1, 0.8962), (0.05, 0.9064), (0.02, 0.9163), (0.01, 0.9225),
                (0.005, 0.9274), (0.002, 0.9329), (0.001, 0.9366), (0.0005, 0.9392),
                (0.0002, 0.943), (0.0001, 0.9456), (5e-05, 0.9476), (2e-05, 0.9498), (1e-05, 0.95),
            ],
            "2-4": [
                (0.2, 0.89), (0.1, 0.9026), (0.05, 0.9114), (0.02, 0.9201), (0.01, 0.9255),
                (0.005, 0.9299), (0.002, 0.935), (0.001, 0.9384), (0.0005, 0.9412),
                (0.0002, 0.9443), (0.0001, 0.9466), (5e-05, 0.9486), (2e-05, 0.9508),
                (1e-05, 0.9513),
            ],
            "5+": [
                (0.2, 0.9148), (0.1, 0.9246), (0.05, 0.9317), (0.02, 0.9386), (0.01, 0.9426),
                (0.005, 0.9458), (0.002, 0.9494), (0.001, 0.9515), (0.0005, 0.9532),
                (0.0002, 0.9567), (0.0001, 0.9579), (5e-05, 0.9591),
            ],
        },
        "topk": {
            "1": [
                (0.2, 0.882), (0.1, 0.8962), (0.05, 0.9064), (0.02, 0.9163), (0.01, 0.9225),
                (0.005, 0.9274), (0.002, 0.9329), (0.001, 0.9366), (0.0005, 0.9392),
                (0.0002, 0.943), (0.0001, 0.9456), (5e-05, 0.9476), (2e-05, 0.9498), (1e-05, 0.95),
            ],
            "2-4": [
                (0.2, 0.8777), (0.1, 0.8907), (0.05, 0.8997), (0.02, 0.9086), (0.01, 0.9139),
                (0.005, 0.9184), (0.002, 0.9234), (0.001, 0.9266), (0.0005, 0.929),
                (0.0002, 0.9324), (0.0001, 0.9343), (5e-05, 0.9362), (2e-05, 0.9387),
                (1e-05, 0.9402),
            ],
            "5+": [
                (0.2, 0.9072), (0.1, 0.9176), (0.05, 0.9247), (0.02, 0.9318), (0.01, 0.9359),
                (0.005, 0.9391), (0.002, 0.9425), (0.001, 0.9447), (0.0005, 0.9468),
                (0.0002, 0.9484), (0.0001, 0.9498), (5e-05, 0.9508),
            ],
        },
    },
    ("dlib", "flip"): {
        "centroid": {
            "1": [
                (0.2, 0.8844), (0.1, 0.8984), (0.05, 0.9086), (0.02, 0.9183), (0.01, 0.9245),
                (0.005, 0.9294), (0.002, 0.935), (0.001, 0.9382), (0.0005, 0.9411),
                (0.0002, 0.9448), (0.0001, 0.9475), (5e-05, 0.9502), (2e-05, 0.9519),
                (1e-05, 0.9537),
            ],
            "2-4": [
                (0.2, 0.8985), (0.1, 0.9116), (0.05, 0.9206), (0.02, 0.9294), (0.01, 0.9347),
                (0.005, 0.9392), (0.002, 0.944), (0.001, 0.9472), (0.0005, 0.9499),
                (0.0002, 0.9534), (0.0001, 0.9555), (5e-05, 0.9587), (2e-05, 0.9615),
                (1e-05, 0.9638),
            ],
            "5+": [
                (0.2, 0.9062), (0.1, 0.9189), (0.05, 0.9273), (0.02, 0.9355), (0.01, 0.9404),
                (0.005, 0.9444), (0.002, 0.9486), (0.001, 0.9512), (0.0005, 0.9549),
                (0.0002, 0.9578), (0.0001, 0.9605), (5e-05, 0.9616),
            ],
        },
        "knn": {
            "1": [
                (0.2, 0.8844), (0.1, 0.8984), (0.05, 0.9086), (0.02, 0.9183), (0.01, 0.9245),
                (0.005, 0.9294), (0.002, 0.935), (0.001, 0.9382), (0.0005, 0.9411),
                (0.0002, 0.9448), (0.0001, 0.9475), (5e-05, 0.9502), (2e-05, 0.9519),
                (1e-05, 0.9537),
            ],
            "2-4": [
                (0.2, 0.8942), (0.1, 0.9067), (0.05, 0.9154), (0.02, 0.9242), (0.01, 0.9293),
                (0.005, 0.9336), (0.002, 0.9385), (0.001, 0.9416), (0.0005, 0.9442),
                (0.0002, 0.9475), (0.0001, 0.95), (5e-05, 0.9523), (2e-05, 0.9545),
                (1e-05, 0.9564),
            ],
            "5+": [
                (0.2, 0.9186), (0.1, 0.9282), (0.05, 0.935), (0.02, 0.9415), (0.01, 0.9454),
                (0.005, 0.9486), (0.002, 0.9519), (0.001, 0.9548), (0.0005, 0.9568),
                (0.0002, 0.959), (0.0001, 0.9602), (5e-05, 0.9609),
            ],
        },
        "topk": {
            "1": [
                (0.2, 0.8844), (0.1, 0.8984), (0.05, 0.9086), (0.02, 0.9183), (0.01, 0.9245),
                (0.005, 0.9294), (0.002, 0.935), (0.001, 0.9382), (0.0005, 0.9411),
                (0.0002, 0.9448), (0.0001, 0.9475), (5e-05, 0.9502), (2e-05, 0.9519),
                (1e-05, 0.9537),
            ],
            "2-4": [
                (0.2, 0.8825), (0.1, 0.8953), (0.05, 0.9043), (0.02, 0.9131), (0.01, 0.9183),
                (0.005, 0.9227), (0.002, 0.9273), (0.001, 0.9307), (0.0005, 0.9333),
                (0.0002, 0.9367), (0.0001, 0.9397), (5e-05, 0.9414), (2e-05, 0.9455),
                (1e-05, 0.9468),
            ],
            "5+": [
                (0.2, 0.911), (0.1, 0.9214), (0.05, 0.9284), (0.02, 0.9354), (0.01, 0.9393),
                (0.005, 0.9423), (0.002, 0.9455), (0.001, 0.9481), (0.0005, 0.9505),
                (0.0002, 0.9523), (0.0001, 0.9532), (5e-05, 0.9556),
            ],
        },
    },
    ("dlib+facenet", "none"): {
        "centroid": {"5+": [
            (0.2, 0.7741), (0.1, 0.7981), (0.05, 0.8157), (0.02, 0.8331), (0.01, 0.8433),
            (0.005, 0.8522), (0.002, 0.8618), (0.001, 0.8685), (0.0005, 0.8747), (0.0002, 0.8811),
            (0.0001, 0.8848), (5e-05, 0.888),
        ]},
        "knn": {"5+": [
            (0.2, 0.7865), (0.1, 0.8076), (0.05, 0.8233), (0.02, 0.8391), (0.01, 0.8478),
            (0.005, 0.8553), (0.002, 0.8639), (0.001, 0.8686), (0.0005, 0.8739), (0.0002, 0.8819),
            (0.0001, 0.8875), (5e-05, 0.8913),
        ]},
        "topk": {"5+": [
            (0.2, 0.7731), (0.1, 0.7945), (0.05, 0.8105), (0.02, 0.826), (0.01, 0.8351),
            (0.005, 0.8431), (0.002, 0.8516), (0.001, 0.8581), (0.0005, 0.8631), (0.0002, 0.8694),
            (0.0001, 0.8729), (5e-05, 0.8758),
        ]},
    },
}
add_impostor_tails(IMPOSTOR_TAILS)  # each embedder's registry entry references its tables
#: Used when nothing is known: a classifier's probability, or an embedder not measured above.
FALLBACK_THRESHOLD = 0.5

Tail = Sequence[tuple[float, float]]


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
                      far: float = DEFAULT_FAR) -> float:
    """The ``t`` at which the people's one-person tails add up to ``far``:
    ``sum_i P_bucket(i)(impostor >= t) = far`` (module doc), with ``photos[i]`` person ``i``'s
    enrolled photos and ``tails`` the method's tails per bucket (a missing bucket uses the
    measured one with the most photos). Clamped to the measured range."""
    if not len(photos):
        photos = [PHOTO_BUCKETS[-1][1]]
    fallback = [b for b, _ in PHOTO_BUCKETS if b in tails][-1]
    people: dict[str, int] = {}
    for n in photos:
        bucket = photo_bucket(int(n))
        bucket = bucket if bucket in tails else fallback
        people[bucket] = people.get(bucket, 0) + 1
    if len(people) == 1:  # one bucket: exactly p = far / N
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
    tails = embedder_config(embedder).impostor_tails.get(tta, {})
    if method not in tails:
        return FALLBACK_THRESHOLD
    if photos is None:
        photos = PHOTO_BUCKETS[-1][1]
    counts = [photos] * max(1, people) if isinstance(photos, int) else list(photos)
    return gallery_threshold(tails[method], counts)
