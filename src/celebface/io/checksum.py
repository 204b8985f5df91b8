"""SHA-256 checksums of files a manifest points at (gallery embeddings, model weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_matches(path: str | Path, expected: str | None, data: bytes | None = None) -> bool:
    """Whether ``path`` (or its already-read ``data``) has checksum ``expected``; ``True``
    when nothing is expected (files written before checksums were stored)."""
    if not expected:
        return True
    actual = sha256_bytes(data) if data is not None else sha256_file(path)
    return actual == expected
