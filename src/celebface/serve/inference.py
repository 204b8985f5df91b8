"""The service's inference part (:class:`Inference`, a part of
:class:`~celebface.serve.service.FaceService`): name, find and embed the faces of uploads, and
verify pairs. A request's faces are found once, the ones the request keeps (``limit``,
``det_prob_threshold``) are embedded, the gallery's index is queried once for all of them, and
each face becomes a reply's face in one place (:func:`face_out`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.attributes import add_attributes
from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.matching import top_n
from celebface.gallery.policy import same_person
from celebface.io import LoadedImage
from celebface.recognition.base import l2_normalize
from celebface.recognizer import Recognizer
from celebface.serve.common import RequestError, display_name
from celebface.serve.config import ServeConfig
from celebface.types import UNKNOWN, Face, Match
from celebface.verification import NoFaceError, verify


class Inference:
    """Name, find and embed faces; verify. Needs the service's models, gallery, recogniser
    and decoder (:class:`~celebface.serve.service.FaceService` has them)."""

    config: ServeConfig
    gallery: Gallery
    recognizer: Recognizer | None
    pair_threshold: float | None

    if TYPE_CHECKING:
        @property
        def embedder(self) -> Any: ...
        @property
        def finder(self) -> Any: ...
        def decode(self, data: bytes, label: str) -> LoadedImage: ...
        def status(self) -> dict[str, Any]: ...

    def _detect(self, img: LoadedImage) -> list[Face]:
        """The faces of a decoded upload, in its decoded pixels (the recogniser's detection
        when there is one, so /v1/detect and /v1/recognize find the same faces)."""
        rec = self.recognizer
        if rec is not None:
            return rec.detect(img.rgb)
        return self.finder.find(img.rgb)

    def recognize(self, data: bytes, label: str = "image", candidates: int = 1,
                  limit: int = 0, min_score: float = 0.0, plugins: Sequence[str] = ()
                  ) -> dict[str, Any]:
        """Every face of one photo, named; boxes and landmarks in the photo's pixels.

        ``candidates``: the best ``candidates`` people per face (``predictions``);
        ``limit``: only the largest ``limit`` faces (0: all); ``min_score``: faces the
        detector is less sure of are left out; both before any face is embedded.
        ``plugins``: the attributes to add (:mod:`celebface.attributes`: age, gender, pose)."""
        img = self.decode(data, label)
        faces = _chosen(self._detect(img), limit, min_score)
        rec = self.recognizer
        named: list[tuple[Face, list[dict[str, Any]] | None]]
        if rec is None or not faces:
            named = [(f.with_(identity=UNKNOWN), None) for f in faces]
        else:
            emb = rec.embed(img.rgb, faces)
            matches, predictions = _named(rec, emb, candidates)
            named = [(m.apply(f.with_(embedding=e)), p) for f, e, m, p
                     in zip(faces, emb, matches, predictions, strict=True)]
        shown = _with_plugins(img.rgb, [f for f, _ in named], plugins)
        return {**_frame(img, [face_out(f, img, label=label_of(f.identity), predictions=p)
                               for f, (_, p) in zip(shown, named, strict=True)]),
                **self.status()}

    def detect(self, data: bytes, label: str = "image", limit: int = 0, min_score: float = 0.0,
               plugins: Sequence[str] = ()) -> dict[str, Any]:
        """Every face of one photo, unnamed: box, landmarks, detector score (and the
        attributes ``plugins`` name)."""
        img = self.decode(data, label)
        faces = _with_plugins(img.rgb, _chosen(self._detect(img), limit, min_score), plugins)
        return _frame(img, [face_out(f, img) for f in faces])

    def embed(self, data: bytes, label: str = "image", limit: int = 0, min_score: float = 0.0
              ) -> dict[str, Any]:
        """Every face of one photo with its embedding (unit length), as the gallery's
        embedder makes them."""
        img = self.decode(data, label)
        faces = _chosen(self._detect(img), limit, min_score)
        emb = (l2_normalize(np.asarray(self.embedder.embed([img.rgb] * len(faces), faces),
                                       np.float32)) if faces else np.zeros((0, 0), np.float32))
        return {**_frame(img, [face_out(f, img, embedding=[round(float(v), 6) for v in e])
                               for f, e in zip(faces, emb, strict=True)]),
                "embedder": self.gallery.spec.name}

    def _largest(self, img: LoadedImage, label: str) -> Face:
        """The face to enrol: the largest that counts, by ``celebface enroll``'s rule."""
        rule = EnrollConfig(detector=self.config.detector).face_rule
        face = self.finder.largest(img.rgb, rule=rule)
        if face is None:
            raise RequestError(f"{label}: no face found", code="no_face")
        return face

    def verify(self, first: bytes, second: bytes, crop: bool = False) -> dict[str, Any]:
        """Are the largest faces of two photos the same person? (celebface.verification,
        with the gallery's pair threshold; a photo without a face: 400 ``no_face`` unless
        ``crop``.)"""

        if self.pair_threshold is None:
            raise RequestError("no same-person threshold for this gallery's embedder: "
                               "calibrate the gallery ('celebface calibrate --match knn')", 409)
        imgs = [self.decode(first, "image1"), self.decode(second, "image2")]
        try:
            v = verify(imgs[0].rgb, imgs[1].rgb, detector=self.finder, embedder=self.embedder,
                       threshold=self.pair_threshold, crop=crop)
        except NoFaceError as exc:
            raise RequestError(f"image{exc.index + 1}: no face found (crop=true compares a "
                               "face crop whole)", code="no_face") from None
        if isinstance(v, list):  # a list comes only with all_faces, which is off here
            raise TypeError("verify() gave a list of pairs for one pair")
        faces = [face_out(f, img, whole_image=whole) for f, img, whole
                 in zip((v.face_a, v.face_b), imgs, (v.whole_a, v.whole_b), strict=True)]
        return {"same": bool(v.same), "score": round(float(v.score), 4),
                "threshold": round(float(v.threshold), 4), "faces": faces}

    def verify_photo(self, photo: str, data: bytes, label: str = "image") -> dict[str, Any]:
        """Is the largest face of an upload the person of stored photo ``photo``?"""
        if self.pair_threshold is None:
            raise RequestError("no same-person threshold for this gallery's embedder: "
                               "calibrate the gallery ('celebface calibrate --match knn')", 409)
        stored = self.gallery.rows_of_photo(photo)
        if not len(stored):
            raise RequestError(f"no photo {photo!r} in the gallery", 404, "no_such_photo")
        img = self.decode(data, label)
        face = self._largest(img, label)
        emb = l2_normalize(np.asarray(self.embedder.embed([img.rgb], [face]), np.float32))
        score = float((stored @ emb[0]).max())
        return {"same": same_person(score, self.pair_threshold), "score": round(score, 4),
                "threshold": round(float(self.pair_threshold), 4), "photo": photo,
                "face": face_out(face, img)}

    def recognize_embeddings(self, embeddings: Sequence[Sequence[float]], candidates: int = 1
                             ) -> dict[str, Any]:
        """Name face embeddings sent by the client (of this gallery's embedder)."""
        rec = self.recognizer
        if rec is None:
            raise RequestError("no one is enrolled yet", 409, "empty_gallery")
        emb = np.asarray(embeddings, np.float32)
        dim = self.gallery.dim or int(getattr(self.embedder, "dim", 0))
        if emb.ndim != 2 or emb.shape[1] != dim or not np.isfinite(emb).all():
            raise RequestError(f"embeddings must be lists of {dim} numbers (this gallery's "
                               "embedder)", code="bad_embedding")
        if (np.linalg.norm(emb, axis=1) == 0).any():
            raise RequestError("an embedding of zeros", code="bad_embedding")
        matches, predictions = _named(rec, l2_normalize(emb), candidates)
        results = [{"identity": m.identity, "label": label_of(m.identity),
                    "similarity": round(float(m.similarity), 4), "runner_up": m.runner_up,
                    "runner_up_similarity": None if m.runner_up_similarity is None
                    else round(float(m.runner_up_similarity), 4), "predictions": p}
                   for m, p in zip(matches, predictions, strict=True)]
        return {"results": results, **self.status()}


def _with_plugins(rgb: np.ndarray, faces: list[Face], plugins: Sequence[str]) -> list[Face]:
    """``faces`` with the attributes ``plugins`` name (none: as they are)."""
    if not plugins:
        return faces

    return add_attributes(rgb, faces, plugins)


def _chosen(faces: Sequence[Face], limit: int, min_score: float) -> list[Face]:
    """The faces the detector scored at least ``min_score``, the largest ``limit`` of them
    (0: all), in the order every surface gives faces (highest score first)."""
    kept = [f for f in faces if f.score >= min_score]
    if limit:
        largest = sorted(kept, key=lambda f: -f.area)[:limit]
        kept = [f for f in kept if any(f is g for g in largest)]
    return kept


def _named(rec: Recognizer, embeddings: np.ndarray, candidates: int
           ) -> tuple[list[Match], list[list[dict[str, Any]]]]:
    """The decision for each embedding and its ``candidates`` best people (best first), from
    one query of the gallery's index for all of them."""
    top = top_n(rec.matcher, embeddings, max(candidates, 2))
    names = rec.matcher.names
    people = [[{"name": names[int(i)], "label": display_name(names[int(i)]),
                "similarity": round(float(v), 4)}
               for i, v in zip(ids[:candidates], scores[:candidates], strict=True) if int(i) >= 0]
              for ids, scores in zip(*top, strict=True)]
    return rec.name(embeddings, top), people


def label_of(identity: str | None) -> str:
    """The name to show for a face's identity (``unknown`` as is)."""
    return UNKNOWN if identity in (None, UNKNOWN) else display_name(identity)


def face_out(face: Face, img: LoadedImage, **extra: Any) -> dict[str, Any]:
    """The one way a found face becomes a reply's face (:data:`celebface.serve.schemas.
    FaceOut`): its fields in the photo's own pixels (:meth:`Face.to_dict`), and ``extra``
    (a label, predictions...: None ones left out)."""
    return {**face.scaled(img.scale).to_dict(),
            **{k: v for k, v in extra.items() if v is not None}}


def _frame(img: LoadedImage, faces: list[dict[str, Any]]) -> dict[str, Any]:
    """A reply about one photo: its size and its faces."""
    return {"width": img.source_size[0], "height": img.source_size[1], "faces": faces}
