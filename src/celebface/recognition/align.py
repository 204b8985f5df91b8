"""Where the face is, for an embedder: one rule for every stage that embeds.

A face whose box and landmarks are known (a detector found it, or a ``celebface crop`` folder
carries it) is used as it is. For an image whose face is not known, ``rule`` decides:

- ``auto`` (default): the largest confident face MTCNN finds in the image; when there is none,
  the whole image is taken as the face (a tight crop). Such an image is usually a tight crop
  whose face fills most of it (on pins105-dev MTCNN's box is 1.0-1.7x the shorter side), so
  the search has two passes. First MTCNN runs on a copy resized to a shorter side of
  ``LARGE_SIDE`` px and looks for faces of ``LARGE_FACE`` x that side or more (it finds them
  down to about a quarter of the side): a three-level pyramid of the same few pixels whatever
  the photo's size, where faces from 20 px on the photo itself take six larger levels on
  pins105-dev's median photo (121-px shorter side) and more on bigger ones. Then the images
  where it found no confident face get the full search of ``detect``, so a photo with a
  small face still gets that face. In both passes MTCNN retries a miss on a copy with a grey
  border (``pad_on_miss``: a face filling the frame).
  Measured on pins105-dev, torch threads as the CLI picks them, same runs
  (``benchmarks/results/locate.md``, ``embed.md``): locating 2.3x faster (16.2 -> 6.9 ms a
  photo); ``celebface embed`` on the tight crops 5.0-5.8x face_recognition's loop in three
  runs (3.3-3.6x with the full search only). Val accuracy did not move beyond MTCNN's own
  jitter: on 7,429 photos the paired centroid margin changed by +0.0001 +- 0.0001; on all
  14,857 the four classifiers moved by -0.46 to +0.46 points depending on the batch size,
  and the previous rule alone moved them by up to 0.23 points between batches of 48 and 64
  (MTCNN's faces then depended on the batch; since its ``VERSION`` 2 they do not:
  ``benchmarks/batch_faces.py``).
  ``benchmarks/align.py``: on these crops MTCNN's face beats handing the whole image to
  dlib's aligner.
- ``detect``: the full search only (MTCNN's pyramid from 20-px faces); an image without a
  face is skipped (``None`` is returned and the caller drops it): for raw photos.
- ``whole``: the whole image is the face (the old default for crop folders).

A detected face counts when it scores at least the detector's
:data:`~celebface.detection.DEFAULT_MIN_SCORE` (MTCNN 0.9, HOG 0.0); the face of an image is
the largest of them (:func:`pick_face`). Verification, clustering and auditing use the same
faces (:func:`detected_faces`, all of them or the largest).

How a located face becomes the network's input (the aligned chip) is the embedder's own
business (e.g. :class:`celebface.recognition.dlib_resnet.DlibEmbedder`'s ``alignment``).
Embedding caches key an ``auto`` face on ``LARGE_SIDE`` and ``LARGE_FACE`` too, and a
detected face on MTCNN's :data:`~celebface.detection.mtcnn.VERSION` (:func:`face_tag`), so
vectors from another first pass or an older detector are not reused.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.types import Face

log = logging.getLogger(__name__)

RULES = ("auto", "detect", "whole")
DEFAULT_RULE = "auto"
#: ``auto``'s first pass: the shorter side images are resized to, and the smallest face looked
#: for, as a fraction of it.
LARGE_SIDE = 160
LARGE_FACE = 0.4
#: The whole image stands for the face (a tight crop with no face found in it).
WHOLE = Face(box=(0.0, 0.0, 0.0, 0.0), score=0.0)


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InputError(f"unknown face rule {rule!r}: choose one of {', '.join(RULES)}")
    return rule


@functools.lru_cache(maxsize=4)
def _detector(device: str, large: bool = False) -> Any:
    """MTCNN as ``get_detector`` makes it, or (``large``) for a face filling much of the
    image: images resized to a shorter side of ``LARGE_SIDE``, faces of ``LARGE_FACE`` of it
    or more (module doc)."""
    from celebface.detection import get_detector

    if large:
        return get_detector("mtcnn", device=device, short_side=LARGE_SIDE,
                            min_face_size=round(LARGE_FACE * LARGE_SIDE))
    return get_detector("mtcnn", device=device)


def pick_face(faces: Sequence[Face]) -> Face | None:
    """The face an image is about: the largest one (ties: highest score)."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.area, f.score))


def detected_faces(
    images: Sequence[np.ndarray], detector: Any, every: bool = False,
    min_score: float | None = None,
) -> list[list[Face]]:
    """The faces ``detector`` finds in each image that count (scoring at least ``min_score``,
    default the detector's :data:`~celebface.detection.DEFAULT_MIN_SCORE`): the largest one,
    or with ``every`` all of them, highest score first; ``[]`` for an image without one."""
    from celebface.detection import DEFAULT_MIN_SCORE

    if min_score is None:
        min_score = DEFAULT_MIN_SCORE.get(getattr(detector, "name", ""), 0.0)
    out = []
    for faces in detector.detect_batch(list(images)):
        kept = [f for f in faces if f.score >= min_score]
        if every:
            out.append(sorted(kept, key=lambda f: -f.score))
        else:
            out.append([f] if (f := pick_face(kept)) is not None else [])
    return out


def locate_faces(
    images: Sequence[np.ndarray],
    known: Sequence[Face | None] | None = None,
    rule: str = DEFAULT_RULE,
    detector: Any | None = None,
    device: str = "cpu",
    min_score: float | None = None,
    large_detector: Any | None = None,
) -> list[Face | None]:
    """The face to embed in each image: ``known[i]`` when given, else by ``rule`` (module
    doc). The whole image is returned as ``WHOLE``'s box spanning it; ``None`` means skip
    (``detect`` rule, no face). ``detector`` defaults to MTCNN, ``large_detector`` (``auto``'s
    first pass) to MTCNN for large faces, each built once per device."""
    check_rule(rule)
    known = list(known) if known is not None else [None] * len(images)
    out: list[Face | None] = list(known)
    todo = [i for i, f in enumerate(known) if f is None]
    if rule == "auto" and todo:
        _detect_into(out, todo, images, large_detector or _detector(device, large=True),
                     min_score)
        missed = [i for i in todo if out[i] is None]
        log.debug("auto rule: %d of %d faces found by the large-face pass",
                  len(todo) - len(missed), len(todo))
        _detect_into(out, missed, images, detector or _detector(device), min_score)
    elif rule == "detect" and todo:
        _detect_into(out, todo, images, detector or _detector(device), min_score)
    for i in todo:
        if out[i] is None and rule != "detect":
            h, w = images[i].shape[:2]
            out[i] = WHOLE.with_(box=(0.0, 0.0, w - 1.0, h - 1.0))
    return out


def _detect_into(
    out: list[Face | None],
    todo: Sequence[int],
    images: Sequence[np.ndarray],
    detector: Any,
    min_score: float | None,
) -> None:
    """``out[i]``: the face of ``images[i]`` (:func:`detected_faces`' largest)."""
    if not todo:
        return
    found = detected_faces([images[i] for i in todo], detector, min_score=min_score)
    for i, faces in zip(todo, found, strict=True):
        out[i] = faces[0] if faces else None


def face_tag(face: Face | None, rule: str = DEFAULT_RULE) -> str:
    """What decides the chip, for cache keys: the known geometry (rounded), or the rule."""
    if face is None:  # auto: its first pass's geometry too (a change must not reuse vectors)
        from celebface.detection.mtcnn import VERSION

        if rule == "auto":
            return f"rule:{rule}/{LARGE_SIDE}/{LARGE_FACE}/mtcnn{VERSION}"
        return f"rule:{rule}/mtcnn{VERSION}" if rule == "detect" else f"rule:{rule}"
    parts = [f"{v:.1f}" for v in face.box]
    if face.landmarks is not None:
        parts += [f"{v:.1f}" for v in np.asarray(face.landmarks).reshape(-1)]
    return "face:" + ",".join(parts)
