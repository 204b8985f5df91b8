"""Where the face is, for an embedder: the rules of :mod:`celebface.detection.finder` (one
:class:`~celebface.detection.finder.FaceFinder` for every stage that embeds) and the cache key
of a located face.

A face whose box and landmarks are known (a detector found it, or a ``celebface crop`` folder
carries it) is used as it is. For an image whose face is not known, the rule decides
(:meth:`FaceFinder.locate <celebface.detection.finder.FaceFinder.locate>`): ``auto`` (the
default for ``embed``: the largest confident face, found by a large-face pass then the full
search, else the whole image), ``detect`` (the largest confident face, else skip) or
``whole``.

``auto``'s two passes, measured on pins105-dev, torch threads as the CLI picks them, same runs
(``benchmarks/results/locate.md``, ``embed.md``): locating 2.3x faster (16.2 -> 6.9 ms a
photo); ``celebface embed`` on the tight crops 5.0-5.8x face_recognition's loop in three runs
(3.3-3.6x with the full search only). Val accuracy did not move beyond MTCNN's own jitter: on
7,429 photos the paired centroid margin changed by +0.0001 +- 0.0001; on all 14,857 the four
classifiers moved by -0.46 to +0.46 points depending on the batch size (MTCNN's faces no
longer depend on the batch since its ``VERSION`` 2: ``benchmarks/batch_faces.py``).
``benchmarks/align.py``: on these crops MTCNN's face beats handing the whole image to dlib's
aligner.

How a located face becomes the network's input (the aligned chip) is the embedder's own
business (e.g. :class:`celebface.recognition.dlib_resnet.DlibEmbedder`'s ``alignment``).
Embedding caches key an ``auto`` face on ``LARGE_SIDE`` and ``LARGE_FACE`` too, and a
detected face on MTCNN's :data:`~celebface.detection.mtcnn.VERSION` (:func:`face_tag`), so
vectors from another first pass or an older detector are not reused.
"""

from __future__ import annotations

import numpy as np

from celebface.detection import finder
from celebface.detection.finder import RULES, check_rule
from celebface.types import Face

#: The rule ``embed`` (and every stage that embeds a dataset) uses by default.
DEFAULT_RULE = "auto"

__all__ = ["DEFAULT_RULE", "RULES", "check_rule", "face_tag"]


def face_tag(face: Face | None, rule: str = DEFAULT_RULE) -> str:
    """What decides the chip, for cache keys: the known geometry (rounded), or the rule."""
    if face is None:  # auto: its first pass's geometry too (a change must not reuse vectors)
        from celebface.detection.mtcnn import VERSION

        if rule == "auto":
            return f"rule:{rule}/{finder.LARGE_SIDE}/{finder.LARGE_FACE}/mtcnn{VERSION}"
        return f"rule:{rule}/mtcnn{VERSION}" if rule == "detect" else f"rule:{rule}"
    parts = [f"{v:.1f}" for v in face.box]
    if face.landmarks is not None:
        parts += [f"{v:.1f}" for v in np.asarray(face.landmarks).reshape(-1)]
    return "face:" + ",".join(parts)
