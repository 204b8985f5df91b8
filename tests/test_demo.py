"""`make demo`'s script end to end on five_celeb (the README's main command must keep working)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_runs_every_stage(five_celeb: Path, pins: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "DATA": str(five_celeb), "OUT": str(out), "STRANGERS": str(pins),
           "BIN": str(Path(sys.executable).parent), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Demo done." in run.stdout
    for made in ("crops/preview.png", "report/confusion_matrix.png", "gallery/gallery.json",
                 "recognized/faces.jsonl"):
        assert (out / made).is_file(), made
    faces = [json.loads(line) for line in (out / "recognized/faces.jsonl").read_text()
             .splitlines()]
    named = [f["identity"] for rec in faces for f in rec["faces"]]
    assert named and sum(n != "unknown" for n in named) >= len(named) - 1  # held-out photos
    assert json.loads((out / "gallery/gallery.json").read_text())["thresholds"]  # calibrated
