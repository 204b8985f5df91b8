"""Response shapes of the HTTP API (they document it at ``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FaceOut(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in the photo's (upright) pixels")
    score: float = Field(description="detector confidence")
    landmarks: list[list[float]] | None = Field(
        None, description="eyes, nose, mouth corners: five (x, y) points")
    identity: str | None = Field(None, description="the person, or 'unknown'")
    similarity: float | None = Field(None, description="score of the best match")
    runner_up: str | None = None
    runner_up_similarity: float | None = None
    whole_image: bool | None = Field(
        None, description="verify: no face was found, the whole photo was compared (a crop)")


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


class VerifyOut(BaseModel):
    same: bool
    score: float = Field(description="cosine similarity of the two largest faces")
    threshold: float
    faces: list[FaceOut]


class Person(BaseModel):
    name: str
    photos: int


class PeopleOut(Status):
    people: list[Person]


class EnrollOut(Status):
    name: str
    added: int
    photos: int = Field(description="photos of this person now enrolled")
    skipped: list[dict[str, str]] = Field(description="photos not used, with the reason")


class RemoveOut(Status):
    name: str
    removed: int


class HealthOut(Status):
    status: str
