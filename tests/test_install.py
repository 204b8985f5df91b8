"""`pip install .` (not editable) gives a working `celebface` command with its package data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_pip_install_gives_a_working_command_with_its_data(tmp_path: Path) -> None:
    tree, target = tmp_path / "tree", tmp_path / "site"
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):  # the build writes build/ into the tree
        shutil.copy(ROOT / name, tree / name)
    # as a user runs it (the build backend from the package index, as `make setup`'s -e does)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(tree)],
                   check=True, cwd=tmp_path, timeout=600)
    src = ROOT / "src"
    data = {p.relative_to(src) for p in (src / "celebface").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert {Path("celebface/gallery/migrations/001_gallery.sql"),
            Path("celebface/serve/static/index.html")} <= data
    missing = [str(p) for p in sorted(data) if not (target / p).is_file()]
    assert not missing, f"package data left out of the install: {missing}"
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import celebface; print(celebface.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target))
    run = subprocess.run([sys.executable, str(target / "bin" / "celebface"), "--help"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "verify" in run.stdout and "serve" in run.stdout
