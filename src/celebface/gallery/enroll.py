"""Building and editing a gallery folder (calibrating it: :mod:`.calibrate_gallery`)."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from celebface import validate
from celebface.data import FaceDataset
from celebface.gallery.faces import (
    FaceSet,
    FaceSetConfig,
    build_detector,
    embed_items,
    is_embeddings_dir,
    load_embedded,
    open_faces,
    source_key,
)
from celebface.gallery.index import resolve_kind
from celebface.gallery.matching import DEFAULT_MATCH, GalleryMatcher, Matcher, ModelMatcher
from celebface.gallery.store import FolderStore, Gallery, GalleryError, GalleryStore
from celebface.gallery.stores import open_store
from celebface.io import check_writable
from celebface.recognition.registry import embedder_names, fusion_parts
from celebface.recognition.spec import DEFAULT_TTA, EmbedderSpec
from celebface.recognition.tta import FlipTTA
from celebface.types import InvalidNameError, person_name, printable

log = logging.getLogger(__name__)

#: A person enrolled from ONE photo is enrolled as the average of it and its mirror image (two
#: views of the one photo): on 30 held-out pins people with one photo each, 5 probes each, 20
#: draws, the uncalibrated default named 57.3% instead of 53.9% (paired: better in 18 of 20
#: draws; FAR 0.52% vs 0.37%, each on its own measured tail) and the ideal threshold at 1% FAR
#: 65.2% instead of 63.0% (benchmarks/small_gallery.py). Galleries with flip TTA have it already.
MIRROR_SINGLE_PHOTOS = True


@dataclass(frozen=True)
class EnrollConfig(FaceSetConfig):
    """:class:`FaceSetConfig` plus how often a long enrolment saves its progress, the
    gallery's vector index (``auto``, ``flat``, ``hnsw``, ``ivf``; None keeps the gallery's
    choice, ``auto`` for a new one), and ``reembed``: a gallery made with another embedder is
    rebuilt from DATA with this one (its old vectors dropped; photos are cached by content, so
    a second gallery or an interrupted run embeds nothing twice)."""

    checkpoint_every: int = 512
    index: str | None = None
    reembed: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("checkpoint_every", self.checkpoint_every)


@dataclass
class EnrollSummary:
    gallery: Path | str  # a folder, or a database's URL (without its password)
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
    name, options = spec.name, spec.options
    own = getattr(embedder, "name", None)
    if own and own != name and (own in embedder_names() or fusion_parts(own)):
        name, options = own, {}  # a registered embedder handed in: record what it is
    return EmbedderSpec.of(embedder, name, spec.tta, options).to_dict()


def check_same_embedder(gallery: Gallery, new: EmbedderSpec) -> None:
    """Refuse to mix two embedders' vectors in one gallery (the error gives the command that
    re-embeds it)."""
    old = gallery.spec
    if gallery.embedder and old.settings and not old.same_vectors(new):
        was, now = old.describe(), new.describe()
        if was == now:  # same name and options, other settings: say which
            was, now = f"{was} {old.settings}", f"{now} {new.settings}"
        raise GalleryError(
            f"{gallery.path}: gallery was built with embedder {was}, not {now}: vectors "
            "of two embedders cannot be compared; re-embed it with "
            f"'celebface enroll DATA --out GALLERY --embedder {new.name} --tta {new.tta} "
            "--reembed' (photos are cached by content), or enroll into a new --out folder"
        )


def _differs(gallery: Gallery | None, config: FaceSetConfig) -> bool:
    """Does ``gallery`` record an embedder other than ``config``'s (by name, TTA, options)?"""
    if gallery is None or not gallery.embedder:
        return False
    old, new = gallery.spec, config.spec
    return (old.name, old.tta, old.options) != (new.name, new.tta, new.options)


def _adopt_gallery_embedder(store: GalleryStore, config: EnrollConfig, add: bool
                            ) -> EnrollConfig:
    """``config`` embedding with the gallery's own embedder when photos are added to an
    existing gallery and no embedder was chosen (the defaults): an old gallery keeps working
    under the embedder it names after the default changes."""
    if not add or config.reembed or config.spec != EnrollConfig().spec or not store.exists():
        return config
    current = store.load()
    if not _differs(current, config):
        return config
    log.info("adding with the gallery's embedder %s", current.spec.describe())
    return config.with_spec(current.spec)


def enroll(
    data: str | Path | None,
    out: str | Path | GalleryStore,
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
    ``out`` is a gallery folder, a ``postgresql://`` URL or a :class:`GalleryStore`; the edit
    goes through :meth:`GalleryStore.edit` (lock, re-read, change, save), so runs and servers
    on one gallery take turns and none loses another's update.
    """
    config = config or EnrollConfig()
    store = open_store(out)
    if config.reembed and add:
        raise GalleryError("--reembed rebuilds the gallery from DATA: give DATA without --add")
    config = _adopt_gallery_embedder(store, config, add)
    if config.index is not None:

        resolve_kind(config.index, 0)  # a clear error for an unknown kind
    summary = EnrollSummary(store.folder if isinstance(store, FolderStore) else store.location)
    new = None if data is None else lambda: Gallery(path=getattr(store, "folder", None))
    photos = None
    if data is not None and isinstance(store, FolderStore):
        check_writable(store.folder, "gallery")  # a read-only gallery: refused before embedding
    if data is not None and not is_embeddings_dir(data):
        # the slow part runs outside the lock (other writers and servers go on); what it
        # embedded is saved by short edits (checkpoints) and by the final edit below
        photos = _embed_photos(store, new, data, add, config, models, summary, progress)

    def change(gallery: Gallery) -> None:
        if config.index is not None:
            gallery.info["index"] = config.index
        if photos is not None:
            if not add:
                summary.dropped = gallery.keep_sources(photos.wanted)
            photos.apply(gallery, summary)
        elif data is not None:
            _enroll_embedded(gallery, data, add, config, summary)
        for name in remove:  # after the data, so DATA cannot bring a removed person back
            summary.removed[name] = gallery.remove(name)
            log.info("removed %s (%d embeddings)", name, summary.removed[name])
        changed = summary.added or summary.dropped or any(summary.removed.values())
        mark_changed(gallery, bool(changed))

    # lock, re-read, change, save: a second enroll (or a server's edit) waits, then re-reads
    _, gallery, _ = store.edit(change, new)
    summary.identities, summary.embeddings = len(gallery.names), len(gallery)
    return summary


@dataclass
class _NewPhotos:
    """Photos embedded by one enrolment and not saved yet, and how to record their embedder."""

    wanted: set[str]
    spec: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    parts: list[FaceSet] = field(default_factory=list)
    reembed: bool = False

    def apply(self, gallery: Gallery, summary: EnrollSummary) -> None:
        """Add the pending parts to (a fresh read of) ``gallery`` (``reembed``: first drop
        the vectors of another embedder)."""
        if self.spec is not None:
            new = EmbedderSpec.from_dict(self.spec)
            if self.reembed and gallery.embedder and not gallery.spec.same_vectors(new):
                gallery.keep_sources(set())
                gallery.embedder = {}
            check_same_embedder(gallery, new)
            gallery.embedder = self.spec
            gallery.info.update(self.info)
        for part in self.parts:
            summary.added += gallery.add(part.embeddings, part.identities, part.sources)
        self.parts = []


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


def named_people(dataset: FaceDataset, summary: EnrollSummary) -> FaceDataset:
    """``dataset`` without the people whose name cannot name a person
    (:func:`celebface.types.person_name`, the one rule): each is refused with one error line
    naming the folder and the reason, their photos listed as skipped; the rest enrols."""
    refused: dict[str, str] = {}
    for name in dict.fromkeys(dataset.identities):
        try:
            person_name(name)
        except InvalidNameError as exc:
            refused[name] = str(exc)
    if not refused:
        return dataset
    kept = []
    for it in dataset.items:
        if it.identity in refused:
            summary.skipped.append(printable(str(it.path)))
        else:
            kept.append(it)
    for name, reason in refused.items():
        folder = dataset.root / name if dataset.kind != "embeddings" else name
        log.error("%s: not enrolled: %s", printable(str(folder)), reason.split("': ", 1)[-1])
    return replace(dataset, items=kept, names=[n for n in dataset.names if n not in refused])


def _enroll_embedded(
    gallery: Gallery, data: str | Path, add: bool, config: FaceSetConfig, summary: EnrollSummary
) -> None:
    faces, meta = load_embedded(data, config.split,
                                functools.partial(named_people, summary=summary))
    spec = EmbedderSpec.of_embeddings(meta)
    check_same_embedder(gallery, spec)
    gallery.embedder = gallery.embedder or spec.to_dict()
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


def _checkpoint(photos: _NewPhotos, summary: EnrollSummary, gallery: Gallery) -> None:
    photos.apply(gallery, summary)
    mark_changed(gallery)


def _embed_photos(
    store: GalleryStore,
    new: Callable[[], Gallery] | None,
    data: str | Path,
    add: bool,
    config: EnrollConfig,
    models: tuple[Any, Any] | None,
    summary: EnrollSummary,
    progress: bool,
) -> _NewPhotos:
    """Embed ``data``'s photos that the gallery (as read now) lacks, without holding its lock;
    every ``checkpoint_every`` faces are saved by a short edit, so an interrupted run resumes."""
    dataset = named_people(open_faces(data, config.split), summary)
    items = dataset.items
    photos = _NewPhotos({source_key(it.path) for it in items}, reembed=config.reembed)
    current = store.load() if store.exists() else None
    if current is not None and _differs(current, config):
        if not config.reembed:  # refused before anything is embedded
            check_same_embedder(current, config.spec)
        log.info("re-embedding %s's photos with %s (was %s)", store, config.spec.describe(),
                 current.spec.describe())
        current = None  # every photo is embedded again (or found in the content cache)
    have = set(current.sources) if current is not None else set()
    todo = [it for it in items if source_key(it.path) not in have]
    summary.reused = len(items) - len(todo)
    if summary.reused:
        log.info("%d photos already enrolled, %d to embed", summary.reused, len(todo))
    if not todo:
        return photos
    embedder, detector = models or (config.spec.build(config.device), build_detector(config))
    photos.spec = embedder_spec(embedder, config)
    if current is not None:
        # refuse before embedding anything
        check_same_embedder(current, EmbedderSpec.from_dict(photos.spec))
    settings = photos.spec["settings"]
    photos.info = {
        "alignment": settings.get("alignment", settings.get("align")),
        "faces_from": ("whole images (face crops)" if detector is None
                       else f"largest {config.detector} face"),
    }
    singles: list[Any] = []
    if MIRROR_SINGLE_PHOTOS and photos.spec.get("tta", DEFAULT_TTA) == "none":
        singles = _single_photos(todo, dataset, current if add else None, photos.wanted)
        if singles:
            log.info("%d people with one photo: enrolling each photo with its mirror image",
                     len(singles))
    chosen = {id(it) for it in singles}
    plain = [it for it in todo if id(it) not in chosen]
    pending = 0
    for items_, model in ((plain, embedder), (singles, FlipTTA(embedder))):
        if not items_:
            continue
        for part in embed_items(dataset, items_, model, detector, config, progress,
                                cache_dir=store.cache_dir()):
            photos.parts.append(part)
            summary.skipped += part.skipped
            pending += len(part.identities)
            if pending >= config.checkpoint_every:
                store.edit(functools.partial(_checkpoint, photos, summary), new)
                pending = 0
    return photos


def _single_photos(todo: Sequence[Any], dataset: Any, kept: Gallery | None,
                  wanted: set[str]) -> list[Any]:
    """The items of ``todo`` that will be their person's only photo (:data:`MIRROR_SINGLE_PHOTOS`:
    each is enrolled as the average of it and its mirror image), counting ``dataset``'s photos
    and those of ``kept`` (the gallery an ``--add`` keeps) that ``dataset`` does not hold."""

    counts = Counter(dataset.identities)
    if kept is not None:
        counts.update(kept.names[label] for label, src
                      in zip(kept.labels, kept.sources, strict=True) if src not in wanted)
    return [it for it in todo if counts[it.identity] == 1]


def gallery_cache_dir(gallery: Gallery) -> Path | None:
    """Where a gallery's enrolment and calibration cache their vectors by default."""
    return FolderStore(gallery.path).cache_dir() if gallery.path is not None else None


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
