"""`make demo`'s script end to end on five_celeb (the README's main command must keep working)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_runs_every_stage(five_celeb: Path, tmp_path: Path) -> None:
    """The demo's default data is in the repository; with ../shared/data's pins105-dev the
    gallery is calibrated on its strangers, without it calibration is skipped."""
    out = tmp_path / "demo"
    strangers = SHARED_DATA / "pins105-dev"
    env = {**os.environ, "OUT": str(out), "STRANGERS": str(strangers),
           "BIN": str(Path(sys.executable).parent), "OMP_NUM_THREADS": "1"}
    env.pop("DATA", None)  # the default: examples/five_celeb
    run = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Demo done." in run.stdout and str(five_celeb) in run.stdout
    for made in ("crops/preview.png", "report/confusion_matrix.png", "gallery/gallery.json",
                 "recognized/faces.jsonl"):
        assert (out / made).is_file(), made
    faces = [json.loads(line) for line in (out / "recognized/faces.jsonl").read_text()
             .splitlines()]
    named = [f["identity"] for rec in faces for f in rec["faces"]]
    assert named and sum(n != "unknown" for n in named) >= len(named) - 1  # held-out photos
    calibrated = json.loads((out / "gallery/gallery.json").read_text()).get("thresholds")
    if strangers.is_dir():
        assert calibrated
    else:
        assert not calibrated and "calibrate: skipped" in run.stdout
