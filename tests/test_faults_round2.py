"""Fault injection, round two (issue #23; errors: issue #22 item 5): every case replayed, each a
one-line refusal (exit 2, no traceback) or a correct result, with nothing lost.
Table of before/after: benchmarks/results/faults_round2.md."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import celebface
from celebface.cli.main import main
from faultkit import CLI, ENV, ColourEmbedder, write_embedded, write_people


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``celebface ARGV`` in this process: exit code and the last line on stderr (no
    traceback allowed)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse refuses a flag
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    return code, lines[-1] if lines else ""


def photo(path: Path, colour: tuple[int, int, int] = (120, 90, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 48, 3), colour, np.uint8)).save(path)
    return path


@pytest.fixture
def tiny_gallery(tmp_path: Path) -> Path:
    from celebface.gallery import enroll

    g = tmp_path / "g"
    enroll(write_embedded(tmp_path / "emb", ["amy", "bob"]), g)
    return g


@pytest.fixture(scope="module")
def pins_people(pins: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A real gallery of two pins people (3 crops each; one has a non-ASCII name, "b\\u00f6b";
    a name that is not UTF-8 is refused since issue 31), and a held-out photo of that person;
    enrolment with --detector none."""
    from celebface.data import list_dataset

    root = tmp_path_factory.mktemp("pins_people")
    items = list_dataset(pins)
    people = sorted({it.identity for it in items})[:2]
    names = ["b\u00f6b", "amy"]
    probe = root / "probe.jpg"
    for person, name in zip(people, names, strict=True):
        mine = [it for it in items if it.identity == person]
        (root / "train" / name).mkdir(parents=True)
        for it in mine[:3]:
            (root / "train" / name / Path(it.path).name).symlink_to(it.path)
        if name != "amy":
            shutil.copy(mine[3].path, probe)
    g = root / "g"
    assert main(["-q", "enroll", str(root / "train"), "--out", str(g), "--detector", "none",
                 "--device", "cpu", "--threads", "1"]) == 0
    return g, probe, root


# ------------------------------------------------------------------ 1. --out and symlinks
def test_1_out_refuses_a_link_to_its_input(tmp_path: Path, tiny_gallery: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = photo(tmp_path / "in" / "p.jpg")
    before = src.read_bytes()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.jpg").symlink_to(src)
    code, err = cli(capsys, "recognize", str(tmp_path / "out" / "p.jpg"), "--gallery",
                    str(tiny_gallery), "--out", str(tmp_path / "out"))
    assert code == 2 and "holds the input file" in err
    assert src.read_bytes() == before


def test_1_writers_replace_a_symlink_never_its_target(tmp_path: Path) -> None:
    from celebface.streaming.output import write_image

    src = photo(tmp_path / "in" / "p.jpg")
    before = src.read_bytes()
    link = tmp_path / "out" / "p.jpg"
    link.parent.mkdir()
    link.symlink_to(src)
    write_image(link, np.zeros((8, 8, 3), np.uint8))
    assert src.read_bytes() == before
    assert not link.is_symlink() and link.read_bytes() != before


# ------------------------------------------------------------------ 2. --jsonl over inputs
@pytest.mark.parametrize("where", ["input photo", "gallery manifest", "photo in input folder",
                                   "link to input"])
def test_2_jsonl_never_overwrites_inputs_or_galleries(
        tmp_path: Path, tiny_gallery: Path, capsys: pytest.CaptureFixture[str],
        where: str) -> None:
    from celebface.gallery import Gallery

    src = photo(tmp_path / "photos" / "p.jpg")
    inp, target = str(src), src
    if where == "gallery manifest":
        target = tiny_gallery / "gallery.json"
    elif where == "photo in input folder":
        inp = str(src.parent)
    elif where == "link to input":
        target = tmp_path / "r.jsonl"
        target.symlink_to(src)
    before, photo_bytes = target.read_bytes(), src.read_bytes()
    code, err = cli(capsys, "recognize", inp, "--gallery", str(tiny_gallery), "--jsonl",
                    str(target))
    assert code == 2 and "--jsonl" in err
    assert target.read_bytes() == before and src.read_bytes() == photo_bytes
    assert len(Gallery.load(tiny_gallery)) == 6


def test_1_2_annotations_stay_out_of_a_gallery(tmp_path: Path, tiny_gallery: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in tiny_gallery.rglob("*"))
    code, err = cli(capsys, "recognize", str(photo(tmp_path / "p.jpg")), "--gallery",
                    str(tiny_gallery), "--out", str(tiny_gallery / "annotated"))
    assert code == 2 and "is in the gallery folder" in err
    assert sorted(p.name for p in tiny_gallery.rglob("*")) == before


@pytest.mark.parametrize("command", ["cluster", "audit"])
def test_1_2_output_folders_stay_outside_their_input(tmp_path: Path, command: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = write_people(tmp_path / "data", ["amy", "bob"])
    before = sorted(p.name for p in data.rglob("*"))
    code, err = cli(capsys, command, str(data), "--out", str(data / "amy" / "out"))
    assert code == 2 and "inside the input folder" in err
    assert sorted(p.name for p in data.rglob("*")) == before


# ------------------------------------------------------------------ 5. planted checkpoint
def test_5_resume_never_unpickles_code(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    emb = write_embedded(tmp_path / "emb", ["a", "b", "c"], n=6)
    out = tmp_path / "m"
    args = ["train", str(emb), "--model", "mlp", "--out", str(out), "--device", "cpu",
            "--threads", "1"]
    assert cli(capsys, *args, "--epochs", "2")[0] == 0
    assert cli(capsys, *args, "--epochs", "3")[0] == 0  # a genuine resume still works
    history = json.loads((out / "checkpoints" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    flag = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {flag}",))

    ckpt = out / "checkpoints" / "checkpoint.pt"
    torch.save({"model": Payload()}, ckpt)  # what torch.load(weights_only=False) would run
    code, err = cli(capsys, *args, "--epochs", "5")
    assert code == 2 and "checksum" in err and not flag.exists()
    (out / "checkpoints" / "checksums.json").unlink()  # a folder from before checksums
    code, err = cli(capsys, *args, "--epochs", "5")
    assert code == 2 and "could run code" in err and not flag.exists()


# ------------------------------------------------------------------ 7. non-UTF-8 name drawn
def test_7_non_ascii_name_is_drawn_and_jsonl_kept(pins_people: tuple[Path, Path, Path],
                                                 tmp_path: Path) -> None:
    g, probe, _ = pins_people
    out, jsonl = tmp_path / "out", tmp_path / "r.jsonl"
    # a subprocess: the bug was a segfault (exit 139) inside cv2.getTextSize
    proc = subprocess.run([*CLI, "-q", "recognize", str(probe), "--gallery", str(g), "--out",
                           str(out), "--jsonl", str(jsonl), "--device", "cpu", "--threads",
                           "1"], env=ENV, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    rec = json.loads(jsonl.read_text())
    assert rec["faces"][0]["identity"] == "b\u00f6b"
    assert (out / "probe.jpg").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ 9. ranges
@pytest.mark.parametrize("argv", [
    ["verify", "a.jpg", "b.jpg", "--threshold", "-3"],
    ["verify", "a.jpg", "b.jpg", "--threshold", "3"],
    ["cluster", "photos", "--out", "o", "--threshold", "5"],
    ["embed", "data", "--out", "o", "--threads", "100000"],
    ["recognize", "a.jpg", "--gallery", "g", "--threads", "100000"],
    ["crop", "src", "dst", "--size", "100000"],
    ["crop", "src", "dst", "--threads", "100000"],
    ["train", "emb", "--out", "m", "--seed", "-1"],
    ["audit", "data", "--near-duplicate", "2"],
    ["cluster", "photos", "--out", "o", "--min-size", "0"],
])
def test_9_out_of_range_flags_are_refused(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, *argv)
    assert code == 2 and "out of range" in err


#: flags whose range the service branch declares (issue #23 item 9, serve)
SERVICE_OWNED = {("serve", "--port"), ("serve", "--max-body-mb"), ("serve", "--max-side")}


def test_9_every_number_flag_has_a_range() -> None:
    from celebface.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [(name, a.option_strings[0]) for name, p in sub.choices.items() for a in p._actions
            if a.option_strings and a.type in (int, float)]
    assert sorted(set(bare) - SERVICE_OWNED) == []


# ------------------------------------------------------------------ 10. URL to a still image
@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    photo(tmp_path / "www" / "face.jpg")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(tmp_path / "www"), **k)

        def log_message(self, *a) -> None:  # type: ignore[no-untyped-def]
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/face.jpg", hits
    server.shutdown()


def test_10_url_of_a_still_image_is_one_image(image_server: tuple[str, list[str]]) -> None:
    from celebface.streaming import classify, iter_frames
    from celebface.streaming.sources import StreamConfig

    url, hits = image_server
    source = classify(url)
    assert source.kind == "image"
    frames = list(iter_frames(source, StreamConfig(open_timeout_s=5, read_timeout_s=5)))
    assert len(frames) == 1 and frames[0].rgb.shape == (48, 48, 3)
    assert len(hits) == 2  # asked once for its type, once for the picture; no reconnects


# ------------------------------------------------------------------ 11. corrupt embeddings
@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    from celebface.recognition import embed_dataset

    data = write_people(tmp_path / "data", ["amy", "bob", "cat"], n=3)
    embed_dataset(data, tmp_path / "emb", embedder=ColourEmbedder(), progress=False)
    return tmp_path / "emb"


def _flip(path: Path, at: int = -8) -> None:
    data = bytearray(path.read_bytes())
    data[at:] = b"\xff" * len(data[at:])  # NaN bit patterns in the last vector
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["enroll", "train"])
def test_11_flipped_bytes_are_refused(embedded: Path, tmp_path: Path, command: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _flip(embedded / "face_embeddings.npy")
    out = tmp_path / "out"
    code, err = cli(capsys, command, str(embedded), "--out", str(out), "--threads", "1")
    assert code == 2 and "sha256" in err and "face_embeddings.npy" in err
    assert not (out / "gallery.json").exists() and not (out / "model.json").exists()


def test_11_old_folders_get_value_checks(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    old = write_embedded(tmp_path / "old", ["amy", "bob"])  # no checksums recorded
    assert cli(capsys, "enroll", str(old), "--out", str(tmp_path / "ok"))[0] == 0
    _flip(old / "face_embeddings.npy")
    code, err = cli(capsys, "enroll", str(old), "--out", str(tmp_path / "g1"))
    assert code == 2 and "NaN" in err
    old2 = write_embedded(tmp_path / "old2", ["amy", "bob"])
    np.save(old2 / "labels.npy", np.array([0, 0, 0, 1, 1, 7]))
    code, err = cli(capsys, "train", str(old2), "--out", str(tmp_path / "m"))
    assert code == 2 and "out of range" in err and "labels.npy" in err


# ------------------------------------------------------------------ 12. calibrate copies
def test_12_calibrate_counts_each_photo_once(tmp_path: Path) -> None:
    from celebface.gallery import calibrate, enroll

    enroll(_embed(write_people(tmp_path / "known", ["amy", "bob"], n=3), tmp_path / "e1"),
           tmp_path / "g")
    probes = write_people(tmp_path / "probes", ["amy", "zed"], n=3, size=28)  # other bytes
    shutil.copytree(probes / "zed", probes / "zed copy")  # the same 3 photos, another name
    cal = calibrate(tmp_path / "g", _embed(probes, tmp_path / "e2"), far=0.1, save=False)
    assert cal.strangers == 3 and cal.genuine == 3


def _embed(data: Path, out: Path) -> Path:
    from celebface.recognition import embed_dataset

    embed_dataset(data, out, embedder=ColourEmbedder(), progress=False)
    return out


# ------------------------------------------------------------------ 13. the smaller ones
def test_13_kill_9_keeps_every_jsonl_line(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    code = ("import os, signal, sys\n"
            "from celebface.streaming.output import JsonlWriter\n"
            "w = JsonlWriter(sys.argv[1])\n"
            "w.write({'frame': 0}); w.write({'frame': 1})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], env=ENV, timeout=60)
    assert proc.returncode == -9
    assert [json.loads(x)["frame"] for x in out.read_text().splitlines()] == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]  # no hidden temporary


def test_13_jsonl_to_dev_stdout_of_a_pipe() -> None:
    code = ("from celebface.streaming.output import JsonlWriter\n"
            "with JsonlWriter('/dev/stdout') as w:\n"
            "    w.write({'frame': 0})\n")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == {"frame": 0}  # a pipe: written in place, not renamed


def test_13_names_have_one_spelling_and_replaced_bytes_are_refused() -> None:
    from celebface.gallery import Gallery
    from celebface.types import InvalidNameError

    g = Gallery()
    vec = np.eye(2, 4, dtype=np.float32)
    g.add(vec, ["Ren\u00e9e", unicodedata.normalize("NFD", "Ren\u00e9e")], ["a.jpg", "b.jpg"])
    assert g.names == ["Ren\u00e9e"]
    with pytest.raises(InvalidNameError, match="U\\+FFFD"):
        g.add(vec[:1], ["\ufffd\ufffd"], ["c.jpg"])


def test_13_swapped_embedder_is_one_line(tmp_path: Path, pins_people: tuple[Path, Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from celebface.gallery import enroll

    g = tmp_path / "g"
    enroll(write_embedded(tmp_path / "emb", ["amy", "bob"], dim=16), g)  # dlib named, 16-d
    code, err = cli(capsys, "recognize", str(pins_people[1]), "--gallery", str(g), "--device",
                    "cpu", "--threads", "1")
    assert code == 2 and "128-d" in err and "16-d" in err


def test_13_cluster_groups_faces_only(pins: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    Image.new("RGB", (1, 1), (200, 0, 0)).save(photos.mkdir() or photos / "dot.png")
    Image.new("RGB", (160, 160), (230, 0, 0)).save(photos / "red.png")
    Image.new("RGB", (160, 160), (0, 0, 230)).save(photos / "blue.png")
    code, err = cli(capsys, "cluster", str(photos), "--out", str(tmp_path / "o"), "--device",
                    "cpu", "--threads", "1")
    assert code == 2 and "no faces found" in err
    assert not (tmp_path / "o" / "people").exists()


def test_13_unsupported_images_are_reported(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from celebface.data import list_dataset
    from celebface.streaming.sources import folder_files

    root = write_people(tmp_path / "data", ["amy"], n=1)
    (root / "amy" / "photo.jxl").write_bytes(b"\xff\x0a")
    (root / "amy" / "phone.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    with caplog.at_level("WARNING"):
        assert len(list_dataset(root)) == 1
        assert len(folder_files(root)) == 1
    warned = [r.getMessage() for r in caplog.records if "not a supported image type" in
              r.getMessage()]
    assert len(warned) == 2 and all(".heic 1, .jxl 1" in w for w in warned)


def test_13_facade_reads_16_bit_arrays_and_one_path(pins: Path) -> None:
    from celebface.data import list_dataset
    from celebface.io import read_image

    path = list_dataset(pins)[0].path
    rgb8 = read_image(path).rgb
    rgb16 = rgb8.astype(np.uint16) * 257
    assert len(celebface.detect(rgb16, device="cpu")) == len(celebface.detect(rgb8,
                                                                              device="cpu")) > 0
    one = celebface.embed(str(path), device="cpu")
    assert one.shape == (1, 256)  # dlib+sface, the default
    np.testing.assert_allclose(one, celebface.embed([path], device="cpu"), atol=1e-5)


# ------------------------------------------------------------------ errors (issue 22, item 5)
def test_celebface_error_is_at_the_package_root() -> None:
    from celebface.errors import CelebfaceError

    assert celebface.CelebfaceError is CelebfaceError


def _damaged_gallery(tmp: Path) -> Path:
    g = tmp / "dg"
    g.mkdir()
    (g / "gallery.json").write_text("{not json")
    return g


def _damaged_embeddings(tmp: Path) -> Path:
    e = write_embedded(tmp / "de", ["amy", "bob"])
    (e / "face_embeddings.npy").write_bytes(b"\x93NUMPY garbage")
    return e


def _text_file(tmp: Path) -> Path:
    p = tmp / "not_an_image.jpg"
    p.write_text("hello")
    return p


CALLS = {
    "detect missing": lambda t: celebface.detect(t / "missing.jpg"),
    "detect non-image": lambda t: celebface.detect(_text_file(t)),
    "embed missing": lambda t: celebface.embed([t / "missing.jpg"]),
    "embed non-image": lambda t: celebface.embed(str(_text_file(t))),
    "enroll missing": lambda t: celebface.enroll(t / "missing", t / "g"),
    "recognize missing gallery": lambda t: celebface.recognize(_text_file(t), t / "nog"),
    "recognize damaged gallery": lambda t: celebface.recognize(_text_file(t),
                                                               _damaged_gallery(t)),
    "verify missing": lambda t: celebface.verify(t / "a.jpg", t / "b.jpg"),
    "Gallery.load damaged": lambda t: celebface.Gallery.load(_damaged_gallery(t)),
    "load_model missing": lambda t: celebface.load_model(t / "nomodel"),
    "load_model non-model": lambda t: celebface.load_model(_damaged_gallery(t)),
    "embed_dataset missing": lambda t: celebface.embed_dataset(t / "missing", t / "o"),
    "pack_dataset missing": lambda t: celebface.pack_dataset(t / "missing", t / "o"),
    "crop_dataset missing": lambda t: celebface.crop_dataset(t / "missing", t / "o"),
    "EmbedderSpec.build unknown": lambda t: celebface.EmbedderSpec("nope").build(),
    "EmbedderSpec.build bad option": lambda t: celebface.EmbedderSpec(
        "dlib", options={"bogus": 1}).build(),
    "get_detector bad option": lambda t: celebface.get_detector("mtcnn", bogus=1),
    "load_embeddings damaged": lambda t: _load_embeddings(_damaged_embeddings(t)),
    "audit missing": lambda t: _audit(t / "missing", t / "o"),
    "train on a file": lambda t: celebface.train_model(_text_file(t), "logreg", t / "m"),
    "train unknown option": lambda t: celebface.train_model(
        write_embedded(t / "e", ["a", "b"]), "logreg", t / "m", bogus=1),
    "dlib model unknown": lambda t: _dlib_model("nope"),
}


def _load_embeddings(path: Path):  # type: ignore[no-untyped-def]
    from celebface.recognition import load_embeddings

    return load_embeddings(path)


def _audit(data: Path, out: Path):  # type: ignore[no-untyped-def]
    from celebface.audit import audit

    return audit(data, out)


def _dlib_model(key: str):  # type: ignore[no-untyped-def]
    from celebface.models.store import dlib_model_path

    return dlib_model_path(key)


@pytest.mark.parametrize("case", sorted(CALLS))
def test_bad_input_raises_a_celebface_error(case: str, tmp_path: Path) -> None:
    from celebface.errors import CelebfaceError

    with pytest.raises(CelebfaceError) as info:
        CALLS[case](tmp_path)
    assert "\n" not in str(info.value).strip()
