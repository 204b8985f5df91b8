"""The command line: every subcommand is listed and has its own help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from celebface.cli.main import COMMANDS, main


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
