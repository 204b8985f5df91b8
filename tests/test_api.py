"""The short facade: detect, embed, enroll, recognize, verify (paths, PIL images, arrays)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import celebface


def test_facade_is_lazy_and_complete() -> None:
    for name in ("detect", "embed", "enroll", "recognize", "verify", "Recognizer"):
        assert callable(getattr(celebface, name))
    arr = celebface.api.load_rgb(np.zeros((4, 5), np.uint8))
    assert arr.shape == (4, 5, 3) and arr.dtype == np.uint8
    with pytest.raises(celebface.errors.CelebfaceError):
        celebface.api.load_rgb(np.zeros((4, 5, 7), np.uint8))


@pytest.mark.integration
@pytest.mark.slow
def test_facade_end_to_end(five_celeb: Path, tmp_path: Path) -> None:
    people = tmp_path / "people"
    for person in ("madonna", "jerry_seinfeld"):
        (people / person).mkdir(parents=True)
        for f in sorted((five_celeb / person).glob("*.jpg"))[:4]:
            shutil.copy(f, people / person / f.name)
    probe = sorted((five_celeb / "madonna").glob("*.jpg"))[-1]

    faces = celebface.detect(probe, device="cpu")
    assert faces and faces[0].landmarks is not None and faces[0].landmarks.shape == (5, 2)
    vecs = celebface.embed([probe, Image.open(probe)], device="cpu")  # a path and a PIL image
    assert vecs.shape == (2, 256) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert float(vecs[0] @ vecs[1]) > 0.999

    gallery = tmp_path / "gallery"
    summary = celebface.enroll(people, gallery, progress=False, device="cpu")
    assert summary.identities == 2
    named = celebface.recognize(probe, gallery, device="cpu")
    assert max(named, key=lambda f: f.area).identity == "madonna"

    # an edited gallery is read again (the facade caches one recogniser per gallery version)
    (people / "elton_john").mkdir()
    for f in sorted((five_celeb / "elton_john").glob("*.jpg"))[:4]:
        shutil.copy(f, people / "elton_john" / f.name)
    celebface.enroll(people, gallery, add=True, progress=False, device="cpu")
    elton = sorted((five_celeb / "elton_john").glob("*.jpg"))[-1]
    face = max(celebface.recognize(elton, gallery, device="cpu"), key=lambda f: f.area)
    # 4 enrolment photos may leave him under the uncalibrated threshold, but a stale
    # recogniser would not know his name at all
    assert "elton_john" in (face.identity, face.runner_up)

    v = celebface.verify(probe, sorted((five_celeb / "madonna").glob("*.jpg"))[-2])
    assert v.same and v.score >= v.threshold
