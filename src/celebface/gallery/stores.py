"""Where a gallery lives, by its location: :func:`open_store` gives a folder's
:class:`~celebface.gallery.store.FolderStore` or a PostgreSQL database's
:class:`~celebface.gallery.pg.PgStore` (one write protocol for both), :func:`load_gallery`
reads the one at a location, and :func:`copy_gallery` moves a gallery between them."""

from __future__ import annotations

from pathlib import Path

from celebface.gallery.pg import PgStore
from celebface.gallery.store import (
    FolderStore,
    Gallery,
    GalleryError,
    GalleryStore,
    MissingGalleryError,
    is_store_url,
    photo_id,
)
from celebface.types import InvalidNameError, person_name


def open_store(location: str | Path | GalleryStore) -> GalleryStore:
    """The store at ``location``: a ``postgresql://`` URL, else a gallery folder."""
    if isinstance(location, GalleryStore):
        return location
    if is_store_url(location):
        return PgStore(str(location))
    return FolderStore(location)


def load_gallery(location: Gallery | str | Path | GalleryStore) -> Gallery:
    """The gallery at ``location`` (a folder, a ``postgresql://`` URL or a store), read once
    through :func:`open_store` (a store opened here is closed again); a :class:`Gallery` as it
    is."""
    if isinstance(location, Gallery):
        return location
    store = open_store(location)
    try:
        return store.load()
    finally:
        if store is not location:
            store.close()


def copy_gallery(source: str | Path | GalleryStore, target: str | Path | GalleryStore,
                 replace: bool = False) -> Gallery:
    """Copy the gallery at ``source`` into ``target`` (folder <-> database), vectors bit for
    bit, with its photos' thumbnails; a gallery already at ``target`` is refused unless
    ``replace``."""
    src, dst = open_store(source), open_store(target)
    if not src.exists():
        raise MissingGalleryError(f"{src.location}: no gallery there")
    gallery = src.load()
    for name in gallery.names:  # a gallery written before the one name rule: one line
        try:
            person_name(name)
        except InvalidNameError as exc:
            raise GalleryError(f"{src.location}: {exc}; remove or rename that person first"
                               ) from None
    with dst.lock():
        if dst.exists() and not replace:
            raise GalleryError(f"{dst.location}: already holds a gallery (replace it with "
                               "--replace)")
        dst.save(gallery)
        dst.put_thumbnails(src.thumbnails(sorted({photo_id(s) for s in gallery.sources})))
    return gallery
