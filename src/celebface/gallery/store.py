"""The gallery: enrolled face embeddings of known people, saved as one consistent set of files.

A gallery folder holds

- ``gallery.json``: the manifest (format version, embedder, alignment, counts, dims,
  thresholds) naming the embeddings file of the current consistent set and its checksum;
- ``embeddings-<generation>.npz``: every enrolled embedding, its identity label and source;
- ``average_embeddings.json``: the per-identity average embedding, name -> vector, as the
  reference notebooks wrote it (a derived, human-readable view; loading never depends on it);
- ``index-<view>-<generation>.faiss``: FAISS indexes of the centroids and of the embeddings
  (:mod:`celebface.gallery.index`), named in the manifest with their checksums.

Saving writes the new ``.npz`` under a fresh name, then the indexes, then the manifest, then
``average_embeddings.json``, each atomically; the manifest's rename is the commit point. A crash
at any moment leaves the previous manifest pointing at the previous files, so the gallery loads
as before. Loading only reads (it never repairs or rewrites a file).

Where a gallery lives is a :class:`GalleryStore`: a folder (:class:`FolderStore`, the default)
or a PostgreSQL database (:class:`celebface.gallery.pg.PgStore`), chosen by
:func:`open_store`. Every edit goes through :meth:`GalleryStore.edit`: lock, re-read, change,
write, unlock, so concurrent writers (``celebface enroll``, servers) never lose each other's
changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from celebface.data.stage import write_stage
from celebface.errors import CelebfaceError
from celebface.gallery.index import write_indexes
from celebface.io import atomic_write_bytes, atomic_write_json, folder_lock
from celebface.io.checksum import checksum_matches, sha256_bytes
from celebface.io.paths import LockTimeoutError
from celebface.recognition.base import l2_normalize
from celebface.recognition.spec import EmbedderSpec, migrate_spec
from celebface.types import person_name

log = logging.getLogger(__name__)

FORMAT = "celebface-gallery"
FORMAT_VERSION = 1
MANIFEST = "gallery.json"
AVERAGES = "average_embeddings.json"
#: ``info`` key: people added without a photo yet (listed, renamed, removed; never matched)
WAITING = "people_without_photos"

T = TypeVar("T")


class GalleryError(CelebfaceError, ValueError):
    """A gallery folder that cannot be used; the message names the folder and the reason."""


class StoreUnavailableError(GalleryError):
    """The gallery's store cannot be reached now (a database down or refusing connections)."""


class StoreBusyError(GalleryError):
    """Another writer held the gallery's lock longer than an edit may wait for it."""


class MissingGalleryError(CelebfaceError, FileNotFoundError):
    """No gallery where one was asked for; the message names the place."""


@dataclass
class Gallery:
    """Enrolled embeddings: row ``i`` of ``embeddings`` belongs to ``names[labels[i]]``.

    ``embedder`` describes how the vectors were made (``{"name": ..., "options": ...,
    "settings": ...}``) so recognition can rebuild the same embedder; ``thresholds`` maps a
    match method (``centroid``, ``knn``, ...) to its calibrated unknown threshold.
    """

    names: list[str] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    sources: list[str] = field(default_factory=list)
    embedder: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.embedder = migrate_spec(self.embedder)  # saved in today's layout from now on
        emb = np.asarray(self.embeddings, dtype=np.float32)
        if emb.ndim != 2:
            raise GalleryError(f"embeddings must be 2-D, got shape {emb.shape}")
        # rows already unit length (a saved gallery) keep their exact bits
        unit = not len(emb) or np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        self.embeddings = emb if unit else l2_normalize(emb)
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(self.labels) != len(self.embeddings) or len(self.sources) != len(self.labels):
            raise GalleryError(
                f"{len(self.embeddings)} embeddings, {len(self.labels)} labels and "
                f"{len(self.sources)} sources do not match"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.names)):
            raise GalleryError("a label points outside the list of names")
        self._centroids: np.ndarray | None = None
        #: the saved embeddings file's checksum and the manifest's vector-index entry
        self.checksum: str | None = None
        self.index_meta: dict[str, Any] | None = None

    # ----------------------------------------------------------------- views
    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1]) if self.embeddings.size else 0

    def __len__(self) -> int:
        return len(self.labels)

    def keys(self) -> list[tuple[str, str]]:
        """``(identity, source)`` of each row: what a photo is known by in the gallery."""
        return [(self.names[lab], src) for lab, src in zip(self.labels, self.sources, strict=True)]

    def counts(self) -> dict[str, int]:
        """Enrolled embeddings per identity."""
        per = np.bincount(self.labels, minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, per, strict=True)}

    def centroids(self) -> np.ndarray:
        """``(len(names), dim)`` unit-length average embedding of each identity."""
        if self._centroids is None:
            # shape[1], not dim: a gallery emptied by remove() keeps its (0, dim) array
            sums = np.zeros((len(self.names), self.embeddings.shape[1]), np.float64)
            np.add.at(sums, self.labels, self.embeddings.astype(np.float64))
            self._centroids = l2_normalize(sums)
        return self._centroids

    def average_embeddings(self) -> dict[str, list[float]]:
        """Name -> average embedding (the reference's ``average_embeddings.json`` content)."""
        return {n: [float(v) for v in c] for n, c in zip(self.names, self.centroids(), strict=True)}

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder this gallery was built with, parsed once per ``embedder`` value
        (assigning another ``embedder`` dict parses it again)."""
        cached = self.__dict__.get("_spec")
        if cached is None or cached[0] is not self.embedder:
            cached = self.__dict__["_spec"] = (self.embedder, EmbedderSpec.from_dict(self.embedder))
        return cached[1]

    @property
    def embedder_name(self) -> str:
        return self.spec.name

    def fingerprint(self) -> str:
        """A hash of everything a save writes (vectors, labels, names, sources, embedder,
        thresholds, calibration, info): equal before and after an edit that changed nothing."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.embeddings, "<f4").tobytes())
        h.update(np.ascontiguousarray(self.labels, "<i4").tobytes())
        h.update(json.dumps([self.names, self.sources, self.embedder, self.thresholds,
                             self.calibration, self.info], sort_keys=True, default=str
                            ).encode("utf-8", "surrogatepass"))  # names of non-UTF-8 bytes
        return h.hexdigest()

    # ----------------------------------------------------------------- edits
    def add(
        self, embeddings: np.ndarray, identities: Sequence[str], sources: Sequence[str]
    ) -> int:
        """Append embeddings of (new or known) identities; returns how many were added.

        A photo is known by its source *per person*: a source already enrolled for the same
        identity is replaced by its new embedding; the same source under another identity is a
        separate enrolment (one photo may show, or be added to, two people).
        """
        if len(sources) != len(identities):
            raise ValueError("add(): embeddings, identities and sources differ in length")
        if not len(identities):
            return 0
        identities = [person_name(n) for n in identities]  # one spelling per person
        self._unwait(identities)
        emb = np.asarray(embeddings, dtype=np.float32).reshape(len(identities), -1)
        if self.dim and emb.shape[1] != self.dim:
            raise GalleryError(
                f"cannot add {emb.shape[1]}-d embeddings to a gallery of {self.dim}-d ones"
            )
        incoming = set(zip(map(str, identities), map(str, sources), strict=True))
        have = self.keys()
        if not incoming.isdisjoint(have):
            self._keep(np.array([k not in incoming for k in have], bool))
            self._drop_empty()
        index = {n: i for i, n in enumerate(self.names)}
        for name in identities:
            if name not in index:
                index[name] = len(self.names)
                self.names.append(name)
        labels = np.array([index[n] for n in identities], np.int32)
        base = self.embeddings if self.embeddings.size else np.zeros((0, emb.shape[1]), np.float32)
        self.embeddings = np.concatenate([base, l2_normalize(emb)])
        self.labels = np.concatenate([self.labels, labels])
        self.sources = [*self.sources, *map(str, sources)]
        self._centroids = None
        return len(emb)

    # ----------------------------------------------------------------- people without photos
    @property
    def waiting(self) -> list[str]:
        """People added without a photo (CompreFace's empty subjects): listed, not matched."""
        return list(self.info.get(WAITING) or [])

    def people(self) -> list[str]:
        """Everyone: the enrolled, then those without a photo yet."""
        return [*self.names, *self.waiting]

    def add_person(self, name: str) -> str:
        """Add ``name`` without a photo (photos added later make them enrolled)."""
        name = person_name(name)
        if name in self.people():
            raise GalleryError(f"{name!r} is already in the gallery")
        self.info[WAITING] = [*self.waiting, name]
        return name

    def _unwait(self, names: Sequence[str]) -> bool:
        left = [n for n in self.waiting if n not in set(names)]
        if len(left) == len(self.waiting):
            return False
        if left:
            self.info[WAITING] = left
        else:
            self.info.pop(WAITING, None)
        return True

    def remove(self, name: str) -> int:
        """Remove identity ``name`` and all its embeddings; returns how many were removed."""
        if name not in self.names and self._unwait([name]):
            return 0
        if name not in self.names:
            known = ", ".join(self.names[:10]) + (" ..." if len(self.names) > 10 else "")
            raise GalleryError(f"{name!r} is not in the gallery (known: {known or 'none'})")
        drop = self.names.index(name)
        keep = self.labels != drop
        removed = int((~keep).sum())
        self._keep(keep)
        self.labels = np.where(self.labels > drop, self.labels - 1, self.labels).astype(np.int32)
        del self.names[drop]
        return removed

    def keep_sources(self, sources: set[str]) -> int:
        """Drop every embedding whose source is not in ``sources`` (and emptied identities)."""
        keep = np.array([s in sources for s in self.sources], bool)
        dropped = int((~keep).sum())
        self._keep(keep)
        self._drop_empty()
        return dropped

    def _keep(self, mask: np.ndarray) -> None:
        self.embeddings = self.embeddings[mask]
        self.labels = self.labels[mask]
        self.sources = [s for s, k in zip(self.sources, mask, strict=True) if k]
        self._centroids = None

    def _drop_empty(self) -> None:
        used = np.bincount(self.labels, minlength=len(self.names)) > 0
        if used.all():
            return
        remap = np.cumsum(used) - 1
        self.labels = remap[self.labels].astype(np.int32)
        self.names = [n for n, u in zip(self.names, used, strict=True) if u]
        self._centroids = None

    # ----------------------------------------------------------------- collections
    # A person's photos as the service's collections API sees them; a photo's id is a hash of
    # its row's source (the file path, or ``upload:<content hash>...``).
    def photos_of(self, name: str) -> list[tuple[str, str]]:
        """``(photo_id, source)`` of each enrolled photo of ``name``, in enrolment order."""
        if name in self.waiting:
            return []
        label = self._label(name)
        return [(photo_id(s), s) for s, lab in zip(self.sources, self.labels, strict=True)
                if lab == label]

    def remove_photo(self, name: str, photo: str) -> int:
        """Remove ``name``'s photo(s) with id ``photo`` (the person too when it was their
        last); returns how many rows were removed. An unknown id is a :class:`GalleryError`."""
        label = self._label(name)
        drop = np.array([lab == label and photo_id(s) == photo
                         for s, lab in zip(self.sources, self.labels, strict=True)], bool)
        if not drop.any():
            raise GalleryError(f"{name!r} has no photo {photo!r}")
        self._keep(~drop)
        self._drop_empty()
        return int(drop.sum())

    def remove_photos(self, photos: set[str]) -> int:
        """Remove every row whose photo id is in ``photos``, whoever it belongs to (and the
        people left without a photo); returns how many rows were removed."""
        drop = np.array([photo_id(s) in photos for s in self.sources], bool)
        self._keep(~drop)
        self._drop_empty()
        return int(drop.sum())

    def rows_of_photo(self, photo: str) -> np.ndarray:
        """The embeddings (rows) of photo id ``photo`` (one per person it is enrolled for)."""
        return self.embeddings[[photo_id(s) == photo for s in self.sources]]

    def rename(self, old: str, new: str) -> None:
        """Call ``old`` ``new`` (who must not be enrolled; :meth:`merge` joins two people)."""
        new = person_name(new)  # one spelling, as add() stores names
        if new in self.people():
            raise GalleryError(f"{new!r} is already in the gallery (merge instead)")
        if old in self.waiting:
            self.info[WAITING] = [new if n == old else n for n in self.waiting]
            return
        self.names[self._label(old)] = new

    def merge(self, src: str, dst: str) -> int:
        """Move every photo of ``src`` to ``dst`` (both enrolled) and drop ``src``; returns
        how many photos moved. Either may be without photos yet."""
        if src == dst:
            raise GalleryError(f"cannot merge {src!r} into itself")
        if src in self.waiting and dst in self.people():
            self._unwait([src])
            return 0
        if dst in self.waiting:
            self._label(src)
            self._unwait([dst])
            self.names[self._label(src)] = dst
            return int((self.labels == self._label(dst)).sum())
        a, b = self._label(src), self._label(dst)
        if a == b:
            raise GalleryError(f"cannot merge {src!r} into itself")
        moved = int((self.labels == a).sum())
        self.labels = np.where(self.labels == a, b, self.labels).astype(np.int32)
        self._centroids = None
        self._drop_empty()
        return moved

    def _label(self, name: str) -> int:
        if name not in self.names:
            raise GalleryError(f"{name!r} is not in the gallery")
        return self.names.index(name)

    # ----------------------------------------------------------------- files
    def manifest(self, embeddings_file: str, checksum: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "embeddings_file": embeddings_file,
            "embeddings_sha256": checksum,
            "dim": self.dim,
            "identities": len(self.names),
            "embeddings": len(self),
            "counts": self.counts(),
            "embedder": self.embedder,
            "thresholds": self.thresholds,
            "calibration": self.calibration,
            "info": self.info,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write the gallery to folder ``path`` (default: where it was loaded from)."""
        if path is None and self.path is None:
            raise ValueError("save(): no path given and the gallery was not loaded from one")
        folder = Path(path if path is not None else self.path)  # type: ignore[arg-type]
        with folder_lock(folder, "gallery"):
            self._save(folder)
        return folder

    def _save(self, folder: Path) -> None:
        remove_stale_temp_files(folder)
        old = _read_manifest(folder) if (folder / MANIFEST).is_file() else None
        generation = _next_generation(folder, old)
        npz_name = f"embeddings-{generation:06d}.npz"
        buf = io.BytesIO()
        np.savez(
            buf,
            embeddings=self.embeddings.astype(np.float32),
            labels=self.labels.astype(np.int32),
            names=np.array(self.names, dtype=np.str_),
            sources=np.array(self.sources, dtype=np.str_),
        )
        data = buf.getvalue()
        checksum = sha256_bytes(data)
        try:
            atomic_write_bytes(folder / npz_name, data)
            index = write_indexes(folder, self, generation, checksum, (old or {}).get("index"))
            atomic_write_json(folder / MANIFEST,
                              {**self.manifest(npz_name, checksum), "index": index})
        except BaseException:  # not committed (a full disk...): no half-written set stays
            for partial in [folder / npz_name, *folder.glob(f"index-*-{generation:06d}.faiss")]:
                partial.unlink(missing_ok=True)
            raise
        # derived from the committed set, so written after the commit point: a crash before it
        # leaves the previous averages beside the previous manifest
        atomic_write_json(folder / AVERAGES, self.average_embeddings(), indent=None)

        write_stage(folder, "gallery", self.embedder)
        # The new set is committed; older embeddings and index files are garbage now.
        current = {npz_name, *(f["file"] for f in index["files"].values())}
        for stale in [*folder.glob("embeddings-*.npz"), *folder.glob("index-*.faiss")]:
            if stale.name not in current:
                try:
                    stale.unlink()
                except OSError as exc:  # pragma: no cover - permissions
                    log.warning("%s: could not remove old file: %s", stale, exc)
        self.path, self.checksum, self.index_meta = folder, checksum, index
        log.debug("saved gallery %s: %d identities, %d embeddings", folder, len(self.names),
                  len(self))

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """Read a gallery folder written by :meth:`save`."""
        folder = Path(path)
        if not folder.exists():
            raise MissingGalleryError(f"{folder}: no such gallery folder")
        if not (folder / MANIFEST).is_file():
            raise GalleryError(f"{folder}: not a gallery (no {MANIFEST}); build one with "
                               "'celebface enroll'")
        meta = _read_manifest(folder)
        npz_path = folder / str(meta.get("embeddings_file", ""))
        try:
            data = npz_path.read_bytes()
        except OSError as exc:
            raise GalleryError(f"{npz_path}: cannot read gallery embeddings: {exc}") from None
        if not checksum_matches(npz_path, meta.get("embeddings_sha256"), data):
            raise GalleryError(f"{npz_path}: checksum does not match {MANIFEST} (file damaged)")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                emb, labels = z["embeddings"], z["labels"]
                names, sources = [str(n) for n in z["names"]], [str(s) for s in z["sources"]]
        except Exception as exc:  # zip, zlib, format errors: all mean a damaged file
            raise GalleryError(f"{npz_path}: damaged gallery embeddings ({type(exc).__name__}: "
                               f"{exc})") from None
        gallery = cls(
            names=names,
            embeddings=emb,
            labels=labels,
            sources=sources,
            embedder=dict(meta.get("embedder") or {}),
            thresholds={k: float(v) for k, v in (meta.get("thresholds") or {}).items()},
            calibration=dict(meta.get("calibration") or {}),
            info=dict(meta.get("info") or {}),
            path=folder,
        )
        gallery.checksum = meta.get("embeddings_sha256")
        gallery.index_meta = meta.get("index")
        return gallery


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GalleryError(f"{folder / MANIFEST}: unreadable gallery manifest: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GalleryError(f"{folder / MANIFEST}: not a celebface gallery manifest")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise GalleryError(
            f"{folder / MANIFEST}: gallery format {meta['format_version']} is newer than this "
            f"celebface understands ({FORMAT_VERSION}); upgrade celebface"
        )
    return meta


def _next_generation(folder: Path, manifest: dict[str, Any] | None) -> int:
    used = [0]
    for p in folder.glob("embeddings-*.npz"):
        stem = p.stem.split("-", 1)[1]
        if stem.isdigit():
            used.append(int(stem))
    if manifest:
        stem = Path(str(manifest.get("embeddings_file", ""))).stem.rpartition("-")[2]
        if stem.isdigit():
            used.append(int(stem))
    return max(used) + 1


#: a photo id as :func:`photo_id` makes it
PHOTO_ID = re.compile(r"[0-9a-f]{16}")


def photo_id(source: str) -> str:
    """The id of a gallery row's photo: a short hash of its source (a path of non-UTF-8
    bytes too)."""
    return sha256_bytes(source.encode("utf-8", "surrogatepass"))[:16]


def is_gallery(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def remove_stale_temp_files(folder: str | Path) -> None:
    """Delete temporary files an interrupted save may have left (``.<name>.*.tmp``)."""
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            os.unlink(tmp)
        except OSError as exc:  # pragma: no cover - permissions
            log.debug("%s: could not remove: %s", tmp, exc)


# --------------------------------------------------------------------------- stores
class GalleryStore(ABC):
    """Where one gallery lives, and the one write protocol every editor uses.

    Readers call :meth:`load` (never writes) and :meth:`version` (a cheap stamp that changes
    with every committed save; ``None`` while there is no gallery). Writers call :meth:`edit`:
    take the store's lock, re-read the gallery, apply the change, save it, release the lock.
    :meth:`save` writes a whole :class:`Gallery` (whatever its methods changed) as one commit;
    call it under :meth:`lock` (the lock is re-entrant in one thread, so a long edit may save
    checkpoints). :meth:`lock` waits at most ``timeout`` seconds when it is given, then raises
    :class:`StoreBusyError`.

    Each photo (by :func:`photo_id`) may have a thumbnail (a small JPEG) kept in the store
    itself, so every server of the store shows it: :meth:`thumbnails` reads them,
    :meth:`put_thumbnails` writes them (call it under the lock for photos not saved yet; a
    save drops the thumbnails of photos no longer in the gallery).
    """

    #: where the gallery is, for messages (no password)
    location: str

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def version(self) -> Hashable | None: ...

    @abstractmethod
    def load(self) -> Gallery: ...

    @abstractmethod
    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]: ...

    @abstractmethod
    def save(self, gallery: Gallery) -> None: ...

    @abstractmethod
    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored thumbnail of each photo id in ``ids`` that has one."""

    @abstractmethod
    def put_thumbnails(self, jpegs: dict[str, bytes]) -> None:
        """Store a thumbnail for each photo id (replacing an older one)."""

    def cache_dir(self) -> Path | None:
        """Where enrolment caches its vectors by default (None: no default)."""
        return None

    def close(self) -> None:  # noqa: B027 - nothing to release unless a store holds some
        """Release what the store holds open (a database connection; a folder: nothing)."""

    def snapshot(self) -> tuple[Gallery | None, Hashable | None]:
        """The current gallery (None when there is none) and its version stamp; the stamp is
        read first, so a save in between at worst causes one more reload later."""
        stamp = self.version()
        return (self.load() if stamp is not None else None), stamp

    def edit(
        self, change: Callable[[Gallery], T], create: Callable[[], Gallery] | None = None,
        timeout: float | None = None,
    ) -> tuple[T, Gallery, Hashable | None]:
        """Lock (waiting at most ``timeout`` seconds for another writer), re-read,
        ``change(gallery)``, save, unlock; returns ``change``'s result, the saved gallery and
        its version stamp. ``create`` makes the gallery when the store has none yet (without
        it that is a :class:`MissingGalleryError`). When ``change`` raises, or changes nothing,
        nothing is written (the version stays, so no other server reloads)."""
        with self.lock(timeout):
            before = None
            if self.exists():
                gallery = self.load()
                before = gallery.fingerprint()
            elif create is not None:
                gallery = create()
            else:
                raise MissingGalleryError(f"{self.location}: no gallery to edit")
            result = change(gallery)
            if before is not None and gallery.fingerprint() == before:
                log.debug("%s: the edit changed nothing; nothing written", self.location)
            else:
                self.save(gallery)
            return result, gallery, self.version()


class FolderStore(GalleryStore):
    """A gallery folder (the embedded default): an ``flock`` for writers, the manifest's
    ``stat`` as the version stamp (every save renames a new manifest into place)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.location = str(self.folder)

    def exists(self) -> bool:
        return is_gallery(self.folder)

    def version(self) -> Hashable | None:
        try:
            st = os.stat(self.folder / MANIFEST)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> Gallery:
        return Gallery.load(self.folder)

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        try:
            lock = folder_lock(self.folder, "gallery", timeout)
            lock.__enter__()
        except LockTimeoutError as exc:
            raise StoreBusyError(str(exc)) from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def save(self, gallery: Gallery) -> None:
        with self.lock():
            gallery.save(self.folder)
            keep = {photo_id(s) for s in gallery.sources}
            for old in self._thumb_dir.glob("*.jpg"):
                if PHOTO_ID.fullmatch(old.stem) and old.stem not in keep:
                    old.unlink(missing_ok=True)

    @property
    def _thumb_dir(self) -> Path:
        return self.folder / "thumbnails"

    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]:
        found = {}
        for pid in ids:
            if not PHOTO_ID.fullmatch(pid):
                continue
            # (the second name: where servers before thumbnails lived in the store kept them)
            legacy = hashlib.sha256(f"\0photo:{pid}".encode()).hexdigest()[:24]
            for name in (pid, legacy):
                try:
                    found[pid] = (self._thumb_dir / f"{name}.jpg").read_bytes()
                    break
                except OSError:
                    continue
        return found

    def put_thumbnails(self, jpegs: dict[str, bytes]) -> None:
        for pid, jpeg in jpegs.items():
            if PHOTO_ID.fullmatch(pid):
                atomic_write_bytes(self._thumb_dir / f"{pid}.jpg", jpeg)

    def cache_dir(self) -> Path | None:
        return self.folder / ".cache"


def is_store_url(location: object) -> bool:
    """Whether ``location`` names a database rather than a folder."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@\s]*):[^@\s]*@")
_PASSWORD_PARAM = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&;,]*)""",
                             re.IGNORECASE)


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with every database password replaced by ``***``: a URL's userinfo password
    (``postgresql://u:PW@h/db``), ``?password=PW`` and key=value DSNs (``password=PW``,
    quoted or not), and ``secret`` wherever it appears; for messages, logs and replies."""
    text = _USERINFO_PASSWORD.sub(r"\1:***@", str(text))
    text = _PASSWORD_PARAM.sub(r"\1***", text)
    if secret:
        text = text.replace(secret, "***")
    return text
