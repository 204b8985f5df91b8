"""Routes over the gallery: people and their photos, listed (a recognition key) and edited
(an admin key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from celebface.serve import schemas
from celebface.serve.deps import (
    ADMIN,
    PHOTO,
    READ,
    Page,
    Search,
    Service,
    Size,
    photo_body,
    read_photos,
)
from celebface.serve.schemas import errors
from celebface.serve.service import RequestError, page_of

router = APIRouter(prefix="/v1")
JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}


def jpeg(data: bytes | None, missing: str) -> Response:
    """A thumbnail reply (never cached unchecked); ``missing``: the 404's reason."""
    if data is None:
        raise RequestError(missing, 404, "no_picture")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get("/people", response_model=schemas.PeopleOut, summary="Everyone enrolled",
            dependencies=[READ], responses=errors(400, 401, 403))
async def people(service: Service, page: Page = 0, size: Size = 100, q: Search = ""
                 ) -> dict[str, Any]:
    """Everyone enrolled (key, name to show, photo count), a page at a time; `q` keeps
    those whose key or shown name holds it."""
    paged = page_of(await service.run(service.people, q), page, size)  # a fresh gallery
    return {"people": paged.pop("items"), **paged, **service.status()}


@router.post("/people/{name}/photos", response_model=schemas.EnrollOut, summary="Enrol photos",
             dependencies=[ADMIN], responses=errors(400, 401, 403, 409, 413, 415, 503),
             openapi_extra={"requestBody": photo_body(PHOTO, many=True)})
async def add_photos(name: str, request: Request, service: Service) -> dict[str, Any]:
    """Add the largest face of each photo (multipart field `file` or `image`, repeatable;
    a JSON list of base64 strings; or one photo as the raw body) to `name`, a new or
    enrolled person."""
    service.valid_name(name)  # refuse a bad name before reading the photos
    [photos] = await read_photos(request, PHOTO, many=True, limit=service.config.max_photos)
    return await service.run(service.enroll, name, photos)


@router.get("/people/{name}/photos", response_model=schemas.PhotosOut,
            summary="A person's photos", dependencies=[READ],
            responses=errors(400, 401, 403, 404))
async def list_photos(name: str, service: Service, page: Page = 0, size: Size = 50
                      ) -> dict[str, Any]:
    """One page of `name`'s enrolled photos: id, source file name, thumbnail address."""
    return await service.run(service.photos, name, page, size)


@router.delete("/people/{name}/photos/{photo}", response_model=schemas.RemovePhotoOut,
               summary="Remove one photo", dependencies=[ADMIN],
               responses=errors(400, 401, 403, 404, 409, 503))
async def remove_photo(name: str, photo: str, service: Service) -> dict[str, Any]:
    """Remove photo `photo` (an id from the photo list) of `name`; the person goes with
    their last photo."""
    return await service.run(service.remove_photo, name, photo)


@router.get("/people/{name}/photos/{photo}/thumbnail", summary="A small photo of one face",
            dependencies=[READ], responses={**JPEG, **errors(400, 401, 403, 404, 503)})
async def photo_thumbnail(name: str, photo: str, service: Service) -> Response:
    return jpeg(await service.run(service.photo_thumbnail, name, photo),
                f"{name!r}: photo {photo} cannot be shown (its file is gone)")


@router.patch("/people/{name}", response_model=schemas.RenameOut, summary="Rename or merge",
              dependencies=[ADMIN], responses=errors(400, 401, 403, 404, 409, 503))
async def rename(name: str, change: schemas.RenameIn, service: Service) -> dict[str, Any]:
    """Rename `name` to `change.name`; when that person is enrolled already, 409 unless
    `merge` is true, which moves every photo of `name` to them."""
    return await service.run(service.rename, name, change.name, change.merge)


@router.post("/people", response_model=schemas.Person, status_code=201,
             summary="Add a person without photos", dependencies=[ADMIN],
             responses=errors(400, 401, 403, 409, 503))
async def add_person(body: schemas.PersonIn, service: Service) -> dict[str, Any]:
    """Add a person with no photo yet (CompreFace's subject): listed with 0 photos, never
    matched until photos are added to them."""
    return await service.run(service.add_person, body.name)


@router.delete("/people", response_model=schemas.RemoveAllOut, summary="Remove everyone",
               dependencies=[ADMIN], responses=errors(400, 401, 403, 409, 503))
async def remove_all(service: Service) -> dict[str, Any]:
    """Delete every person and photo (CompreFace's "delete all subjects")."""
    return await service.run(service.remove_all)


@router.get("/photos", response_model=schemas.AllPhotosOut, summary="Every enrolled photo",
            dependencies=[READ], responses=errors(400, 401, 403))
async def all_photos(service: Service, page: Page = 0, size: Size = 50) -> dict[str, Any]:
    """One page of every enrolled photo: id, source name, person, thumbnail address."""
    return await service.run(service.all_photos, page, size)


@router.post("/photos/delete", response_model=schemas.RemovePhotosOut,
             summary="Remove several photos", dependencies=[ADMIN],
             responses=errors(400, 401, 403, 409, 503))
async def remove_photos(body: schemas.PhotoIdsIn, service: Service) -> dict[str, Any]:
    """Remove the photos with these ids, whoever they belong to (a person goes with their
    last photo); ids that are not in the gallery are listed in `missing`."""
    return await service.run(service.remove_photos, body.ids)


@router.delete("/people/{name}", response_model=schemas.RemoveOut, summary="Remove a person",
               dependencies=[ADMIN], responses=errors(400, 401, 403, 404, 409, 503))
async def remove(name: str, service: Service) -> dict[str, Any]:
    return await service.run(service.remove, name)


@router.get("/people/{name}/thumbnail", summary="A small photo of a person's face",
            dependencies=[READ], responses={**JPEG, **errors(400, 401, 403, 404, 503)})
async def thumbnail(name: str, service: Service) -> Response:
    return jpeg(await service.run(service.thumbnail, name), f"{name!r}: no photo to show")
