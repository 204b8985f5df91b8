"""Fault injection (issue #15), part 1: outputs over inputs, special files, concurrent
writers, camera numbers, signals. Parts 2 and 3: test_faults_errors.py, test_faults_input.py.

Each test provokes one fault found by trying the CLI as a new user would and checks that data
stays intact and the error is one line. Fast (synthetic data, stand-in embedders) except the
signal tests on real photos, which are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from celebface.cli.main import main
from celebface.data import list_dataset
from celebface.io import (
    OutputPathError,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    folder_lock,
)
from faultkit import (
    CLI,
    ENV,
    IS_ROOT,
    one_line_error,
    snapshot,
    write_embedded,
    write_people,
)


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


def test_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    from celebface.streaming.output import JsonlWriter

    target = tmp_path / "real" / "r.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with JsonlWriter(link) as w:
        w.write({"frame": 1})
    assert not link.is_symlink() and json.loads(link.read_text()) == {"frame": 1}
    assert target.read_text() == "old\n"  # what the link pointed at is untouched
    link.unlink()
    link.symlink_to(target)
    atomic_write_text(link, "text")
    assert not link.is_symlink() and link.read_text() == "text"
    assert target.read_text() == "old\n"
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


@pytest.mark.slow
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


@pytest.mark.slow
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

    enroll_module = sys.modules["celebface.gallery.calibrate_gallery"]

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
            (root / "train" / person / Path(it.path).name).symlink_to(it.path)
    (root / "photos").mkdir()
    for k, it in enumerate([it for it in items if it.identity not in people][:40]):
        (root / "photos" / f"{k:03d}{Path(it.path).suffix}").symlink_to(it.path)
    g = root / "g"
    assert main(["-q", "enroll", str(root / "train"), "--out", str(g), "--detector", "none",
                 "--device", "cpu", "--threads", "1"]) == 0
    return g, root / "photos"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_keeps_every_finished_record(pins_gallery: tuple[Path, Path], tmp_path: Path,
                                            sig: int) -> None:
    g, photos = pins_gallery
    out = tmp_path / "o.jsonl"
    # SIGINT at its default in the child: a shell running the suite in the background hands
    # it down ignored, and Python then keeps ignoring it (no KeyboardInterrupt)
    proc = subprocess.Popen([*CLI, "-q", "recognize", str(photos), "--gallery", str(g),
                             "--jsonl", str(out), "--device", "cpu", "--threads", "1"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)
    seen, deadline = 0, time.monotonic() + 240
    while seen < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        seen = out.read_text().count("\n") if out.exists() else 0
    assert proc.poll() is None and seen >= 2, "recognize finished or stalled before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), err.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert seen <= len(records) < 40
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert not list(tmp_path.glob(".o.jsonl.*"))  # no hidden leftovers


