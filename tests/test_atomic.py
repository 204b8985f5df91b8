"""Atomic writes: all or nothing, usual permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from celebface.io import atomic_write, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_write(path, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temp file left


def test_atomic_write_uses_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "m.json", {"ü": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "m.json").stat().st_mode)
    assert mode == 0o644
    assert "ü" in (tmp_path / "m.json").read_text(encoding="utf-8")
