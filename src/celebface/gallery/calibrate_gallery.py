"""Calibrating a gallery (a folder or a database): its unknown threshold from photos of people
not in it (the scores and the protocol: :mod:`celebface.gallery.calibration`)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.gallery.calibration import Calibration, calibrate_scores
from celebface.gallery.enroll import (
    check_same_embedder,
    gallery_cache_dir,
    get_matcher,
)
from celebface.gallery.faces import (
    FaceSet,
    FaceSetConfig,
    build_detector,
    embed_faces,
    is_embeddings_dir,
    load_embedded,
)
from celebface.gallery.matching import DEFAULT_MATCH, Matcher
from celebface.gallery.policy import store_calibration
from celebface.gallery.store import Gallery, GalleryError, GalleryStore, is_gallery
from celebface.gallery.stores import open_store
from celebface.recognition.cache import content_hash
from celebface.recognition.spec import EmbedderSpec

log = logging.getLogger(__name__)


def matcher_key(matcher: Matcher) -> str:
    return matcher.method


def calibrate(
    gallery: Gallery | str | Path | GalleryStore,
    data: str | Path | FaceSet,
    far: float = 0.01,
    *,
    method: str = DEFAULT_MATCH,
    k: int = 5,
    model: str | Path | Any | None = None,
    config: FaceSetConfig | None = None,
    save: bool = True,
    gap_weight: float | None = None,
) -> Calibration:
    """Set ``gallery``'s unknown threshold for ``method`` to give false-accept rate ``far``,
    on the decision score with ``gap_weight`` (:mod:`celebface.gallery.policy`; None:
    chosen by cross-validation over the stranger people, 0 for a classifier; see
    :func:`celebface.gallery.calibration.calibrate_scores`).

    ``data`` holds photos (or an ``embed`` output) of people NOT in the gallery, usually with
    other photos of enrolled people (for the true-accept rate); see
    :mod:`celebface.gallery.calibration` for the recommended protocol. Photos that were
    enrolled are not used as genuine probes. The threshold is stored in the gallery:
    ``gallery`` is a :class:`Gallery`, a folder, a ``postgresql://`` URL or a store.
    """
    store = None
    if not isinstance(gallery, Gallery):
        store = open_store(gallery)
        gallery = store.load()
    matcher = get_matcher(gallery, method, k, model)
    # a classifier names faces from its own embedder's vectors; a gallery from its embedder's
    classifier_embedder = getattr(getattr(matcher, "model", None), "embedder", None)
    if isinstance(data, FaceSet):
        faces = data
    elif is_embeddings_dir(data):
        faces, meta = load_embedded(data, (config or FaceSetConfig()).split)
        if classifier_embedder is None:
            check_same_embedder(gallery, EmbedderSpec.of_embeddings(meta))
    else:
        config = (config or FaceSetConfig()).with_spec(gallery.spec)
        models = (classifier_embedder, build_detector(config)) if classifier_embedder else None
        faces = embed_faces(data, config, models, cache_dir=gallery_cache_dir(gallery))
    enrolled = set(gallery.sources) | same_content(faces.sources, gallery.sources)
    copies = later_copies(faces.sources)
    keep = [s not in enrolled and s not in copies for s in faces.sources]
    if enrolled & set(faces.sources):
        log.info("%d calibration photos are enrolled (or copies of enrolled ones); not used",
                 sum(s in enrolled for s in faces.sources))
    if copies:
        log.warning("%d calibration photo(s) are copies of others (same bytes, perhaps under "
                    "another name): each photo counts once", len(copies))
    if not any(keep):
        raise GalleryError("every calibration photo is enrolled in the gallery: use other photos")
    emb = faces.embeddings[[i for i, k_ in enumerate(keep) if k_]]
    ids = [i for i, k_ in zip(faces.identities, keep, strict=True) if k_]
    result = calibrate_scores(matcher, emb, ids, far, gap_weight)
    if save:
        if store is None and gallery.path is not None and is_gallery(gallery.path):
            store = open_store(gallery.path)
        _store_threshold(gallery, matcher_key(matcher), result, store)
    return result


def _store_threshold(gallery: Gallery, key: str, result: Calibration,
                     store: GalleryStore | None) -> None:
    """Store a calibration: in ``store`` under its lock, re-read the gallery and refuse if its
    faces changed meanwhile (the threshold would not hold), keeping whatever else changed;
    without a store, save the gallery where it was loaded from."""
    if store is not None:
        def update(current: Gallery) -> None:
            if (current.names != gallery.names or current.sources != gallery.sources
                    or not np.array_equal(current.embeddings, gallery.embeddings)):
                raise GalleryError(f"{store.location}: the gallery changed while calibrating "
                                   "(another enroll?); run 'celebface calibrate' again")
            store_calibration(current, key, result.threshold, result.to_dict())

        store.edit(update)
        store_calibration(gallery, key, result.threshold, result.to_dict())
        return
    store_calibration(gallery, key, result.threshold, result.to_dict())
    gallery.save()


def same_content(paths: Sequence[str], reference: Sequence[str]) -> set[str]:
    """The files of ``paths`` whose bytes equal a file of ``reference`` (copies of enrolled
    photos under other names). Only files of a size found on both sides are hashed."""
    mine, theirs = _sizes(paths), _sizes(reference)
    common = set(mine.values()) & set(theirs.values())
    known = {_digest(f) for f, n in theirs.items() if n in common} - {None}
    return {f for f, n in mine.items() if n in common and _digest(f) in known}


def later_copies(paths: Sequence[str]) -> set[str]:
    """The files of ``paths`` whose bytes equal an earlier, differently named file of
    ``paths`` (a photo copied under another name or person): dropping them counts each photo
    once. Only files whose size occurs twice are hashed; unreadable files are kept."""
    sizes = _sizes(paths)
    repeated = {n for n, c in Counter(sizes.values()).items() if c > 1}
    first: dict[str, str] = {}
    out = set()
    for f, n in sizes.items():
        digest = _digest(f) if n in repeated else None
        if digest is None:
            continue
        if first.setdefault(digest, f) != f:
            out.add(f)
    return out


def _sizes(files: Sequence[str]) -> dict[str, int]:
    """Size of each readable file, in first-seen order."""
    out = {}
    for f in files:
        if f not in out:
            with contextlib.suppress(OSError):
                out[f] = os.path.getsize(f)
    return out


def _digest(f: str) -> str | None:

    try:
        return content_hash(Path(f).read_bytes())
    except OSError:
        return None
