"""Fault injection (issue #15), part 3: odd file names, out-of-range flags, thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from celebface.cli.main import main
from faultkit import (
    ODD_NAMES,
    ColourEmbedder,
    write_odd_people,
)

# ------------------------------------------------------------------ 7. names

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
    from celebface.data import open_dataset
    from celebface.packing import pack_dataset
    from celebface.recognition import embed_dataset, load_embeddings

    src = write_odd_people(tmp_path / "src")
    packed = tmp_path / "packed"
    pack_dataset(src, packed, progress=False)
    p = open_dataset(packed)
    assert len(p.items) == len(p.labels) == 6
    assert {Path(it.path).name for it in p.items} >= set(ODD_NAMES)
    assert os.fsdecode(b"b\xf6b") in p.names
    emb = embed_dataset(src, tmp_path / "emb", embedder=ColourEmbedder(), progress=False)
    loaded = load_embeddings(tmp_path / "emb")
    assert loaded.paths == emb.paths and len(loaded.paths) == len(loaded.labels) == 6
    assert os.fsencode(Path(loaded.paths[-1]).parent.name) == b"b\xf6b"


def test_enroll_refuses_and_synth_accepts_non_utf8_names(tmp_path: Path) -> None:
    """A person folder whose name is not UTF-8 cannot name a person (celebface.types.
    person_name, issue 31): it is refused, the rest enrols; synth takes any folder."""
    from celebface.gallery import EnrollConfig, Gallery, enroll
    from celebface.synth import SynthConfig, synthesize

    src = write_odd_people(tmp_path / "src")
    cfg = EnrollConfig(embedder="colour", detector="none")
    s = enroll(src, tmp_path / "g", config=cfg, models=(ColourEmbedder(), None),
               progress=False)
    g = Gallery.load(tmp_path / "g")
    assert g.names == ["amy"] and len(g) == 5 and s.skipped == [f"{src}/b\\xf6b/0.png"]
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
    from celebface.data.crops import NO_FACES, read_lines

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
    # crop shares threads among detection workers, serve among its inference workers
    for name in torch_commands - {"crop", "serve"}:
        assert sub.choices[name].get_default("_torch_threads"), name  # type: ignore[union-attr]
    assert {c[0] for c in COMMANDS} >= torch_commands


