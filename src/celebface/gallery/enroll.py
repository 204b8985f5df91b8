"""Building and editing a gallery folder (calibrating it: :mod:`.calibrate_gallery`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celebface import validate
from celebface.errors import MissingFileError
from celebface.gallery.faces import (
    FaceSet,
    FaceSetConfig,
    build_models,
    embed_items,
    is_embeddings_dir,
    load_embedded,
    open_faces,
    source_key,
)
from celebface.gallery.matching import DEFAULT_MATCH, GalleryMatcher, Matcher, ModelMatcher
from celebface.gallery.store import Gallery, GalleryError, is_gallery
from celebface.io import folder_lock
from celebface.recognition.spec import DEFAULT_TTA, EmbedderSpec
from celebface.recognition.tta import FlipTTA

log = logging.getLogger(__name__)

#: A person enrolled from ONE photo is enrolled as the average of it and its mirror image (two
#: views of the one photo): on 30 held-out pins people with one photo each, 5 probes each, 20
#: draws, the uncalibrated default named 57.3% instead of 53.9% (paired: better in 18 of 20
#: draws; FAR 0.52% vs 0.37%, each on its own measured tail) and the ideal threshold at 1% FAR
#: 65.2% instead of 63.0% (benchmarks/small_gallery.py). Galleries with flip TTA have it already.
MIRROR_SINGLE_PHOTOS = True


@dataclass(frozen=True)
class EnrollConfig(FaceSetConfig):
    """:class:`FaceSetConfig` plus how often a long enrolment saves its progress, and the
    gallery's vector index (``auto``, ``flat``, ``hnsw``, ``ivf``; None keeps the gallery's
    choice, ``auto`` for a new one)."""

    checkpoint_every: int = 512
    index: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("checkpoint_every", self.checkpoint_every)


@dataclass
class EnrollSummary:
    gallery: Path
    added: int = 0
    reused: int = 0
    dropped: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    identities: int = 0
    embeddings: int = 0


def embedder_spec(embedder: Any, config: FaceSetConfig) -> dict[str, Any]:
    """What a gallery records about its embedder (an
    :class:`~celebface.recognition.spec.EmbedderSpec`: enough to rebuild it and to check it)."""
    spec = config.spec
    return EmbedderSpec.of(embedder, spec.name, spec.tta, spec.options).to_dict()


def check_same_embedder(gallery: Gallery, spec: dict[str, Any]) -> None:
    old = gallery.spec
    new = EmbedderSpec.from_dict(spec)
    if gallery.embedder and old.settings and not old.same_vectors(new):
        raise GalleryError(
            f"{gallery.path}: gallery was built with embedder {old.describe()} "
            f"{old.settings}, not {new.describe()} {new.settings}; enroll into a new --out "
            "folder"
        )


def enroll(
    data: str | Path | None,
    out: str | Path,
    *,
    add: bool = False,
    remove: Sequence[str] = (),
    config: EnrollConfig | None = None,
    models: tuple[Any, Any] | None = None,
    progress: bool = True,
) -> EnrollSummary:
    """Build gallery ``out`` from ``data``, or edit it.

    ``data`` is a folder-per-identity of photos (raw, or face crops with
    ``detector="none"``) or a ``celebface embed`` output folder. Without ``add`` the gallery
    ends up holding exactly ``data``'s faces; with ``add`` they are added to what it holds.
    ``remove`` names identities to delete. Photos already enrolled with the same embedder are
    not embedded again, so an interrupted enrolment resumes where its last checkpoint was.
    Runs on one gallery take turns (a lock in the folder), so none loses another's update.
    """
    config = config or EnrollConfig()
    out = Path(out)
    # One writer at a time: a second enroll waits, then reads what the first one saved.
    with folder_lock(out, "gallery"):
        return _enroll(data, out, add, remove, config, models, progress)


def _enroll(
    data: str | Path | None,
    out: Path,
    add: bool,
    remove: Sequence[str],
    config: EnrollConfig,
    models: tuple[Any, Any] | None,
    progress: bool,
) -> EnrollSummary:
    gallery = Gallery.load(out) if is_gallery(out) else None
    if gallery is None and (add or remove or config.index) and data is None:
        raise MissingFileError(f"{out}: no gallery to edit")
    gallery = gallery or Gallery(path=out)
    if config.index is not None:
        from celebface.gallery.index import resolve_kind

        resolve_kind(config.index, 0)  # a clear error for an unknown kind
        gallery.info["index"] = config.index
    summary = EnrollSummary(out)
    if data is not None:
        if is_embeddings_dir(data):
            _enroll_embedded(gallery, data, add, config, summary)
        else:
            _enroll_photos(gallery, data, add, config, models, summary, progress)
    for name in remove:  # after the data, so DATA cannot bring a removed person back
        summary.removed[name] = gallery.remove(name)
        log.info("removed %s (%d embeddings)", name, summary.removed[name])
    changed = summary.added or summary.dropped or any(summary.removed.values())
    mark_changed(gallery, bool(changed))
    gallery.save(out)
    summary.identities, summary.embeddings = len(gallery.names), len(gallery)
    return summary


def mark_changed(gallery: Gallery, changed: bool = True) -> None:
    """Before saving an edited gallery: its calibrated thresholds no longer hold, so a change
    clears them (with a warning) and notes that calibration is due."""
    if changed and gallery.thresholds:
        log.warning("%s: the gallery changed, so its calibrated thresholds (%s) no longer hold "
                    "and are cleared; run 'celebface calibrate' again", gallery.path,
                    ", ".join(sorted(gallery.thresholds)))
        gallery.thresholds.clear()
        gallery.calibration.clear()
        gallery.info["threshold_note"] = None
    if gallery.info.get("threshold_note") is None:
        gallery.info["threshold_note"] = "run 'celebface calibrate' to set thresholds"


def embedded_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The embedder spec of an ``embed`` output's metadata."""
    return EmbedderSpec.from_dict(meta.get("embedder") or meta).to_dict()


def _enroll_embedded(
    gallery: Gallery, data: str | Path, add: bool, config: FaceSetConfig, summary: EnrollSummary
) -> None:
    faces, meta = load_embedded(data, config.split)
    spec = embedded_spec(meta)
    check_same_embedder(gallery, spec)
    gallery.embedder = gallery.embedder or spec
    gallery.info.setdefault("alignment", meta.get("alignment"))
    gallery.info.setdefault("faces_from", f"embeddings folder {Path(data).resolve()}")
    _merge(gallery, faces, add, summary)


def _merge(gallery: Gallery, faces: FaceSet, add: bool, summary: EnrollSummary) -> None:
    if not add:
        summary.dropped = gallery.keep_sources(set(faces.sources))
    before = set(gallery.sources)
    summary.reused = sum(s in before for s in faces.sources)
    summary.added += gallery.add(faces.embeddings, faces.identities, faces.sources)
    summary.skipped += faces.skipped


def _enroll_photos(
    gallery: Gallery,
    data: str | Path,
    add: bool,
    config: EnrollConfig,
    models: tuple[Any, Any] | None,
    summary: EnrollSummary,
    progress: bool,
) -> None:
    dataset = open_faces(data, config.split)
    items = dataset.items
    wanted = {source_key(it.path) for it in items}
    if not add:
        summary.dropped = gallery.keep_sources(wanted)
    have = set(gallery.sources)
    todo = [it for it in items if source_key(it.path) not in have]
    summary.reused = len(items) - len(todo)
    if summary.reused:
        log.info("%d photos already enrolled, %d to embed", summary.reused, len(todo))
    if not todo:
        return
    embedder, detector = models or build_models(config)
    spec = embedder_spec(embedder, config)
    check_same_embedder(gallery, spec)
    gallery.embedder = spec
    settings = spec["settings"]
    gallery.info["alignment"] = settings.get("alignment", settings.get("align"))
    gallery.info["faces_from"] = (
        "whole images (face crops)" if detector is None else f"largest {config.detector} face"
    )
    pending = 0
    for part in embed_items(dataset, todo, embedder, detector, config, progress,
                            cache_dir=gallery_cache_dir(gallery)):
        summary.added += gallery.add(part.embeddings, part.identities, part.sources)
        summary.skipped += part.skipped
        pending += len(part.identities)
        if pending >= config.checkpoint_every:
            gallery.save()
            pending = 0
    if MIRROR_SINGLE_PHOTOS and spec.get("tta", DEFAULT_TTA) == "none":
        _mirror_single_photos(gallery, dataset, todo, embedder, detector, config)


def _mirror_single_photos(gallery: Gallery, dataset: Any, todo: Sequence[Any], embedder: Any,
                          detector: Any, config: EnrollConfig) -> None:
    """Re-enroll the just-embedded photo of each person who has only that one as the average
    of it and its mirror image (:data:`MIRROR_SINGLE_PHOTOS`; the original view comes from
    the cache)."""
    counts, enrolled = gallery.counts(), set(gallery.sources)
    singles = [it for it in todo
               if counts.get(it.identity) == 1 and source_key(it.path) in enrolled]
    if not singles:
        return
    log.info("%d people with one photo: enrolling each photo with its mirror image",
             len(singles))
    for part in embed_items(dataset, singles, FlipTTA(embedder), detector, config, False,
                            cache_dir=gallery_cache_dir(gallery)):
        gallery.add(part.embeddings, part.identities, part.sources)


def gallery_cache_dir(gallery: Gallery) -> Path | None:
    """Where a gallery's enrolment and calibration cache their vectors by default."""
    return Path(gallery.path) / ".cache" if gallery.path is not None else None


def get_matcher(
    gallery: Gallery, method: str = DEFAULT_MATCH, k: int = 5, model: str | Path | Any | None = None
) -> Matcher:
    """A matcher for ``gallery``; with ``model`` (a trained-model folder or object) the
    classifier names the faces instead of the gallery."""
    if model is None:
        return GalleryMatcher(gallery, method, k)
    if isinstance(model, str | Path):
        from celebface.training import load_model

        model = load_model(model)
    return ModelMatcher(model)
