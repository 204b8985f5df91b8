"""Helpers of the fault-injection tests (test_faults*.py): tiny datasets, stand-ins."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.recognition.base import l2_normalize
from fakes import ColourEmbedder  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "celebface.cli.main"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write_people(root: Path, people: Sequence[str], n: int = 2, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(people):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = np.array([(70 * k) % 255, 120, 200 - 40 * i])
            arr = np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


def write_embedded(root: Path, people: Sequence[str], dim: int = 16, n: int = 3) -> Path:
    """A ``celebface embed`` output folder with synthetic vectors."""
    rng = np.random.default_rng(len(people) + sum(map(len, people)))
    root.mkdir(parents=True)
    emb = l2_normalize(rng.normal(size=(n * len(people), dim)))
    np.save(root / "face_embeddings.npy", emb)
    np.save(root / "labels.npy", np.repeat(np.arange(len(people)), n).astype(np.int64))
    paths = [f"/nowhere/{p}/{i}.jpg" for p in people for i in range(n)]
    (root / "paths.json").write_text(json.dumps(paths))
    (root / "label_mapping.json").write_text(json.dumps(dict(enumerate(people))))
    meta = {"model": "dlib", "dim": dim, "alignment": "dlib-5-point", "tta": "none",
            "settings": {"model": "dlib", "dim": dim, "padding": 0.25}}
    (root / "embedding.json").write_text(json.dumps(meta))
    return root


#: ``RACER READY GO ARGS...``: imports, creates READY, runs ``celebface ARGS...`` once GO

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


ODD_NAMES = ["new\nline.png", "car\rriage.png", 'quo"te\t.png',
             os.fsdecode(b"latin\xe9.png")]  # the last is not UTF-8


def write_odd_people(root: Path) -> Path:
    write_people(root, ["amy", os.fsdecode(b"b\xf6b")], n=1)
    for k, name in enumerate(ODD_NAMES):
        arr = np.full((24, 24, 3), 40 * k + 20, np.uint8)
        Image.fromarray(arr).save(root / "amy" / name, format="PNG")
    return root

