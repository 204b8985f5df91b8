"""Reliability round three (issue 31, defects 8-10 and the "Poor" list): each case replayed,
each a one-line refusal or a correct result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from celebface.cli.main import main
from celebface.validate import ConfigError


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


# ------------------------------------------------------------------ serve settings
def test_recognize_keys_with_spaces_are_stripped() -> None:
    """CELEBFACE_RECOGNIZE_KEYS='k1, k2' stored " k2", which no HTTP client can send."""
    from celebface.serve import ServeConfig

    keys = ServeConfig(recognize_keys=("k1", " k2 ", "", "")).keys()  # "k1, k2 ,,".split(",")
    assert keys == {"k1": "recognize", "k2": "recognize"}


@pytest.mark.timeout(60)  # before the fix the server started and served
def test_queue_is_range_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--queue 99999999999999999999 turned backpressure off."""
    from celebface.serve import ServeConfig

    with pytest.raises(ConfigError, match="queue"):
        ServeConfig(queue=99999999999999999999)
    code, err = cli(capsys, "serve", str(tmp_path / "g"), "--queue", "99999999999999999999")
    assert code == 2 and "--queue" in err


def test_world_writable_keys_file_is_refused(tmp_path: Path) -> None:
    from celebface.serve import ServeConfig
    from celebface.serve.config import KeyFileError

    keys = tmp_path / "keys"
    keys.write_text("s3cret admin\n")
    keys.chmod(0o600)
    assert ServeConfig(keys_file=keys).keys() == {"s3cret": "admin"}
    keys.chmod(0o666)
    with pytest.raises(KeyFileError, match=f"{keys}: .*writable by every user"):
        ServeConfig(keys_file=keys).keys()


@pytest.mark.timeout(60)
def test_world_writable_keys_file_stops_serve(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    keys.write_text("s3cret admin\n")
    os.chmod(keys, 0o646)
    code, err = cli(capsys, "serve", str(tmp_path / "g"), "--keys-file", str(keys))
    assert code == 2 and "writable by every user" in err, err
