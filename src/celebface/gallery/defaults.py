"""Unknown thresholds of a gallery that was never calibrated: measured, per embedder.

A stranger is accepted when their best score over the gallery's N people passes the threshold,
so the false-accept rate grows with N. :data:`IMPOSTOR_TAILS` holds ONE enrolled person's
measured impostor tail; an N-person gallery uses the score whose tail is ``DEFAULT_FAR / N``.
These thresholds apply to the similarity itself (gap weight 0, see
:mod:`celebface.gallery.matching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The false-accept rate an uncalibrated gallery aims at: 0.5%, half the 1% it promises,
#: because the tails below are estimated from a few dozen scores past p = 1e-4 (on 80-person
#: galleries aiming at 1% the realised rate was 1.85%, benchmarks/results/recognize.md).
DEFAULT_FAR = 0.005
#: Upper tails of ONE enrolled person's scores against strangers, per (embedder, TTA) and match
#: method: ``(p, t)`` = a stranger scores at least ``t`` against one given person with chance
#: ``p``. A stranger's best score over N people passes ``t`` with chance ~ N p, so an
#: uncalibrated N-person gallery uses the ``t`` of ``p = DEFAULT_FAR / N`` (interpolated in
#: log p). Measured by benchmarks/thresholds.py on half of pins105-dev's people and checked on
#: the other half (benchmarks/results/thresholds_dlib.md, _dlib_flip.md, _dlib+facenet.md).
IMPOSTOR_TAILS: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {
    ("dlib", "none"): {
        "centroid": [
            (0.2, 0.9038), (0.1, 0.9165), (0.05, 0.9249), (0.02, 0.9331), (0.01, 0.9378),
            (0.005, 0.942), (0.002, 0.9462), (0.001, 0.949), (0.0005, 0.9522), (0.0002, 0.9543),
            (0.0001, 0.9558), (5e-05, 0.9592),
        ],
        "knn": [
            (0.2, 0.9152), (0.1, 0.9252), (0.05, 0.932), (0.02, 0.9386), (0.01, 0.9425),
            (0.005, 0.9454), (0.002, 0.9491), (0.001, 0.9515), (0.0005, 0.9536), (0.0002, 0.9559),
            (0.0001, 0.9573), (5e-05, 0.958),
        ],
        "topk": [
            (0.2, 0.9075), (0.1, 0.9179), (0.05, 0.925), (0.02, 0.9318), (0.01, 0.9359),
            (0.005, 0.9391), (0.002, 0.9427), (0.001, 0.9447), (0.0005, 0.9467), (0.0002, 0.9489),
            (0.0001, 0.9511), (5e-05, 0.9516),
        ],
    },
    ("dlib", "flip"): {
        "centroid": [
            (0.2, 0.9064), (0.1, 0.9189), (0.05, 0.9274), (0.02, 0.9353), (0.01, 0.9402),
            (0.005, 0.9443), (0.002, 0.9484), (0.001, 0.9513), (0.0005, 0.9543), (0.0002, 0.9573),
            (0.0001, 0.9588), (5e-05, 0.9625),
        ],
        "knn": [
            (0.2, 0.9189), (0.1, 0.9286), (0.05, 0.9353), (0.02, 0.9418), (0.01, 0.9453),
            (0.005, 0.9485), (0.002, 0.9519), (0.001, 0.9543), (0.0005, 0.9567), (0.0002, 0.9596),
            (0.0001, 0.9609), (5e-05, 0.9622),
        ],
        "topk": [
            (0.2, 0.9114), (0.1, 0.9216), (0.05, 0.9286), (0.02, 0.9353), (0.01, 0.9392),
            (0.005, 0.9422), (0.002, 0.9453), (0.001, 0.9475), (0.0005, 0.9494), (0.0002, 0.9528),
            (0.0001, 0.9541), (5e-05, 0.956),
        ],
    },
    ("dlib+facenet", "none"): {
        "centroid": [
            (0.2, 0.7739), (0.1, 0.7981), (0.05, 0.8157), (0.02, 0.8330), (0.01, 0.8427),
            (0.005, 0.8517), (0.002, 0.8623), (0.001, 0.8689), (0.0005, 0.8748), (0.0002, 0.8812),
            (0.0001, 0.8858), (5e-05, 0.8887),
        ],
        "knn": [
            (0.2, 0.7864), (0.1, 0.8076), (0.05, 0.8228), (0.02, 0.8386), (0.01, 0.8475),
            (0.005, 0.8552), (0.002, 0.8633), (0.001, 0.8691), (0.0005, 0.8745), (0.0002, 0.8809),
            (0.0001, 0.8851), (5e-05, 0.8893),
        ],
        "topk": [
            (0.2, 0.7729), (0.1, 0.7942), (0.05, 0.8098), (0.02, 0.8255), (0.01, 0.8346),
            (0.005, 0.8426), (0.002, 0.8512), (0.001, 0.8578), (0.0005, 0.8630), (0.0002, 0.8691),
            (0.0001, 0.8715), (5e-05, 0.8743),
        ],
    },
}
#: Used when nothing is known: a classifier's probability, or an embedder not measured above.
FALLBACK_THRESHOLD = 0.5


def tail_threshold(tail: Sequence[tuple[float, float]], p: float) -> float:
    """The score ``t`` with ``P(impostor >= t) = p`` from a measured tail (log-p
    interpolation; clamped to the tail's ends)."""
    ps = np.log([q for q, _ in tail])[::-1]  # increasing
    ts = np.asarray([t for _, t in tail], dtype=np.float64)[::-1]
    return float(np.interp(np.log(max(p, 1e-12)), ps, ts))


def default_threshold(embedder: str, tta: str, method: str, people: int) -> float:
    """The uncalibrated threshold of an ``people``-person gallery of ``embedder`` vectors
    (``FALLBACK_THRESHOLD`` for an embedder or method not measured)."""
    tails = IMPOSTOR_TAILS.get((embedder, tta), {})
    if method not in tails:
        return FALLBACK_THRESHOLD
    return tail_threshold(tails[method], DEFAULT_FAR / max(1, people))
