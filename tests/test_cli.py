"""The command line: every subcommand is listed and has its own help."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

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
    from celebface.recognizer import Recognizer, RecognizerConfig
    from celebface.serve.config import ServeConfig
    from celebface.streaming.sources import StreamConfig
    from celebface.streaming.tracker import TrackerConfig
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
    settings default to None: each model keeps its own)."""
    from celebface.recognition.spec import DEFAULT_TTA

    seen: dict[str, set[object]] = {}
    for name, p in _subparsers().items():
        for action in p._actions:
            if action.dest in ("embedder", "tta", "detector", "device", "match"):
                if name == "train" and action.dest != "device":
                    assert action.default is None
                    continue
                seen.setdefault(action.dest, set()).add(action.default)
    assert seen == {"embedder": {"dlib"}, "tta": {DEFAULT_TTA}, "detector": {"mtcnn"},
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
