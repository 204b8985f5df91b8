"""Unknown thresholds of a gallery that was never calibrated: measured, per embedder.

A stranger is accepted when their best score over the gallery's people passes the threshold,
so the false-accept rate grows with the people: a stranger passes ``t`` with chance about
``sum_i p_i(t)``, where ``p_i(t)`` is the chance that ONE enrolled person ``i`` scores a
stranger at least ``t``. ``p_i`` depends on how many photos person ``i`` has: a one-photo
"centroid" is a single noisy vector, whose impostor (and genuine) scores are lower than a
many-photo centroid's. :data:`IMPOSTOR_TAILS` holds the measured one-person tails per
photos-per-person bucket (:data:`PHOTO_BUCKETS`); the rule (:func:`gallery_threshold`): the
uncalibrated threshold is the ``t`` at which ``sum_i w_bucket(i) p_bucket(i)(t) = DEFAULT_FAR``,
so an N-person gallery whose people all fall in one bucket uses that bucket's ``t`` of
``p = DEFAULT_FAR / (w N)``, and a mixed gallery spends the same budget over its people. These
thresholds apply to the similarity itself (gap weight 0, see :mod:`celebface.gallery.matching`).

The tails give the FAR of the average gallery; one gallery's FAR varies around it, and most
with one-photo people: a single photo that happens to lie near a stranger's face takes many of
that stranger's photos (one false-accepted stranger is often 20-40 of their photos). So a
one-photo person spends more of the budget (:data:`BUCKET_FAR_WEIGHTS`: they count as 1.5
people), which aims the 95th-percentile gallery, rather than the mean, at the 1% promised.

A one-photo vector that lies close to the average face (:data:`MEAN_FACES`) is close to many
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

from celebface.recognition.registry import add_impostor_tails, embedder_config

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
                (0.2, 0.8815), (0.1, 0.8951), (0.05, 0.9048), (0.02, 0.9143), (0.01, 0.9202),
                (0.005, 0.9251), (0.002, 0.9306), (0.001, 0.9338), (0.0005, 0.9367),
                (0.0002, 0.9401), (0.0001, 0.9428), (5e-05, 0.9453), (2e-05, 0.9472),
                (1e-05, 0.9485),
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
                (0.2, 0.8815), (0.1, 0.8951), (0.05, 0.9048), (0.02, 0.9143), (0.01, 0.9202),
                (0.005, 0.9251), (0.002, 0.9306), (0.001, 0.9338), (0.0005, 0.9367),
                (0.0002, 0.9401), (0.0001, 0.9428), (5e-05, 0.9453), (2e-05, 0.9472),
                (1e-05, 0.9485),
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
                (0.2, 0.8815), (0.1, 0.8951), (0.05, 0.9048), (0.02, 0.9143), (0.01, 0.9202),
                (0.005, 0.9251), (0.002, 0.9306), (0.001, 0.9338), (0.0005, 0.9367),
                (0.0002, 0.9401), (0.0001, 0.9428), (5e-05, 0.9453), (2e-05, 0.9472),
                (1e-05, 0.9485),
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
                (0.2, 0.8838), (0.1, 0.8973), (0.05, 0.9069), (0.02, 0.9164), (0.01, 0.9222),
                (0.005, 0.9269), (0.002, 0.9324), (0.001, 0.9357), (0.0005, 0.9383),
                (0.0002, 0.9419), (0.0001, 0.9443), (5e-05, 0.9464), (2e-05, 0.9492),
                (1e-05, 0.9504),
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
                (0.2, 0.8838), (0.1, 0.8973), (0.05, 0.9069), (0.02, 0.9164), (0.01, 0.9222),
                (0.005, 0.9269), (0.002, 0.9324), (0.001, 0.9357), (0.0005, 0.9383),
                (0.0002, 0.9419), (0.0001, 0.9443), (5e-05, 0.9464), (2e-05, 0.9492),
                (1e-05, 0.9504),
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
                (0.2, 0.8838), (0.1, 0.8973), (0.05, 0.9069), (0.02, 0.9164), (0.01, 0.9222),
                (0.005, 0.9269), (0.002, 0.9324), (0.001, 0.9357), (0.0005, 0.9383),
                (0.0002, 0.9419), (0.0001, 0.9443), (5e-05, 0.9464), (2e-05, 0.9492),
                (1e-05, 0.9504),
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
#: Weight of the mean-face offset of a one-photo person (module doc): chosen on half A of
#: pins105-dev (0.25: TAR 62.3%, FAR 0.44%, worst 1.07%; 0.5: 64.1%, 0.44%, worst 1.10%; the
#: smaller correction kept), checked on half B (benchmarks/results/small_gallery.md).
ONE_PHOTO_MEAN_FACE_WEIGHT = 0.25
#: Per (embedder, TTA): ``(reference, mean face)``: the unit mean of the train vectors of half A
#: of pins105-dev, and the median of its dot product with a one-photo person's vector (enrolled
#: as enroll makes it), so a typical one-photo person's offset is 0 (benchmarks/thresholds.py).
MEAN_FACES: dict[tuple[str, str], tuple[float, list[float]]] = {
    ("dlib", "none"): (0.9254, [
        -0.07965, 0.07222, 0.04953, -0.04952, -0.09072, -0.00359, -0.02746, -0.05746, 0.11863,
        -0.04911, 0.13737, -0.01895, -0.18086, 0.00607, -0.0238, 0.09872, -0.12304, -0.10546,
        -0.04551, -0.05043, 0.03401, 0.02734, 4e-05, 0.05818, -0.10676, -0.21746, -0.05626,
        -0.05365, 0.0128, -0.07483, 0.01367, 0.04408, -0.13066, -0.01535, 0.01425, 0.07662,
        -0.03374, -0.08012, 0.1314, 0.02583, -0.13788, -0.00016, 0.04148, 0.20415, 0.14282,
        0.00495, 0.02418, -0.05334, 0.09467, -0.20583, 0.04801, 0.12524, 0.05489, 0.05151, 0.05869,
        -0.12713, 0.02578, 0.09826, -0.14121, 0.05186, 0.05651, -0.04681, 0.00234, -0.05595,
        0.14334, 0.08128, -0.08143, -0.10034, 0.12112, -0.10849, -0.05092, 0.07347, -0.09233,
        -0.13711, -0.19207, 0.02887, 0.293, 0.11141, -0.10906, 0.02765, -0.04558, -0.019, 0.02153,
        0.07331, -0.03608, -0.00652, -0.07822, 0.03778, 0.15971, 0.00025, -0.01456, 0.18229,
        0.01865, -0.01192, 0.0279, 0.04719, -0.0804, -0.00869, -0.09516, -0.02098, 0.00394,
        -0.05117, -0.0128, 0.0731, -0.13382, 0.11785, -0.00984, -0.01802, -0.04361, -0.02365,
        -0.06772, 0.0069, 0.12486, -0.19613, 0.12617, 0.11303, 0.03061, 0.0981, 0.03764, 0.04693,
        0.00446, -0.04508, -0.10169, -0.05165, 0.02273, -0.02878, 0.02315, 0.03542,
    ]),
    ("dlib", "flip"): (0.9254, [
        -0.07984, 0.07236, 0.04928, -0.0496, -0.09062, -0.00371, -0.02729, -0.05744, 0.11865,
        -0.04884, 0.13732, -0.01888, -0.1809, 0.00558, -0.02372, 0.09897, -0.12293, -0.10537,
        -0.04559, -0.05011, 0.03416, 0.02752, 0.0003, 0.05876, -0.10632, -0.21758, -0.0563,
        -0.05358, 0.01281, -0.07505, 0.01349, 0.04447, -0.1305, -0.01542, 0.01459, 0.07693,
        -0.03395, -0.08015, 0.13128, 0.02591, -0.13785, -0.0002, 0.04142, 0.20426, 0.14306,
        0.00509, 0.02415, -0.0535, 0.09447, -0.20577, 0.04784, 0.12549, 0.05432, 0.05158, 0.05882,
        -0.12702, 0.02599, 0.09814, -0.14122, 0.05154, 0.05632, -0.04723, 0.00228, -0.05598,
        0.14328, 0.08119, -0.08151, -0.10035, 0.12102, -0.10866, -0.05099, 0.07363, -0.09238,
        -0.13691, -0.19196, 0.02866, 0.29292, 0.11148, -0.10887, 0.02785, -0.04568, -0.01905,
        0.02135, 0.07344, -0.03618, -0.00668, -0.07831, 0.03779, 0.15947, 0.00049, -0.0143,
        0.18252, 0.01862, -0.01193, 0.02802, 0.04716, -0.0802, -0.0088, -0.09496, -0.02126,
        0.00406, -0.05148, -0.01273, 0.07309, -0.13403, 0.11773, -0.00983, -0.01777, -0.04337,
        -0.02384, -0.06777, 0.00709, 0.1247, -0.19623, 0.12646, 0.11305, 0.03072, 0.09784, 0.03756,
        0.04713, 0.00421, -0.04553, -0.10149, -0.05152, 0.02297, -0.02866, 0.02317, 0.03519,
    ]),
}
add_impostor_tails(IMPOSTOR_TAILS)  # each embedder's registry entry references its tables
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
    ref, face = MEAN_FACES.get((embedder, tta), (0.0, []))
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
    tails = embedder_config(embedder).impostor_tails.get(tta, {})
    if method not in tails:
        return FALLBACK_THRESHOLD
    if photos is None:
        photos = PHOTO_BUCKETS[-1][1]
    counts = [photos] * max(1, people) if isinstance(photos, int) else list(photos)
    return gallery_threshold(tails[method], counts)
