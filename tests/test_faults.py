"""Fault injection (issue #15): bad input, special files, concurrent runs, signals, disk full.

Each test provokes one fault found by trying the CLI as a new user would and checks that data
stays intact and the error is one line. Fast (synthetic data, stand-in embedders) except the
signal tests on real photos, which are marked slow.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.errors import CelebfaceError
from celebface.io import (
    OutputPathError,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    folder_lock,
    list_dataset,
)
from celebface.recognition.base import Embedder, l2_normalize
from celebface.types import Face

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "celebface.cli.main"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write_people(root: Path, people: Sequence[str], n: int = 2, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(people):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = np.array([(70 * k) % 255, 120, 200 - 40 * i])
            arr = np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------ 1. outputs over inputs
def test_output_folder_guard_cases(tmp_path: Path) -> None:
    src = write_people(tmp_path / "src", ["amy"])
    for dst, word in [(src, "is the input"), (src / "crops", "inside"),
                      (tmp_path, "contains")]:
        with pytest.raises(OutputPathError, match=word):
            check_output_dir(dst, [src])
    with pytest.raises(OutputPathError, match="holds the input file"):
        check_output_dir(src / "amy", [src / "amy" / "0.png"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_dir(tmp_path / "file", [src])
    check_output_dir(tmp_path / "elsewhere", [src, None, "rtsp://cam", tmp_path / "missing"])
    # symlinked spellings of the same folder are caught too
    (tmp_path / "link").symlink_to(src)
    with pytest.raises(OutputPathError):
        check_output_dir(tmp_path / "link", [src])


@pytest.mark.parametrize("case", ["same", "inside", "file"])
def test_crop_refuses_before_any_work(tmp_path: Path, case: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"])
    (tmp_path / "file").write_text("keep me")
    dst = {"same": src, "inside": src / "crops", "file": tmp_path / "file"}[case]
    before = snapshot(tmp_path)
    assert main(["crop", str(src), str(dst), "--detector", "hog"]) == 2
    assert "DST" in one_line_error(capsys)
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced


def test_recognize_out_cannot_replace_its_input(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "d", ["amy"])
    photo = src / "amy" / "0.png"
    before = snapshot(tmp_path)
    for args in (["recognize", str(photo), "--gallery", "G", "--out", str(photo.parent)],
                 ["recognize", str(src), "--gallery", "G", "--out", str(tmp_path)]):
        assert main(args) == 2
        assert "--out" in one_line_error(capsys)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["pack", "synth", "embed", "enroll", "train"])
def test_every_folder_writer_checks_its_output(tmp_path: Path, command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"])
    inside = str(src / "out")
    args = {"pack": ["pack", str(src), inside], "synth": ["synth", str(src), inside],
            "embed": ["embed", str(src), "--out", inside],
            "enroll": ["enroll", str(src), "--out", inside],
            "train": ["train", str(src), "--out", inside]}[command]
    assert main(args) == 2
    assert "inside the input folder" in one_line_error(capsys)
    assert not (src / "out").exists()


# ------------------------------------------------------------------ 2. special files
def _reader(path: Path, out: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as fh:
            out.append(fh.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    from celebface.streaming.output import JsonlWriter

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    t = _reader(fifo, got)
    atomic_write_json(fifo, {"a": 1})
    t.join(5)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(got[0]) == {"a": 1}
    got.clear()
    t = _reader(fifo, got)
    with JsonlWriter(fifo) as w:
        w.write({"frame": 0})
    t.join(5)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(got[0]) == {"frame": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temp file


@pytest.mark.skipif(not IS_ROOT, reason="making a device node needs root")
def test_character_device_stays_a_device(tmp_path: Path) -> None:
    from celebface.streaming.output import JsonlWriter

    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    atomic_write_text(null, "gone")
    with JsonlWriter(null) as w:
        w.write({"frame": 0})
    assert stat.S_ISCHR(null.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    from celebface.streaming.output import JsonlWriter

    target = tmp_path / "real" / "r.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with JsonlWriter(link) as w:
        w.write({"frame": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"frame": 1}
    atomic_write_text(link, "text")
    assert link.is_symlink() and target.read_text() == "text"
    with pytest.raises(IsADirectoryError, match=str(tmp_path / "real")):
        atomic_write_text(tmp_path / "real", "x")


def test_jsonl_respects_umask_and_dash_is_stdout(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from celebface.streaming.output import JsonlWriter

    old = os.umask(0o022)
    try:
        with JsonlWriter(tmp_path / "r.jsonl") as w:
            w.write({"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.jsonl").stat().st_mode) == 0o644
    with JsonlWriter("-") as w:
        w.write({"source": os.fsdecode(b"caf\xe9.jpg")})  # a Latin-1 file name
    out = capsys.readouterr().out
    out.encode("utf-8")  # valid UTF-8 text, and the name round-trips
    assert os.fsencode(json.loads(out)["source"]) == b"caf\xe9.jpg"
    assert not (tmp_path / "-").exists()


# ------------------------------------------------------------------ 3. concurrent writers
def write_embedded(root: Path, people: Sequence[str], dim: int = 16, n: int = 3) -> Path:
    """A ``celebface embed`` output folder with synthetic vectors."""
    rng = np.random.default_rng(len(people) + sum(map(len, people)))
    root.mkdir(parents=True)
    emb = l2_normalize(rng.normal(size=(n * len(people), dim)))
    np.save(root / "face_embeddings.npy", emb)
    np.save(root / "labels.npy", np.repeat(np.arange(len(people)), n).astype(np.int64))
    paths = [f"/nowhere/{p}/{i}.jpg" for p in people for i in range(n)]
    (root / "paths.json").write_text(json.dumps(paths))
    (root / "label_mapping.json").write_text(json.dumps(dict(enumerate(people))))
    meta = {"model": "dlib", "dim": dim, "alignment": "dlib-5-point", "tta": "none",
            "settings": {"model": "dlib", "dim": dim, "padding": 0.25}}
    (root / "embedding.json").write_text(json.dumps(meta))
    return root


#: ``RACER READY GO ARGS...``: imports, creates READY, runs ``celebface ARGS...`` once GO
#: exists (so runs start together), with a slow
#: gallery read (fault injection: the window in which a concurrent update gets lost).
RACER = """
import os, sys, time
from celebface.cli.main import main
from celebface.gallery import store
import celebface.training.embedding  # the slow imports happen before the start line
real = store.Gallery.load.__func__
def slow_load(cls, path):
    gallery = real(cls, path)
    time.sleep(1.5)
    return gallery
store.Gallery.load = classmethod(slow_load)
open(sys.argv[1], "w").close()  # ready
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_two_enrolls_at_once_keep_both_people(tmp_path: Path) -> None:
    from celebface.gallery import Gallery, enroll

    g, go = tmp_path / "g", tmp_path / "go"
    enroll(write_embedded(tmp_path / "e0", ["base"]), g)
    people = ["amy", "bob"]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / f"ready-{p}"),
                               str(go), "-q", "enroll", str(write_embedded(tmp_path / p, [p])),
                               "--add", "--out", str(g)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for p in people]
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"ready-{p}").exists() for p in people):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
    assert sorted(Gallery.load(g).names) == ["amy", "base", "bob"]  # no update lost


def test_two_threads_enrolling_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    from celebface.gallery import Gallery, enroll, store

    g = tmp_path / "g"
    enroll(write_embedded(tmp_path / "e0", ["base"]), g)
    real = store.Gallery.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls, path):  # type: ignore[no-untyped-def]
        gallery = real(cls, path)
        time.sleep(0.5)
        return gallery

    monkeypatch.setattr(store.Gallery, "load", classmethod(slow_load))
    data = [write_embedded(tmp_path / p, [p]) for p in ("amy", "bob")]
    threads = [threading.Thread(target=enroll, args=(d, g), kwargs={"add": True}) for d in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    assert sorted(Gallery.load(g).names) == ["amy", "base", "bob"]


def test_enroll_waits_for_the_gallery_lock(tmp_path: Path) -> None:
    from celebface.gallery import Gallery

    g = tmp_path / "g"
    data = write_embedded(tmp_path / "e", ["amy"])
    with folder_lock(g, "gallery"):
        proc = subprocess.Popen([*CLI, "-q", "enroll", str(data), "--add", "--out", str(g)],
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the run reports that it waits
        assert b"is being updated by another run: waiting" in line
        time.sleep(1)
        assert proc.poll() is None and not (g / "gallery.json").exists()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert Gallery.load(g).names == ["amy"]


def test_calibrate_refuses_a_gallery_changed_meanwhile(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.gallery import Gallery, GalleryError, calibrate, enroll

    enroll_module = sys.modules["celebface.gallery.enroll"]

    g = tmp_path / "g"
    enroll(write_embedded(tmp_path / "e1", ["amy", "bob"]), g)
    probes = write_embedded(tmp_path / "probe", ["amy", "zed"])
    real = enroll_module.calibrate_scores

    def meanwhile(*args, **kwargs):  # another run enrolls while this one calibrates
        enroll(write_embedded(tmp_path / "e2", ["cat"]), g, add=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(enroll_module, "calibrate_scores", meanwhile)
    with pytest.raises(GalleryError, match="changed while calibrating"):
        calibrate(g, probes, 0.1)
    assert sorted(Gallery.load(g).names) == ["amy", "bob", "cat"]


def test_folder_lock_is_reentrant(tmp_path: Path) -> None:
    with folder_lock(tmp_path), folder_lock(tmp_path):
        pass
    with folder_lock(tmp_path):
        pass


# ------------------------------------------------------------------ 4. camera numbers
def test_negative_camera_is_refused_not_a_segfault(tmp_path: Path) -> None:
    from celebface.streaming import Source, iter_frames
    from celebface.streaming.sources import SourceError

    for n in ("-1", "-5"):
        r = subprocess.run([*CLI, "recognize", "--camera", n, "--gallery", str(tmp_path)],
                           env=ENV, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "--camera" in r.stderr.strip().splitlines()[-1]
    with pytest.raises(SourceError, match="camera numbers start at 0"):
        next(iter_frames(Source("camera", "-1")))


# ------------------------------------------------------------------ 5. signals
@pytest.fixture(scope="module")
def pins_gallery(pins: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A gallery of two pins people (4 crops each) and a folder of 40 other photos."""
    root = tmp_path_factory.mktemp("sig")
    items = list_dataset(pins)
    people = sorted({it.identity for it in items})[:2]
    for person in people:
        (root / "train" / person).mkdir(parents=True)
        for it in [it for it in items if it.identity == person][:4]:
            (root / "train" / person / it.path.name).symlink_to(it.path)
    (root / "photos").mkdir()
    for k, it in enumerate([it for it in items if it.identity not in people][:40]):
        (root / "photos" / f"{k:03d}{it.path.suffix}").symlink_to(it.path)
    g = root / "g"
    assert main(["-q", "enroll", str(root / "train"), "--out", str(g), "--detector", "none",
                 "--device", "cpu", "--threads", "1"]) == 0
    return g, root / "photos"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_keeps_every_finished_record(pins_gallery: tuple[Path, Path], tmp_path: Path,
                                            sig: int) -> None:
    g, photos = pins_gallery
    out = tmp_path / "o.jsonl"
    proc = subprocess.Popen([*CLI, "-q", "recognize", str(photos), "--gallery", str(g),
                             "--jsonl", str(out), "--device", "cpu", "--threads", "1"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, deadline = 0, time.monotonic() + 240
    while seen < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        seen = sum(p.read_text().count("\n") for p in tmp_path.glob(".o.jsonl.*.tmp"))
    assert proc.poll() is None and seen >= 2, "recognize finished or stalled before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), err.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert seen <= len(records) < 40
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert not list(tmp_path.glob(".o.jsonl.*"))  # no hidden leftovers


# ------------------------------------------------------------------ 6. one-line errors
def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


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
    from celebface.cropping.records import Records
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


class ColourEmbedder(Embedder):
    """A stand-in embedder: mean colour of the image quadrants."""

    name, dim = "colour", 12

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        self.calls += len(images)
        out = []
        for img in images:
            h, w = img.shape[0] // 2, img.shape[1] // 2
            quads = [img[:h, :w], img[:h, w:], img[h:, :w], img[h:, w:]]
            out.append(np.concatenate([q.reshape(-1, 3).mean(0) for q in quads]) - 127.5)
        return l2_normalize(np.array(out, np.float32))


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


# ------------------------------------------------------------------ 7. names
ODD_NAMES = ["new\nline.png", "car\rriage.png", 'quo"te\t.png',
             os.fsdecode(b"latin\xe9.png")]  # the last is not UTF-8


def write_odd_people(root: Path) -> Path:
    write_people(root, ["amy", os.fsdecode(b"b\xf6b")], n=1)
    for k, name in enumerate(ODD_NAMES):
        arr = np.full((24, 24, 3), 40 * k + 20, np.uint8)
        Image.fromarray(arr).save(root / "amy" / name, format="PNG")
    return root


def test_path_list_survives_any_name(tmp_path: Path) -> None:
    from celebface.io.pathlist import read_paths, write_paths

    names = [*ODD_NAMES, "plain.jpg", "sp ace/ü.jpg"]
    write_paths(tmp_path, names)
    assert read_paths(tmp_path) == names
    (tmp_path / "paths.json").read_bytes().decode("utf-8")  # valid UTF-8
    old = tmp_path / "old"
    old.mkdir()
    (old / "paths.txt").write_text("a.jpg\nb c.jpg\n")  # folders written before paths.json
    assert read_paths(old) == ["a.jpg", "b c.jpg"]


def test_pack_and_embed_keep_odd_names(tmp_path: Path) -> None:
    from celebface.packing import load_packed, pack_dataset
    from celebface.recognition import embed_dataset, load_embeddings

    src = write_odd_people(tmp_path / "src")
    packed = tmp_path / "packed"
    pack_dataset(src, packed, progress=False)
    p = load_packed(packed)
    assert len(p.paths) == len(p.labels) == 6
    assert {Path(x).name for x in p.paths} >= set(ODD_NAMES)
    assert os.fsdecode(b"b\xf6b") in p.label_names
    emb = embed_dataset(src, tmp_path / "emb", embedder=ColourEmbedder(), progress=False)
    loaded = load_embeddings(tmp_path / "emb")
    assert loaded.paths == emb.paths and len(loaded.paths) == len(loaded.labels) == 6
    assert os.fsencode(Path(loaded.paths[-1]).parent.name) == b"b\xf6b"


def test_enroll_and_synth_accept_non_utf8_names(tmp_path: Path) -> None:
    from celebface.gallery import EnrollConfig, Gallery, enroll
    from celebface.synth import SynthConfig, synthesize

    src = write_odd_people(tmp_path / "src")
    cfg = EnrollConfig(embedder="colour", detector="none")
    enroll(src, tmp_path / "g", config=cfg, models=(ColourEmbedder(), None), progress=False)
    g = Gallery.load(tmp_path / "g")
    assert os.fsdecode(b"b\xf6b") in g.names and len(g) == 6
    (tmp_path / "g" / "average_embeddings.json").read_bytes().decode("utf-8")
    s = synthesize(src, tmp_path / "syn", SynthConfig(size=64, backgrounds=("gradient",)),
                   progress=False)
    assert s.total == 6 and not s.failed


class NoFaces:
    """A detector that never finds a face."""

    name, thread_safe = "none-found", True

    def settings(self) -> dict:
        return {"detector": self.name}

    def detect_batch(self, images):  # type: ignore[no-untyped-def]
        return [[] for _ in images]


def test_no_faces_records_do_not_grow_on_rerun(tmp_path: Path) -> None:
    from celebface.cropping import CropConfig, crop_dataset

    src = write_odd_people(tmp_path / "src")
    dst = tmp_path / "dst"
    cfg = CropConfig(progress=False, device="cpu")
    for _ in range(3):
        crop_dataset(src, dst, cfg, detector=NoFaces())
    from celebface.cropping.records import NO_FACES, read_lines

    lines = read_lines(dst / NO_FACES)
    assert len(lines) == len(set(lines)) == 6
    assert {Path(x).name for x in lines} >= set(ODD_NAMES)


# ------------------------------------------------------------------ 8. flags
BAD_FLAGS = [
    (["recognize", "x.jpg", "--gallery", "G", "--threshold", v], "--threshold")
    for v in ("5", "-1", "nan", "inf")
] + [
    (["recognize", "x.jpg", "--gallery", "G", "--image-detect-size", "-100"],
     "--image-detect-size"),
    (["recognize", "x.jpg", "--gallery", "G", "--max-frames", "-1"], "--max-frames"),
    (["recognize", "x.jpg", "--gallery", "G", "--max-frames", "0"], "--max-frames"),
    (["recognize", "x.jpg", "--gallery", "G", "--reembed-every", "0"], "--reembed-every"),
    (["recognize", "x.jpg", "--gallery", "G", "--timeout", "0"], "--timeout"),
    (["recognize", "x.jpg", "--gallery", "G", "--threads", "0"], "--threads"),
    (["train", "D", "--out", "M", "--epochs", "0"], "--epochs"),
    (["train", "D", "--out", "M", "--k", "0"], "--k"),
    (["train", "D", "--out", "M", "--batch-size", "0"], "--batch-size"),
    (["train", "D", "--out", "M", "--hidden", "0"], "--hidden"),
    (["train", "D", "--out", "M", "--hidden", "512,x"], "--hidden"),
    (["train", "D", "--out", "M", "--val-fraction", "2"], "--val-fraction"),
    (["train", "D", "--out", "M", "--dropout", "1"], "--dropout"),
    (["train", "D", "--out", "M", "--lr", "-0.1"], "--lr"),
    (["crop", "S", "D", "--margin", "-1"], "--margin"),
    (["crop", "S", "D", "--batch-size", "0"], "--batch-size"),
    (["crop", "S", "D", "--min-score", "1.5"], "--min-score"),
    (["pack", "S", "D", "--val", "1"], "--val"),
    (["embed", "S", "--out", "D", "--batch-size", "0"], "--batch-size"),
    (["calibrate", "G", "D", "--far", "1"], "--far"),
    (["calibrate", "G", "D", "--far", "-0.1"], "--far"),
    (["enroll", "D", "--out", "G", "--max-side", "-5"], "--max-side"),
    (["evaluate", "M", "D", "--out", "R", "--batch-size", "0"], "--batch-size"),
    (["synth", "S", "D", "--copies", "0"], "--copies"),
    (["synth", "S", "D", "--scale", "0", "0.5"], "--scale"),
]


@pytest.mark.parametrize("argv,flag", BAD_FLAGS, ids=[" ".join(a[0][-2:]) for a in BAD_FLAGS])
def test_bad_flag_values_are_refused_at_parse_time(argv: list[str], flag: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {flag}" in line and ("range" in line or "not a" in line), line


def test_config_dataclasses_check_ranges_too() -> None:
    from celebface.cropping import CropConfig
    from celebface.gallery import EnrollConfig, FaceSetConfig
    from celebface.packing import PackConfig
    from celebface.recognition import EmbedConfig
    from celebface.streaming import RecognizerConfig, StreamConfig, TrackerConfig
    from celebface.training.classical import ClassicalConfig
    from celebface.training.mlp import MLPConfig
    from celebface.training.registry import make_config
    from celebface.validate import ConfigError

    bad = [
        lambda: RecognizerConfig(threshold=5), lambda: RecognizerConfig(threshold=float("nan")),
        lambda: RecognizerConfig(detect_side=-100), lambda: StreamConfig(max_frames=-1),
        lambda: TrackerConfig(reembed_every=0), lambda: CropConfig(batch_size=0),
        lambda: CropConfig(margin=-0.1), lambda: PackConfig(val_fraction=2),
        lambda: EmbedConfig(batch_size=0), lambda: FaceSetConfig(max_side=-1),
        lambda: EnrollConfig(checkpoint_every=0),
        lambda: make_config(MLPConfig, {"epochs": 0}, "mlp"),
        lambda: make_config(MLPConfig, {"hidden": (0,)}, "mlp"),
        lambda: make_config(MLPConfig, {"batch_size": 0}, "mlp"),
        lambda: make_config(ClassicalConfig, {"k": 0}, "knn"),
        lambda: make_config(ClassicalConfig, {"val_fraction": 2.0}, "knn"),
    ]
    for make in bad:
        with pytest.raises(ConfigError):
            make()
    assert RecognizerConfig(threshold=0.5, detect_side=0).threshold == 0.5


# ------------------------------------------------------------------ 9. threads
def test_thread_count_follows_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface import device

    monkeypatch.setattr(device, "available_cpus", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 2.0, 2.0))
    assert device.pick_threads() == 1  # busy 2-core host: one thread
    monkeypatch.setattr(device, "available_cpus", lambda: 16)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert device.pick_threads() == 16 and device.pick_threads(workers=4) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (12.0, 0.0, 0.0))
    assert device.pick_threads() == 4
    assert device.pick_threads(requested=3) == 3


def test_every_torch_command_sets_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface import device
    from celebface.cli.main import COMMANDS, build_parser

    calls: list[int | None] = []
    monkeypatch.setattr(device, "set_torch_threads", lambda n=None, workers=1: calls.append(n))
    main(["calibrate", "/nonexistent/g", "/nonexistent/d", "--threads", "2"])
    assert calls == [2]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    torch_commands = {n for n, p in sub.choices.items()  # type: ignore[union-attr]
                      if any(a.dest == "device" for a in p._actions)}
    assert torch_commands >= {"embed", "train", "evaluate", "enroll", "calibrate", "recognize"}
    for name in torch_commands - {"crop"}:  # crop shares threads among detection workers
        assert sub.choices[name].get_default("_torch_threads"), name  # type: ignore[union-attr]
    assert {c[0] for c in COMMANDS} >= torch_commands


# ------------------------------------------------------------------ 10. minor
def test_calibrate_recognises_copies_of_enrolled_photos(tmp_path: Path) -> None:
    from celebface.gallery.enroll import same_content

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
