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

from celebface.recognition.registry import add_impostor_tails, embedder_config

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
            (0.2, 0.9039), (0.1, 0.9164), (0.05, 0.925), (0.02, 0.9331), (0.01, 0.9378),
            (0.005, 0.942), (0.002, 0.9462), (0.001, 0.9491), (0.0005, 0.9513), (0.0002, 0.9541),
            (0.0001, 0.9575), (5e-05, 0.9589),
        ],
        "knn": [
            (0.2, 0.9149), (0.1, 0.9248), (0.05, 0.9316), (0.02, 0.9385), (0.01, 0.9424),
            (0.005, 0.9456), (0.002, 0.9496), (0.001, 0.9521), (0.0005, 0.9539), (0.0002, 0.9567),
            (0.0001, 0.9582), (5e-05, 0.9594),
        ],
        "topk": [
            (0.2, 0.9073), (0.1, 0.9177), (0.05, 0.9248), (0.02, 0.9318), (0.01, 0.9358),
            (0.005, 0.9391), (0.002, 0.9426), (0.001, 0.9447), (0.0005, 0.9467), (0.0002, 0.9487),
            (0.0001, 0.9503), (5e-05, 0.9513),
        ],
    },
    ("dlib", "flip"): {
        "centroid": [
            (0.2, 0.9064), (0.1, 0.9188), (0.05, 0.9273), (0.02, 0.9353), (0.01, 0.9403),
            (0.005, 0.9443), (0.002, 0.9485), (0.001, 0.9511), (0.0005, 0.9544), (0.0002, 0.9572),
            (0.0001, 0.9591), (5e-05, 0.9633),
        ],
        "knn": [
            (0.2, 0.9187), (0.1, 0.9283), (0.05, 0.9351), (0.02, 0.9417), (0.01, 0.9453),
            (0.005, 0.9485), (0.002, 0.9524), (0.001, 0.9545), (0.0005, 0.9575), (0.0002, 0.9599),
            (0.0001, 0.9609), (5e-05, 0.9623),
        ],
        "topk": [
            (0.2, 0.9112), (0.1, 0.9214), (0.05, 0.9285), (0.02, 0.9353), (0.01, 0.9393),
            (0.005, 0.9424), (0.002, 0.9457), (0.001, 0.9479), (0.0005, 0.9501), (0.0002, 0.9522),
            (0.0001, 0.9539), (5e-05, 0.9568),
        ],
    },
    ("dlib+facenet", "none"): {
        "centroid": [
            (0.2, 0.7741), (0.1, 0.7981), (0.05, 0.8157), (0.02, 0.8331), (0.01, 0.8433),
            (0.005, 0.8522), (0.002, 0.8618), (0.001, 0.8685), (0.0005, 0.8747), (0.0002, 0.8811),
            (0.0001, 0.8848), (5e-05, 0.888),
        ],
        "knn": [
            (0.2, 0.7865), (0.1, 0.8076), (0.05, 0.8233), (0.02, 0.8391), (0.01, 0.8478),
            (0.005, 0.8553), (0.002, 0.8639), (0.001, 0.8686), (0.0005, 0.8739), (0.0002, 0.8819),
            (0.0001, 0.8875), (5e-05, 0.8913),
        ],
        "topk": [
            (0.2, 0.7731), (0.1, 0.7945), (0.05, 0.8105), (0.02, 0.826), (0.01, 0.8351),
            (0.005, 0.8431), (0.002, 0.8516), (0.001, 0.8581), (0.0005, 0.8631), (0.0002, 0.8694),
            (0.0001, 0.8729), (5e-05, 0.8758),
        ],
    },
}
add_impostor_tails(IMPOSTOR_TAILS)  # each embedder's registry entry references its tables
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
    tails = embedder_config(embedder).impostor_tails.get(tta, {})
    if method not in tails:
        return FALLBACK_THRESHOLD
    return tail_threshold(tails[method], DEFAULT_FAR / max(1, people))
