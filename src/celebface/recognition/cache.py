"""A resumable on-disk cache of embeddings keyed on image content and embedder settings.

Layout: ``CACHE/<model>-<settings hash>/<view>/shard-*.npz``, each shard holding ``keys``
(SHA-1 of the image content) and ``vecs``. Writes only ever add shards: one is written
atomically as soon as a chunk of work is done, so an interrupted run (even ``kill -9``) loses at
most the shards in flight, and a run writes only its new vectors. At the end of a run its own
shards are merged into one (cost: the new vectors), and past :data:`MAX_SHARDS` shards the small
ones are merged (never the largest, so the cost stays with recent work);
:meth:`EmbeddingCache.compact` merges everything into one shard (``celebface embed
--compact-cache``). A merge writes its shard before deleting what it replaces and runs under the
folder's lock, so concurrent runs lose nothing. A damaged shard is a miss: its vectors are
recomputed, and the next merge drops it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.io import atomic_write, folder_lock

log = logging.getLogger(__name__)


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable name for a settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return f"{settings.get('model', 'embedder')}-{hashlib.sha1(blob).hexdigest()[:16]}"


def content_hash(data: bytes | np.ndarray) -> str:
    if isinstance(data, np.ndarray):
        h = hashlib.sha1(str(data.shape).encode())
        h.update(np.ascontiguousarray(data).data)
        return h.hexdigest()
    return hashlib.sha1(data).hexdigest()


#: More shards than this in one view and all but the largest are merged at the end of a run.
#: Measured on this project's machine: a view of 14,857 vectors loads in 10 ms as one shard,
#: 21 ms as one large shard plus 16 small ones (37 ms with 64), so the bound keeps loads fast;
#: merging all but the largest shard keeps each merge's cost with the recent runs' vectors
#: (the largest is rewritten only once the others outgrow it: amortised, new work only).
MAX_SHARDS = 16


def read_shard(shard: Path) -> tuple[list[str], np.ndarray] | None:
    """A shard's keys and vectors, or None (logged) when it is damaged."""
    try:
        with np.load(shard, allow_pickle=False) as z:
            keys, vecs = z["keys"], z["vecs"]
            if len(keys) != len(vecs):
                raise ValueError("keys and vectors differ in length")
    except FileNotFoundError:  # merged into another shard meanwhile
        return None
    except Exception as exc:  # damaged shard (BadZipFile, zlib.error, ...): a miss
        log.warning("%s: damaged cache shard ignored, its vectors are recomputed "
                    "(%s: %s)", shard, type(exc).__name__, exc)
        return None
    return [k.decode() if isinstance(k, bytes) else str(k) for k in keys.tolist()], vecs


def write_shard(folder: Path, keys: Sequence[str], vecs: np.ndarray) -> Path:
    """A new shard in ``folder``, written atomically; its path."""
    path = folder / f"shard-{uuid.uuid4().hex}.npz"
    with atomic_write(path, "wb") as fh:
        np.savez(fh, keys=np.asarray(keys, dtype="S40"), vecs=np.asarray(vecs, np.float32))
    return path


class EmbeddingCache:
    """Vectors of one embedder setting, one view (``orig``, ``flip``); ``root`` None keeps
    them in memory only. ``written`` lists the shards this object wrote (merged by
    :meth:`settle`)."""

    def __init__(self, root: str | Path | None, settings: dict[str, Any], view: str) -> None:
        self.dir = Path(root) / settings_key(settings) / view if root is not None else None
        self.settings = settings
        self._vecs: dict[str, np.ndarray] = {}
        self.written: list[Path] = []
        if self.dir is not None:
            for shard in sorted(self.dir.glob("shard-*.npz")):
                found = read_shard(shard)
                if found is not None:
                    self._vecs.update(zip(found[0], found[1], strict=True))

    def __contains__(self, key: str) -> bool:
        return key in self._vecs

    def __len__(self) -> int:
        return len(self._vecs)

    def get(self, key: str) -> np.ndarray:
        return self._vecs[key]

    def add(self, keys: Iterable[str], vecs: np.ndarray) -> None:
        """Store and persist a batch (one new shard)."""
        keys = list(keys)
        if not keys:
            return
        vecs = np.asarray(vecs, dtype=np.float32)
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            settings_file = self.dir.parent / "settings.json"
            if not settings_file.exists():
                with atomic_write(settings_file, "w") as fh:
                    json.dump(self.settings, fh, indent=2, default=str)
            self.written.append(write_shard(self.dir, keys, vecs))
        self._vecs.update(zip(keys, vecs, strict=True))

    def settle(self, max_shards: int = MAX_SHARDS) -> None:
        """End of a run: merge the shards it wrote into one, then, past ``max_shards``
        shards, every shard but the largest. Writes are proportional to recent work."""
        if self.dir is None:
            return
        mine, self.written = self.written, []
        with folder_lock(self.dir, "embedding cache"):
            if len(mine) > 1:
                self._merge([s for s in mine if s.exists()])
            shards = sorted(self.dir.glob("shard-*.npz"))
            if len(shards) > max_shards:
                largest = max(shards, key=lambda s: s.stat().st_size)
                self._merge([s for s in shards if s != largest])

    def compact(self) -> None:
        """Merge all shards into one (fewer files to open next time); damaged ones are
        dropped. Shards another run wrote meanwhile are merged too, so none is lost."""
        if self.dir is None or not self.dir.is_dir():
            return
        with folder_lock(self.dir, "embedding cache"):
            self._merge(sorted(self.dir.glob("shard-*.npz")))

    def _merge(self, shards: list[Path]) -> None:
        """Replace ``shards`` by one holding their vectors (caller holds the lock): the new
        shard is written before the old ones go, so a crash leaves duplicates, not losses."""
        if len(shards) < 2 or self.dir is None:  # shards are files of a cache folder
            return
        merged: dict[str, np.ndarray] = {}
        for shard in shards:
            found = read_shard(shard)
            if found is not None:
                merged.update(zip(found[0], found[1], strict=True))
        if merged:
            write_shard(self.dir, list(merged), np.stack(list(merged.values())))
        for shard in shards:
            shard.unlink(missing_ok=True)
        log.debug("%s: %d shards merged into one (%d vectors)", self.dir, len(shards),
                  len(merged))
