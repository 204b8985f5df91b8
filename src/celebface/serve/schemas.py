"""Request and response shapes of the HTTP API (they document it at ``/docs``)."""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, create_model

from celebface.types import Face


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in one line (names the photo)")
    code: str = Field(description="a stable name of the error, e.g. 'not_an_image', 'busy'")


class Candidate(BaseModel):
    name: str = Field(description="the person's key (gallery folder name)")
    label: str = Field(description="the name to show ('Jerry Seinfeld' for jerry_seinfeld)")
    similarity: float


#: :class:`~celebface.types.Face` fields no face of the API shows: the embedding (``/v1/embed``
#: adds its own, rounded) and the video track (the video routes give appearances).
HIDDEN_FACE_FIELDS = frozenset({"embedding", "track_id"})

#: The JSON type and description of the Face fields whose JSON differs from their Python type
#: or that need words (:meth:`Face.to_dict <celebface.types.Face.to_dict>` writes them); any
#: other field is shown with its own type, ``None`` when unset.
FACE_JSON: dict[str, tuple[Any, Any]] = {
    "box": (list[float], Field(description="x1, y1, x2, y2 in the photo's (upright) pixels")),
    "score": (float, Field(description="detector confidence")),
    "landmarks": (list[list[float]] | None, Field(
        None, description="eyes, nose, mouth corners: five (x, y) points")),
    "identity": (str | None, Field(None, description="the person's key, or 'unknown'")),
    "similarity": (float | None, Field(None, description="score of the best match")),
    "age": (float | None, Field(None, description="face_plugins=age: estimated age, years")),
    "gender": (str | None, Field(None, description="face_plugins=gender: 'female' or 'male'")),
    "gender_probability": (float | None, Field(None, description="the gender's probability")),
    "pose": (dict[str, float] | None, Field(
        None, description="face_plugins=pose: yaw, pitch, roll in degrees, from the landmarks")),
}

#: What the service adds to a face, each group after the Face field it follows.
FACE_EXTRAS: dict[str, dict[str, tuple[Any, Any]]] = {
    "identity": {"label": (str | None, Field(
        None, description="the person's name to show, or 'unknown'"))},
    "runner_up_similarity": {
        "predictions": (list[Candidate] | None, Field(
            None, description="the best `prediction_count` people, best first")),
        "whole_image": (bool | None, Field(
            None, description="verify: no face was found, the whole photo was compared "
                              "(a crop)")),
    },
}


def face_model(face_type: type = Face, name: str = "FaceOut") -> type[BaseModel]:
    """The response model of a face, made from the fields of ``face_type`` (a
    :class:`~celebface.types.Face`), so a field Face gains is in the API's faces at once:
    :data:`FACE_JSON`'s JSON type where it has one, else the field's own type (unset: None),
    and the service's :data:`FACE_EXTRAS`; :data:`HIDDEN_FACE_FIELDS` left out."""
    hints = typing.get_type_hints(face_type)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(face_type):
        if f.name not in HIDDEN_FACE_FIELDS:
            fields[f.name] = FACE_JSON.get(f.name, (hints[f.name] | None, None))
        fields.update(FACE_EXTRAS.get(f.name, {}))
    return create_model(name, __doc__="A face: what the detector, embedder and matcher found",
                        **fields)


if TYPE_CHECKING:  # made at run time: type checkers see a plain model
    FaceOut = BaseModel
else:
    FaceOut = face_model()


class Status(BaseModel):
    identities: int = Field(description="people in the gallery")
    embeddings: int = Field(description="enrolled photos (one embedding each) in all")
    match: str | None = Field(None, description="match method (centroid, knn, topk, model)")
    threshold: float | None = Field(None, description="unknown threshold in use")
    calibrated: bool = Field(description="whether the threshold was calibrated for the gallery")
    editable: bool
    workers: int


class RecognizeOut(Status):
    width: int
    height: int
    faces: list[FaceOut]


class DetectOut(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


class EmbeddedFace(FaceOut):
    embedding: list[float] = Field(description="unit-length face embedding")


class EmbedOut(BaseModel):
    width: int
    height: int
    embedder: str
    faces: list[EmbeddedFace]


class VerifyOut(BaseModel):
    same: bool
    score: float = Field(description="cosine similarity of the two largest faces")
    threshold: float
    faces: list[FaceOut]


class Person(BaseModel):
    name: str = Field(description="the person's key")
    label: str = Field(description="the name to show")
    photos: int


class Paged(BaseModel):
    page: int = Field(description="this page, from 0")
    size: int = Field(description="items a page")
    total: int = Field(description="items on all pages")
    pages: int


class PeopleOut(Status, Paged):
    people: list[Person]


class Photo(BaseModel):
    id: str = Field(description="the photo's id (a hash of its source)")
    source: str = Field(description="the file name the photo was enrolled from")
    thumbnail: str = Field(description="address of a small picture of the face")


class PhotosOut(Paged):
    name: str
    label: str
    photos: list[Photo]


class AddedPhoto(BaseModel):
    id: str = Field(description="the photo's id (for its thumbnail, deleting or verifying)")
    source: str = Field(description="the file name it was sent with")


class EnrollOut(Status):
    name: str
    label: str = Field(description="the name to show")
    added: int
    added_photos: list[AddedPhoto] = Field(description="id and file name of each photo added")
    photos: int = Field(description="photos of this person now enrolled")
    skipped: list[dict[str, str]] = Field(
        description="photos not used: photo, reason and code of each")


class RemoveOut(Status):
    name: str
    label: str = Field(description="the name to show")
    removed: int


class RemovePhotoOut(RemoveOut):
    photos: int = Field(description="photos of this person left (0: the person is gone)")


class PersonPhoto(Photo):
    name: str = Field(description="the person's key")
    label: str = Field(description="the name to show")


class AllPhotosOut(Paged):
    photos: list[PersonPhoto]


class PhotoIdsIn(BaseModel):
    ids: list[str] = Field(description="photo ids (from a photo list or an add reply)",
                           max_length=10_000)


class RemovePhotosOut(Status):
    removed: int = Field(description="rows removed (a photo enrolled for two people: two)")
    missing: list[str] = Field(description="ids that are not in the gallery")


class RemoveAllOut(Status):
    removed_people: int
    removed: int = Field(description="photos removed")


class VerifyPhotoOut(BaseModel):
    same: bool
    score: float = Field(description="cosine similarity of the upload's largest face and "
                                      "the stored photo's face")
    threshold: float
    photo: str = Field(description="the stored photo's id")
    face: FaceOut


class EmbeddingsIn(BaseModel):
    embeddings: list[list[float]] = Field(description="face embeddings of the gallery's "
                                          "embedder (its dim), e.g. from /v1/embed",
                                          min_length=1, max_length=1000)
    prediction_count: int = Field(1, ge=1, le=100, description="best people listed each")


class EmbeddingMatch(BaseModel):
    identity: str = Field(description="the person's key, or 'unknown'")
    label: str
    similarity: float
    runner_up: str | None = None
    runner_up_similarity: float | None = None
    predictions: list[Candidate]


class RecognizeEmbeddingsOut(Status):
    results: list[EmbeddingMatch]


class PersonIn(BaseModel):
    name: str = Field(description="the new person's name (key)")


class RenameIn(BaseModel):
    name: str = Field(description="the new name (key)")
    merge: bool = Field(False, description="when the new name is enrolled: move every photo "
                                           "there (else 409)")


class RenameOut(Status):
    name: str
    label: str = Field(description="the new name to show")
    from_: str = Field(alias="from")
    from_label: str = Field(description="the old name as it was shown")
    merged: bool
    moved: int = Field(description="photos moved (a merge)")
    photos: int


class HealthOut(BaseModel):
    status: str
    scope: str | None = Field(None, description="what the key sent may do: 'admin' (all; also "
                              "when keys are off) or 'recognize'")
    identities: int | None = Field(None, description="only with a key when keys are on")
    embeddings: int | None = None
    match: str | None = None
    threshold: float | None = None
    calibrated: bool | None = None
    editable: bool | None = None
    workers: int | None = None


#: What each error status of the API means (OpenAPI).
DESCRIPTIONS = {
    400: "bad request: a parameter, field, name or image that cannot be used; a Host header "
         "this server does not answer to (code `bad_host`)",
    401: "no API key or a wrong one (code `unauthorized`); only when keys are on",
    403: "the key's scope does not allow this (code `forbidden`), or a write from another "
         "site's page (code `cross_origin`)",
    404: "no such person or photo",
    409: "the gallery cannot be changed that way (a trained model names faces; a name taken; "
         "no same-person threshold)",
    413: "request body, image bytes or image pixels over the server's limits",
    415: "not an image, or a content type this route does not read",
    503: "the server is busy (its queue is full, code `busy`; another edit holds the gallery, "
         "code `store_busy`): retry after `Retry-After` seconds; or the gallery store is "
         "unavailable (`store_unavailable`) or could not be written (`store_write_failed`)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route returns."""
    return {s: {"model": ErrorOut, "description": DESCRIPTIONS[s]} for s in statuses}
