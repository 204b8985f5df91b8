"""A resumable on-disk cache of embeddings keyed on image content and embedder settings.

Layout: ``CACHE/<model>-<settings hash>/<view>/shard-*.npz``, each shard holding ``keys``
(SHA-1 of the image content) and ``vecs``. A shard is written atomically as soon as a chunk
of work is done, so an interrupted run loses at most the chunks in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
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


class EmbeddingCache:
    """Vectors of one embedder setting, one view (``orig``, ``flip``); ``root`` None keeps
    them in memory only."""

    def __init__(self, root: str | Path | None, settings: dict[str, Any], view: str) -> None:
        self.dir = Path(root) / settings_key(settings) / view if root is not None else None
        self.settings = settings
        self._vecs: dict[str, np.ndarray] = {}
        self._load()

    def _load(self, shards: list[Path] | None = None) -> None:
        if self.dir is None:
            return
        for shard in sorted(self.dir.glob("shard-*.npz")) if shards is None else shards:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vecs"]
                    if len(keys) != len(vecs):
                        raise ValueError("keys and vectors differ in length")
            except Exception as exc:  # damaged shard (BadZipFile, zlib.error, ...): a miss
                log.warning("%s: damaged cache shard ignored, its vectors are recomputed "
                            "(%s: %s)", shard, type(exc).__name__, exc)
                continue
            for k, v in zip(keys.tolist(), vecs, strict=True):
                self._vecs[k.decode() if isinstance(k, bytes) else str(k)] = v

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
        if self.dir is None:
            self._vecs.update(zip(keys, vecs, strict=True))
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir.parent / "settings.json"
        if not settings_file.exists():
            with atomic_write(settings_file, "w") as fh:
                json.dump(self.settings, fh, indent=2, default=str)
        with atomic_write(self.dir / f"shard-{uuid.uuid4().hex}.npz", "wb") as fh:
            np.savez(fh, keys=np.asarray(keys, dtype="S40"), vecs=vecs)
        self._vecs.update(zip(keys, vecs, strict=True))

    def compact(self) -> None:
        """Merge all shards into one (fewer files to open next time). Damaged shards are
        dropped; shards another run wrote meanwhile are read first, so none is lost."""
        if self.dir is None or not self.dir.is_dir():
            return
        with folder_lock(self.dir, "embedding cache"):
            shards = sorted(self.dir.glob("shard-*.npz"))
            if len(shards) < 2:
                return
            self._load(shards)
            keys = list(self._vecs)
            with atomic_write(self.dir / f"shard-{uuid.uuid4().hex}.npz", "wb") as fh:
                np.savez(fh, keys=np.asarray(keys, dtype="S40"),
                         vecs=np.stack([self._vecs[k] for k in keys]))
            for shard in shards:
                shard.unlink(missing_ok=True)
