"""Fault injection (issue #15), part 2: one-line errors instead of tracebacks (disk full,
read-only folders, unreadable or damaged files) and the minor faults."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from celebface.cli.main import main
from celebface.data import list_dataset
from celebface.errors import CelebfaceError
from celebface.io import atomic_write_json
from faultkit import (
    IS_ROOT,
    ColourEmbedder,
    enospc,
    one_line_error,
    write_embedded,
    write_people,
)

# ------------------------------------------------------------------ 6. one-line errors

def test_disk_full_in_atomic_write_names_the_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(OSError, match="No space left") as info:
        atomic_write_json(path, {"v": 2})
    assert info.value.filename == str(path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}  # old file intact, no temp left
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_disk_full_in_crop_records_and_jsonl_name_the_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from celebface.data.crops import Records
    from celebface.streaming.output import JsonlWriter

    records = Records(tmp_path)
    records.add_no_face("amy/0.png")
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(OSError, match="No space left") as info:
        records.commit()
    assert Path(info.value.filename).parent == tmp_path
    monkeypatch.undo()
    if os.path.exists("/dev/full"):  # writes to /dev/full fail with ENOSPC
        with pytest.raises(OSError, match="No space left") as info:
            JsonlWriter("/dev/full").write({"frame": 0})
        assert info.value.filename == "/dev/full"


@pytest.mark.parametrize("command", ["pack", "enroll"])
def test_disk_full_at_the_cli_is_one_line(tmp_path: Path, command: str,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"])
    monkeypatch.setattr(os, "fsync", enospc)
    if command == "pack":
        code = main(["pack", str(src), str(tmp_path / "dst")])
    else:
        from celebface.gallery import Gallery

        data = write_embedded(tmp_path / "e", ["amy"])
        code = main(["enroll", str(data), "--out", str(tmp_path / "g")])
        monkeypatch.undo()
        assert not (tmp_path / "g" / "gallery.json").exists()
        with pytest.raises(CelebfaceError):
            Gallery.load(tmp_path / "g")
    assert code == 2
    assert "No space left on device" in one_line_error(capsys)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 256 KiB tmpfs (root only; skipped elsewhere)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                                      str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_really_full_disk_pack_is_one_line(tmp_path: Path, tiny_tmpfs: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"], n=3)
    assert main(["pack", str(src), str(tiny_tmpfs / "dst"), "--size", "224"]) == 2
    assert "No space left on device" in one_line_error(capsys)


def test_read_only_output_folder_is_one_line(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "src", ["amy"])
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkstemp = __import__("tempfile").mkstemp

    def read_only(*args, **kwargs):  # what a read-only mount answers (also as root)
        if str(kwargs.get("dir", "")).startswith(str(ro)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(ro / ".x.tmp"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    assert main(["pack", str(src), str(ro / "dst")]) == 2
    line = one_line_error(capsys)
    assert "Read-only file system" in line and str(ro / "dst") in line and ".tmp" not in line


def test_unreadable_person_folder_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"])
    real_iterdir = Path.iterdir

    def iterdir(self: Path):
        if self.name == "bob":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    items = list_dataset(src)
    assert {it.identity for it in items} == {"amy"}
    assert "bob" in caplog.text and "Permission denied" in caplog.text



def test_corrupt_cache_shard_is_a_miss(tmp_path: Path) -> None:
    from celebface.recognition import embed_dataset

    src = write_people(tmp_path / "src", ["amy", "bob"])
    out = tmp_path / "emb"
    emb = ColourEmbedder()
    first = embed_dataset(src, out, embedder=emb, progress=False)
    shards = list((out / ".cache").rglob("shard-*.npz"))
    assert shards
    for s in shards:
        s.write_bytes(s.read_bytes()[:40])  # truncated: BadZipFile
    again = embed_dataset(src, out, embedder=emb, progress=False)
    assert again.meta["computed"] == 4
    np.testing.assert_allclose(again.embeddings, first.embeddings, atol=1e-6)
    third = embed_dataset(src, out, embedder=emb, progress=False)  # the bad shards are gone
    assert third.meta["computed"] == 0


@pytest.fixture(scope="module")
def emb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_embedded(tmp_path_factory.mktemp("m") / "e", ["amy", "bob", "cat"], n=10)


@pytest.mark.parametrize("kind,weights", [("centroid", "classifier.npz"), ("mlp", "mlp.pt")])
def test_damaged_model_weights_are_refused(emb_folder: Path, tmp_path: Path, kind: str,
                                           weights: str) -> None:
    from celebface.training import load_model, train_model
    from celebface.training.base import ModelError

    out = tmp_path / kind
    extra = {"epochs": 2, "progress": False, "device": "cpu"} if kind == "mlp" else {}
    train_model(emb_folder, kind, out, **extra)
    meta = json.loads((out / "model.json").read_text())
    assert weights in meta["checksums"]
    load_model(out)
    data = bytearray((out / weights).read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit
    (out / weights).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        load_model(out)
    # a model saved before checksums were stored: a damaged file still gives one line
    del meta["checksums"]
    (out / "model.json").write_text(json.dumps(meta))
    (out / weights).write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelError, match=str(out)):
        load_model(out)


def test_damaged_gallery_without_checksum_is_one_line(tmp_path: Path) -> None:
    from celebface.gallery import Gallery, GalleryError, enroll

    g = tmp_path / "g"
    enroll(write_embedded(tmp_path / "e", ["amy"]), g)
    manifest = json.loads((g / "gallery.json").read_text())
    manifest["embeddings_sha256"] = ""
    (g / "gallery.json").write_text(json.dumps(manifest))
    npz = g / manifest["embeddings_file"]
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(GalleryError, match="damaged gallery embeddings"):
        Gallery.load(g)


# ------------------------------------------------------------------ 10. minor
def test_calibrate_recognises_copies_of_enrolled_photos(tmp_path: Path) -> None:
    from celebface.gallery.calibrate_gallery import same_content

    src = write_people(tmp_path / "src", ["amy"], n=2)
    enrolled = [str(p) for p in sorted((src / "amy").iterdir())]
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(enrolled[0]).read_bytes())
    other = tmp_path / "other.png"  # same size, other bytes
    data = bytearray(Path(enrolled[0]).read_bytes())
    data[-20] ^= 1
    other.write_bytes(bytes(data))
    assert same_content([str(copy), str(other), "/missing.png"], enrolled) == {str(copy)}


def test_a_signal_handler_does_not_leak(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(SystemExit):
        main(["pack", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert signal.getsignal(signal.SIGTERM) == before

