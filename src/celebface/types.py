"""The result types: :class:`Face` flows from detector to embedder to matcher; a
:class:`Decision` names one face (voted over a video track), a :class:`Prediction` is a
trained classifier's answer for one image, a :class:`Verification` compares two faces."""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from celebface.errors import CelebfaceError

UNKNOWN = "unknown"
#: The longest person's name, in characters.
MAX_NAME_LENGTH = 64


class InvalidNameError(CelebfaceError, ValueError):
    """A person's name that cannot be used; the message names it and says why."""


def printable(text: str) -> str:
    """``text`` on one line: control and invisible characters escaped (``\\n``, ``\\t``,
    ``\\u200b``), bytes that were not UTF-8 (surrogate escapes) as ``\\xff``."""
    out = []
    for c in text:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif unicodedata.category(c).startswith("C"):
            out.append(repr(c)[1:-1] if c.isascii() else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def person_name(name: str) -> str:
    """The one rule for a person's name, applied by ``enroll`` (folder names), the store
    (:meth:`Gallery.add <celebface.gallery.Gallery.add>`, ``rename``) and the service alike:
    ``name`` in one spelling (Unicode NFC: a composed and a decomposed "é" are one person),
    else :class:`InvalidNameError`. Names are refused, never rewritten (beyond NFC).

    Refused: empty; longer than :data:`MAX_NAME_LENGTH`; a leading or trailing space; a path
    separator; a control, format or other invisible character (newline, tab, zero-width
    space), which includes the surrogate escapes of bytes that are not UTF-8 (a folder named
    ``b\xffb``) and U+FFFD (bytes replaced while decoding); ``.``/``..``; and ``unknown``,
    the name of an unrecognised face, in any case or width (NFKC casefold: ``ＵＮＫＮＯＷＮ``).
    """
    def refuse(reason: str) -> InvalidNameError:
        shown = printable(name) if isinstance(name, str) else repr(name)
        return InvalidNameError(f"person name '{shown}': {reason}")

    if not isinstance(name, str) or not name.strip():
        raise refuse("is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise refuse(f"is longer than {MAX_NAME_LENGTH} characters")
    if name != name.strip():
        raise refuse("starts or ends with a space")
    if "/" in name or "\\" in name:
        raise refuse("contains a path separator")
    if "\ufffd" in name:
        raise refuse("holds bytes that are not text (U+FFFD); use a UTF-8 name")
    if any(unicodedata.category(c) in ("Cs",) for c in name):
        raise refuse("is not valid UTF-8 (undecodable bytes); use a UTF-8 name")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise refuse("contains a control or invisible character")
    if name in (".", "..") or unicodedata.normalize("NFKC", name).casefold() == UNKNOWN:
        raise refuse("is reserved")
    return unicodedata.normalize("NFC", name)


@dataclass(frozen=True)
class Face:
    """A face found in an image, enriched by later stages.

    ``box`` is ``(x1, y1, x2, y2)`` in source-image pixels. ``landmarks`` is a ``(5, 2)`` array
    (left eye, right eye, nose, left mouth corner, right mouth corner, as seen in the image).
    The detector fills box/score/landmarks, the embedder ``embedding``, the matcher
    ``identity``/``similarity``/``runner_up``, and the video tracker ``track_id``; the
    attribute plugins (:mod:`celebface.attributes`) ``age`` (years), ``gender`` (``female`` or
    ``male``) with ``gender_probability``, and ``pose`` (yaw, pitch, roll in degrees,
    :func:`celebface.attributes.pose.head_pose`).
    """

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, compare=False)
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    identity: str | None = None
    similarity: float | None = None
    runner_up: str | None = None
    runner_up_similarity: float | None = None
    track_id: int | None = None
    age: float | None = None
    gender: str | None = None
    gender_probability: float | None = None
    pose: tuple[float, float, float] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def with_(self, **changes: Any) -> Face:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> Face:
        """Map coordinates: ``new = old * factor + offset`` (box and landmarks)."""
        ox, oy = offset
        x1, y1, x2, y2 = self.box
        box = (x1 * factor + ox, y1 * factor + oy, x2 * factor + ox, y2 * factor + oy)
        lm = None
        if self.landmarks is not None:
            lm = self.landmarks * factor + np.asarray([ox, oy], dtype=np.float32)
        return replace(self, box=box, landmarks=lm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (no embedding)."""
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
        }
        if self.landmarks is not None:
            out["landmarks"] = np.round(np.asarray(self.landmarks, dtype=float), 2).tolist()
        for name in ("identity", "similarity", "runner_up", "runner_up_similarity", "track_id",
                     "gender", "gender_probability"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 4) if isinstance(value, float) else value
        if self.age is not None:
            out["age"] = round(float(self.age), 1)
        if self.pose is not None:
            out["pose"] = dict(zip(("yaw", "pitch", "roll"),
                                   (round(float(v), 1) for v in self.pose), strict=True))
        return out


@dataclass(frozen=True)
class Match:
    """Who one face is: ``identity`` (or ``unknown``) with its similarity, the next best
    identity, and the decision ``score`` that was compared with the unknown threshold
    (:mod:`celebface.gallery.policy`); a video track votes over its faces' matches."""

    identity: str
    similarity: float
    runner_up: str | None
    runner_up_similarity: float | None
    score: float | None = None

    @property
    def known(self) -> bool:
        return self.identity != UNKNOWN

    def apply(self, face: Face) -> Face:
        """``face`` named by this match."""
        runner_sim = self.runner_up_similarity
        return face.with_(identity=self.identity, similarity=float(self.similarity),
                          runner_up=self.runner_up,
                          runner_up_similarity=None if runner_sim is None else float(runner_sim))


#: The older name of :class:`Match`.
Decision = Match


@dataclass
class Prediction:
    """The identity predicted for one image, its probability, the ``top_k`` (name, probability)
    pairs best first, and for models that also locate the face, its ``box`` (x1, y1, x2, y2 in
    the image's pixels)."""

    identity: str
    probability: float
    top_k: list[tuple[str, float]] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identity": self.identity,
            "probability": round(float(self.probability), 6),
            "top_k": [[n, round(float(p), 6)] for n, p in self.top_k],
        }
        if self.box is not None:
            out["box"] = [round(float(v), 2) for v in self.box]
        return out


@dataclass(frozen=True)
class Verification:
    """Whether two faces are the same person: ``same`` is ``score >= threshold`` (cosine).

    ``whole_a``/``whole_b`` say that no face was found in that image, so the whole image was
    used as the face (right for a tight face crop, meaningless for a photo of a scene).
    """

    same: bool
    score: float
    threshold: float
    face_a: Face
    face_b: Face
    whole_a: bool = False
    whole_b: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "same": self.same,
            "score": round(float(self.score), 4),
            "threshold": round(float(self.threshold), 4),
            "face_a": {**self.face_a.to_dict(), "whole_image": self.whole_a},
            "face_b": {**self.face_b.to_dict(), "whole_image": self.whole_b},
        }


def box_overlap(a: Any, b: Any) -> tuple[Any, Any]:
    """Row-wise intersection and union areas of two ``(N, 4)`` ``x1, y1, x2, y2`` box arrays:
    numpy arrays, or torch tensors (differentiable; the multi-output model's losses)."""
    xp = sys.modules[type(a).__module__.split(".")[0]]  # numpy or torch: the same functions
    iw = (xp.minimum(a[:, 2], b[:, 2]) - xp.maximum(a[:, 0], b[:, 0])).clip(min=0)
    ih = (xp.minimum(a[:, 3], b[:, 3]) - xp.maximum(a[:, 1], b[:, 1])).clip(min=0)
    inter = iw * ih

    def area(x: Any) -> Any:
        return (x[:, 2] - x[:, 0]).clip(min=0) * (x[:, 3] - x[:, 1]).clip(min=0)

    return inter, area(a) + area(b) - inter


def paired_iou(a: Any, b: Any) -> Any:
    """Row-wise intersection over union of two ``(N, 4)`` box arrays (see :func:`box_overlap`)."""
    inter, union = box_overlap(a, b)
    return inter / union.clip(min=1e-9)


def box_iou(a: tuple[float, ...] | np.ndarray, b: tuple[float, ...] | np.ndarray) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    return float(paired_iou(np.asarray([a], np.float64), np.asarray([b], np.float64))[0])
