"""The command line: every subcommand is listed and has its own help."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from celebface.cli.main import COMMANDS, build_parser, main
from celebface.cli.options import add_option, config_from, defaults


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", [c[0] for c in COMMANDS])
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"usage: celebface {name}" in capsys.readouterr().out


def test_import_is_light() -> None:
    """`import celebface` must not load torch, dlib or cv2 (models load when used)."""
    code = (
        "import sys, celebface; "
        "heavy = [m for m in ('torch', 'dlib', 'cv2', 'facenet_pytorch') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "celebface.cli.main", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "celebface" in out.stdout


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return dict(sub.choices)  # type: ignore[arg-type]


def _settings(*targets: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for target in targets:
        out.update(defaults(target))  # type: ignore[arg-type]
    return out


def test_flag_defaults_are_the_library_defaults() -> None:
    """Every option that sets a library setting (its dest is the setting's name) defaults to
    the library's default, so a default written twice cannot drift apart."""
    from celebface.audit import AuditConfig
    from celebface.clustering import ClusterConfig
    from celebface.cropping import CropConfig
    from celebface.evaluation import evaluate_model
    from celebface.gallery import EnrollConfig, FaceSetConfig, calibrate
    from celebface.packing import PackConfig
    from celebface.recognition import EmbedConfig
    from celebface.recognition.spec import EmbedderSpec
    from celebface.recognizer import Recognizer, RecognizerConfig, TrackerConfig
    from celebface.serve.config import ServeConfig
    from celebface.streaming.sources import StreamConfig
    from celebface.synth import SynthConfig

    targets = {
        "crop": (CropConfig,), "pack": (PackConfig,), "embed": (EmbedConfig,),
        "evaluate": (evaluate_model,), "synth": (SynthConfig,), "enroll": (EnrollConfig,),
        "calibrate": (FaceSetConfig, calibrate), "cluster": (ClusterConfig,),
        "recognize": (RecognizerConfig, TrackerConfig, StreamConfig, Recognizer),
        "audit": (AuditConfig,), "serve": (ServeConfig,), "verify": (EmbedderSpec,),
    }
    # where a command deliberately differs from the library (and says so in its help)
    own = {("crop", "preview"), ("synth", "workers")}
    checked = 0
    for name, p in _subparsers().items():
        settings = _settings(*targets.get(name, ()))
        for action in p._actions:
            if not action.option_strings or action.dest not in settings:
                continue
            if (name, action.dest) not in own:
                assert action.default == settings[action.dest], (name, action.option_strings)
                checked += 1
    assert checked >= 80


def test_shared_flags_agree_across_commands() -> None:
    """--embedder, --tta, --detector, --device and --match default alike everywhere (train's
    settings default to None: each model keeps its own; recognize's --detector is None: MTCNN
    for photos, the video detector for video frames, as its help says)."""
    from celebface.detection.registry import DEFAULT_DETECTOR, DEFAULT_VIDEO_DETECTOR
    from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA

    seen: dict[str, set[object]] = {}
    for name, p in _subparsers().items():
        for action in p._actions:
            if action.dest in ("embedder", "tta", "detector", "device", "match"):
                if name == "train" and action.dest != "device":
                    assert action.default is None
                    continue
                if name == "recognize" and action.dest == "detector":
                    assert action.default is None and action.help is not None
                    assert f"{DEFAULT_DETECTOR} for photos, {DEFAULT_VIDEO_DETECTOR} for video" \
                        in action.help
                    continue
                seen.setdefault(action.dest, set()).add(action.default)
    assert seen == {"embedder": {DEFAULT_EMBEDDER}, "tta": {DEFAULT_TTA},
                    "detector": {DEFAULT_DETECTOR},
                    "device": {"auto"}, "match": {"centroid"}}


def test_add_option_takes_type_default_and_switches_from_the_dataclass() -> None:
    @dataclasses.dataclass
    class Settings:
        batch_size: int = 8
        margin: float | None = None
        name: str = "x"
        align: bool = False
        track: bool = True
        other: int = 3

    p = argparse.ArgumentParser()
    add_option(p, Settings, "batch_size", help="batch (%(default)s)")
    add_option(p, Settings, "margin")
    add_option(p, Settings, "name", "--label")
    add_option(p, Settings, "align")
    add_option(p, Settings, "track", "--no-track")
    assert "--label LABEL" in p.format_help() and "batch (8)" in p.format_help()
    args = p.parse_args(["--batch-size", "4", "--margin", "0.5", "--align", "--no-track"])
    assert config_from(Settings, args, other=5) == Settings(4, 0.5, "x", True, False, 5)
    assert config_from(Settings, p.parse_args([])) == Settings()
    with pytest.raises(SystemExit):
        p.parse_args(["--batch-size", "x"])
    with pytest.raises(KeyError, match="nothing"):
        add_option(p, Settings, "nothing")


def test_add_option_reaches_into_a_settings_group() -> None:
    """A config's group (a trainer's ``loop``) gives flags under the settings' own names, with
    the config's defaults for them and their types; parsing fills the group."""
    from celebface.training.face_resnet.config import FaceResNetConfig

    p = argparse.ArgumentParser()
    for name in ("epochs", "lr_decay", "amp", "head"):
        add_option(p, FaceResNetConfig, name)
    assert defaults(FaceResNetConfig)["epochs"] == 30 and "loop" not in defaults(FaceResNetConfig)
    assert p.parse_args([]).epochs == 30 and p.parse_args([]).lr_decay == 0.9
    args = p.parse_args(["--epochs", "4", "--lr-decay", "0.5", "--amp", "--head", "arcface"])
    cfg = config_from(FaceResNetConfig, args, seed=3)
    assert (cfg.loop.epochs, cfg.loop.lr_decay, cfg.loop.amp, cfg.loop.seed, cfg.head) == (
        4, 0.5, False, 3, "arcface")
    assert cfg.loop.batch_size == 64  # the group's other settings keep the config's defaults
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "0"])  # the range check of the setting's name


def test_bad_input_is_one_line_and_a_bug_is_not_hidden(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input (a CelebfaceError, or a file error) is one line and exit 2; any other
    exception is a bug and surfaces with its traceback."""
    from PIL import Image

    person = tmp_path / "data" / "amy"
    person.mkdir(parents=True)
    Image.new("RGB", (32, 32), (120, 90, 60)).save(person / "a.jpg")
    (tmp_path / "empty").mkdir()
    damaged = tmp_path / "pack"  # a packed folder whose files are not what they should be
    damaged.mkdir()
    for name in ("all_images.npy", "all_labels.npy", "paths.json", "label_mapping.json",
                 "splits.csv", "pack.json"):
        (damaged / name).write_text("garbage")
    cases = [
        (["synth", str(tmp_path / "data"), str(tmp_path / "s"), "--backgrounds", "tiles"],
         "unknown background"),
        (["train", str(tmp_path / "empty"), "--out", str(tmp_path / "m")], "no "),
        (["calibrate", str(tmp_path / "no_gallery"), str(tmp_path / "data")], "no_gallery"),
        (["train", str(damaged), "--out", str(tmp_path / "m2")], "damaged packed folder"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        last = capsys.readouterr().err.strip().splitlines()[-1]  # after any log lines
        assert words in last and last.startswith(f"celebface {argv[0]}: error: "), last

    import celebface.cli.pack as pack

    def bug(args: argparse.Namespace) -> int:
        raise ValueError("a bug")

    monkeypatch.setattr(pack, "run", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["pack", str(tmp_path / "data"), str(tmp_path / "p")])
