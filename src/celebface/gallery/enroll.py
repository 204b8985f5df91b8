"""Building, editing and calibrating a gallery folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from celebface.gallery.calibration import Calibration, calibrate_scores
from celebface.gallery.faces import (
    FaceSet,
    FaceSetConfig,
    build_detector,
    build_models,
    embed_faces,
    embed_items,
    is_embeddings_dir,
    list_items,
    load_embedded,
    source_key,
)
from celebface.gallery.matching import DEFAULT_MATCH, GalleryMatcher, Matcher, ModelMatcher
from celebface.gallery.store import Gallery, GalleryError, is_gallery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollConfig(FaceSetConfig):
    """:class:`FaceSetConfig` plus how often a long enrolment saves its progress, and the
    gallery's vector index (``auto``, ``flat``, ``hnsw``, ``ivf``; None keeps the gallery's
    choice, ``auto`` for a new one)."""

    checkpoint_every: int = 512
    index: str | None = None


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
    """What a gallery records about its embedder (enough to rebuild it and to check it)."""
    return {
        "name": config.embedder,
        "options": dict(config.embedder_options),
        "settings": dict(embedder.settings()),
    }


def _check_same_embedder(gallery: Gallery, spec: dict[str, Any]) -> None:
    old = gallery.embedder.get("settings")
    if gallery.embedder and old and old != spec["settings"]:
        raise GalleryError(
            f"{gallery.path}: gallery was built with embedder {old}, not {spec['settings']}; "
            "enroll into a new --out folder"
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
    """
    config = config or EnrollConfig()
    out = Path(out)
    gallery = Gallery.load(out) if is_gallery(out) else None
    if gallery is None and (add or remove or config.index) and data is None:
        raise FileNotFoundError(f"{out}: no gallery to edit")
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
    if changed and gallery.thresholds:
        log.warning("%s: the gallery changed, so its calibrated thresholds (%s) no longer hold "
                    "and are cleared; run 'celebface calibrate' again", out,
                    ", ".join(sorted(gallery.thresholds)))
        gallery.thresholds.clear()
        gallery.calibration.clear()
        gallery.info["threshold_note"] = None
    if gallery.info.get("threshold_note") is None:
        gallery.info["threshold_note"] = "run 'celebface calibrate' to set thresholds"
    gallery.save(out)
    summary.identities, summary.embeddings = len(gallery.names), len(gallery)
    return summary


def embedded_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The embedder spec (as :func:`embedder_spec`) of an ``embed`` output's metadata."""
    from celebface.training.embedding import embedder_spec as rebuild_spec

    rebuild = rebuild_spec(meta)  # name and constructor options, as trained models use them
    options = dict(rebuild["options"])
    if rebuild["tta"] != "none":
        options["tta"] = rebuild["tta"]
    settings = dict(meta.get("settings") or meta)
    if "tta" in options:
        settings["tta"] = options["tta"]
    return {"name": rebuild["name"], "options": options, "settings": settings}


def _enroll_embedded(
    gallery: Gallery, data: str | Path, add: bool, config: FaceSetConfig, summary: EnrollSummary
) -> None:
    faces, meta = load_embedded(data, config.split)
    spec = embedded_spec(meta)
    _check_same_embedder(gallery, spec)
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
    items = list_items(data, config.split)
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
    _check_same_embedder(gallery, spec)
    gallery.embedder = spec
    settings = spec["settings"]
    gallery.info["alignment"] = settings.get("alignment", settings.get("align"))
    gallery.info["faces_from"] = (
        "whole images (face crops)" if detector is None else f"largest {config.detector} face"
    )
    pending = 0
    for part in embed_items(todo, embedder, detector, config, progress, desc="enroll"):
        summary.added += gallery.add(part.embeddings, part.identities, part.sources)
        summary.skipped += part.skipped
        pending += len(part.identities)
        if pending >= config.checkpoint_every:
            gallery.save()
            pending = 0


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


def matcher_key(matcher: Matcher) -> str:
    return matcher.method


def calibrate(
    gallery: Gallery | str | Path,
    data: str | Path | FaceSet,
    far: float = 0.01,
    *,
    method: str = DEFAULT_MATCH,
    k: int = 5,
    model: str | Path | Any | None = None,
    config: FaceSetConfig | None = None,
    save: bool = True,
) -> Calibration:
    """Set ``gallery``'s unknown threshold for ``method`` to give false-accept rate ``far``.

    ``data`` holds photos (or an ``embed`` output) of people NOT in the gallery, usually with
    other photos of enrolled people (for the true-accept rate); see
    :mod:`celebface.gallery.calibration` for the recommended protocol. Photos that were
    enrolled are not used as genuine probes. The threshold is stored in the gallery.
    """
    if not isinstance(gallery, Gallery):
        gallery = Gallery.load(gallery)
    matcher = get_matcher(gallery, method, k, model)
    # a classifier names faces from its own embedder's vectors; a gallery from its embedder's
    classifier_embedder = getattr(getattr(matcher, "model", None), "embedder", None)
    if isinstance(data, FaceSet):
        faces = data
    elif is_embeddings_dir(data):
        faces, meta = load_embedded(data, (config or FaceSetConfig()).split)
        if classifier_embedder is None:
            _check_same_embedder(gallery, embedded_spec(meta))
    else:
        base = config or FaceSetConfig()
        config = replace(
            base,
            embedder=gallery.embedder_name,
            embedder_options=dict(gallery.embedder.get("options") or base.embedder_options),
        )
        models = (classifier_embedder, build_detector(config)) if classifier_embedder else None
        faces = embed_faces(data, config, models)
    enrolled = set(gallery.sources)
    keep = [s not in enrolled for s in faces.sources]
    if not all(keep):
        log.info("%d calibration photos are enrolled; not used", len(keep) - sum(keep))
    if not any(keep):
        raise ValueError("every calibration photo is enrolled in the gallery: use other photos")
    emb = faces.embeddings[[i for i, k_ in enumerate(keep) if k_]]
    ids = [i for i, k_ in zip(faces.identities, keep, strict=True) if k_]
    result = calibrate_scores(matcher, emb, ids, far)
    if save:
        key = matcher_key(matcher)
        gallery.thresholds[key] = result.threshold
        gallery.calibration[key] = result.to_dict()
        gallery.info["threshold_note"] = "calibrated"
        gallery.save()
    return result
