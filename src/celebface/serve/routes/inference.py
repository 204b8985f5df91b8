"""Routes that read faces: ``/v1/recognize``, ``/v1/detect``, ``/v1/embed``, ``/v1/verify``,
``/v1/photos/{photo}/verify`` and ``/v1/recognize/embeddings``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from celebface.serve import schemas
from celebface.serve.deps import (
    PAIR,
    PHOTO,
    READ,
    Count,
    Limit,
    MinScore,
    Plugins,
    Service,
    checked_plugins,
    photo_body,
    read_photos,
)
from celebface.serve.schemas import errors

router = APIRouter(prefix="/v1", dependencies=[READ])
PHOTO_ERRORS = errors(400, 401, 403, 413, 415, 503)
PHOTO_BODY = {"requestBody": photo_body(PHOTO)}


@router.post("/recognize", response_model=schemas.RecognizeOut, summary="Name every face",
             responses=PHOTO_ERRORS, openapi_extra=PHOTO_BODY)
async def recognize(request: Request, service: Service, prediction_count: Count = 1,
                    limit: Limit = 0, det_prob_threshold: MinScore = 0.0,
                    face_plugins: Plugins = "") -> dict[str, Any]:
    """Every face of a photo (multipart field `file` or `image`, base64 JSON, or the raw
    body): box, landmarks, identity or `unknown` (below the gallery's threshold), the name
    to show, similarity, runner-up and the best `prediction_count` people; with
    `face_plugins`, its age, gender and head pose."""
    plugins = checked_plugins(face_plugins)
    [[(label, data)]] = await read_photos(request, PHOTO)
    return await service.run(service.recognize, data, label, prediction_count, limit,
                             det_prob_threshold, plugins)


@router.post("/detect", response_model=schemas.DetectOut, response_model_exclude_none=True,
             summary="Find faces (no names)", responses=PHOTO_ERRORS, openapi_extra=PHOTO_BODY)
async def detect(request: Request, service: Service, limit: Limit = 0,
                 det_prob_threshold: MinScore = 0.0, face_plugins: Plugins = ""
                 ) -> dict[str, Any]:
    """Every face of a photo: box, landmarks and detector score (the detection
    `/v1/recognize` runs); with `face_plugins`, its age, gender and head pose."""
    plugins = checked_plugins(face_plugins)
    [[(label, data)]] = await read_photos(request, PHOTO)
    return await service.run(service.detect, data, label, limit, det_prob_threshold, plugins)


@router.post("/embed", response_model=schemas.EmbedOut, response_model_exclude_none=True,
             summary="Face embeddings", responses=PHOTO_ERRORS, openapi_extra=PHOTO_BODY)
async def embed(request: Request, service: Service, limit: Limit = 0,
                det_prob_threshold: MinScore = 0.0) -> dict[str, Any]:
    """Every face of a photo with its unit-length embedding from the gallery's embedder
    (deepface's `represent`)."""
    [[(label, data)]] = await read_photos(request, PHOTO)
    return await service.run(service.embed, data, label, limit, det_prob_threshold)


@router.post("/verify", response_model=schemas.VerifyOut, summary="Same person?",
             responses=errors(400, 401, 403, 409, 413, 415, 503),
             openapi_extra={"requestBody": photo_body(*PAIR)})
async def verify(request: Request, service: Service, crop: Annotated[bool, Query(
        description="the photos are face crops: one without a detected face is compared "
                    "whole (else it is a 400 `no_face`)")] = False) -> dict[str, Any]:
    """Whether the largest faces of two photos (fields `image1` and `image2`, or
    `source_image` and `target_image`; multipart or base64 JSON) are the same person:
    their cosine similarity against the gallery's calibrated `knn` threshold, else the
    embedder's measured pair threshold (1% false accepts)."""
    [[(_, first)], [(_, second)]] = await read_photos(request, *PAIR)
    return await service.run(service.verify, first, second, crop)


@router.post("/photos/{photo}/verify", response_model=schemas.VerifyPhotoOut,
             summary="Same person as a stored photo?",
             responses=errors(400, 401, 403, 404, 409, 413, 415, 503), openapi_extra=PHOTO_BODY)
async def verify_photo(photo: str, request: Request, service: Service) -> dict[str, Any]:
    """Whether the largest face of a photo (as `/v1/recognize` reads it) is the person
    of enrolled photo `photo` (an id), against the same threshold as `/v1/verify`."""
    [[(label, data)]] = await read_photos(request, PHOTO)
    return await service.run(service.verify_photo, photo, data, label)


@router.post("/recognize/embeddings", response_model=schemas.RecognizeEmbeddingsOut,
             summary="Name embeddings", responses=errors(400, 401, 403, 409, 503))
async def recognize_embeddings(body: schemas.EmbeddingsIn, service: Service) -> dict[str, Any]:
    """Name face embeddings made by the gallery's embedder (e.g. by `/v1/embed`), as
    `/v1/recognize` names faces."""
    return await service.run(service.recognize_embeddings, body.embeddings,
                             body.prediction_count)
