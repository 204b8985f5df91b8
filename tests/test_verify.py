"""`celebface verify` and celebface.verification: fake models for logic, real ones on photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.gallery.policy import NoThresholdError, measured_pair_threshold, pair_threshold
from celebface.types import Verification
from celebface.verification import ImageInputError, NoFaceError, as_rgb, verify
from fakes import BoxDetector, MeanColourEmbedder


def _colour() -> MeanColourEmbedder:
    """The mean colour of the face region (or whole image) + 1, as a unit vector."""
    return MeanColourEmbedder("colour", offset=1.0)


def two_faces(width: int, left: tuple, right: tuple) -> np.ndarray:
    img = np.zeros((40, width, 3), np.uint8)
    img[5:35, 5:35] = left  # 30 x 30
    img[10:30, 50:70] = right  # 20 x 20
    return img


def test_largest_face_and_all_pairs() -> None:
    a = two_faces(80, (200, 10, 10), (10, 200, 10))  # red big, green small
    b = two_faces(81, (10, 200, 10), (200, 10, 10))  # green big, red small
    det = BoxDetector({80: [(50, 10, 70, 30), (5, 5, 35, 35)],
                       81: [(5, 5, 35, 35), (50, 10, 70, 30)]})
    one = verify(a, b, detector=det, embedder=_colour(), threshold=0.99)
    assert isinstance(one, Verification)
    assert one.face_a.box == (5, 5, 35, 35) and not one.same  # largest: red vs green
    many = verify(a, b, detector=det, embedder=_colour(), threshold=0.99,
                  all_faces=True)
    assert isinstance(many, list) and len(many) == 4
    assert sum(r.same for r in many) == 2  # red-red and green-green
    assert all(r.threshold == 0.99 for r in many)


def test_no_face_is_an_error_unless_the_photos_are_crops() -> None:
    img = np.full((30, 30, 3), 120, np.uint8)
    with pytest.raises(NoFaceError, match="image A: no face found") as err:
        verify(img, img, detector=BoxDetector({}), embedder=_colour(), threshold=0.5)
    assert err.value.index == 0
    face = np.zeros((30, 40, 3), np.uint8)  # a face in A only: B is named
    with pytest.raises(NoFaceError, match="image B") as err:
        verify(face, img, detector=BoxDetector({40: [(5, 5, 25, 25)]}), embedder=_colour(),
               threshold=0.5, all_faces=True)
    assert err.value.index == 1
    r = verify(Image.fromarray(img), img, detector=BoxDetector({}),
               embedder=_colour(), threshold=0.5, crop=True)
    assert r.whole_a and r.whole_b and r.same and r.score == pytest.approx(1.0)
    assert r.face_a.box == (0.0, 0.0, 29.0, 29.0)  # the one whole-image convention
    assert r.to_dict()["face_a"]["whole_image"] is True


def test_as_rgb_inputs_and_errors(tmp_path: Path) -> None:
    grey = np.zeros((5, 6), np.uint8)
    assert as_rgb(grey).shape == (5, 6, 3)
    assert as_rgb(np.ones((4, 4, 3), np.float32)).max() == 255
    assert as_rgb(Image.new("RGBA", (7, 3))).shape == (3, 7, 3)
    with pytest.raises(ImageInputError):
        as_rgb(np.zeros((4, 4, 4)))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(Exception, match=r"bad\.jpg"):
        as_rgb(bad)


def test_thresholds_are_measured_and_looked_up() -> None:
    assert 0.5 < measured_pair_threshold("dlib", "none") < 1.0
    assert pair_threshold(embedder=MeanColourEmbedder("dlib")) == measured_pair_threshold(
        "dlib", "none")
    assert pair_threshold(embedder=_colour(), override=0.7) == 0.7  # given: nothing looked up
    with pytest.raises(NoThresholdError, match="colour"):
        pair_threshold(embedder=_colour())


def test_gallery_threshold_prefers_calibrated_knn() -> None:
    from celebface.gallery import Gallery

    g = Gallery(embedder={"name": "dlib", "options": {"tta": "flip"}})
    assert pair_threshold(gallery=g) == measured_pair_threshold("dlib", "flip")
    g.thresholds = {"centroid": 0.9, "knn": 0.95}
    assert pair_threshold(gallery=g) == 0.95
    g.thresholds = {"centroid": 0.9}
    assert pair_threshold(gallery=g) == 0.9
    # a threshold on a gap-weighted decision score is not a pair cosine
    g.calibration = {"centroid": {"gap_weight": 0.33}}
    assert pair_threshold(gallery=g) == measured_pair_threshold("dlib", "flip")


def test_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    import celebface.verification.compare as v
    from celebface.detection.finder import FaceFinder
    from celebface.recognition import EmbedderSpec

    monkeypatch.setattr(EmbedderSpec, "build", lambda *a, **k: _colour())
    monkeypatch.setattr(v, "get_finder", lambda *a, **k: FaceFinder(detector=BoxDetector({})))
    red, red2, blue = tmp_path / "r.png", tmp_path / "r2.png", tmp_path / "b.png"
    Image.new("RGB", (20, 20), (200, 0, 0)).save(red)
    Image.new("RGB", (24, 20), (210, 5, 0)).save(red2)
    Image.new("RGB", (20, 20), (0, 0, 200)).save(blue)
    assert main(["verify", str(red), str(red2), "--threshold", "0.99"]) == 2
    assert "r.png: no face found" in capsys.readouterr().err
    assert main(["verify", str(red), str(red2), "--threshold", "0.99", "--crop"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("same") and "whole image (no face found)" in out
    assert main(["verify", str(red), str(blue), "--threshold", "0.99", "--crop"]) == 1
    assert capsys.readouterr().out.startswith("different")
    assert main(["verify", str(red), str(tmp_path / "missing.png"), "--threshold", "0.9"]) == 2
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_real_photos_same_and_different(five_celeb: Path) -> None:
    ben = sorted((five_celeb / "ben_afflek").iterdir())
    madonna = sorted((five_celeb / "madonna").iterdir())
    same = verify(ben[0], ben[1])
    other = verify(ben[0], madonna[0])
    assert same.same and not other.same, (same.score, other.score)
    assert same.score > other.score
    assert not same.whole_a and not same.whole_b


def landscape() -> np.ndarray:
    """A synthetic landscape: sky gradient, hills, textured grass (no face)."""
    rng = np.random.default_rng(3)
    h, w = 300, 420
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.linspace([90, 150, 230], [200, 220, 250], h)[:, None, :]
    x = np.arange(w)
    hill = (170 + 30 * np.sin(x / 47.0) + 15 * np.sin(x / 13.0)).astype(int)
    for c in range(w):
        img[hill[c]:, c] = (60, 130, 50)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def non_faces(tmp_path: Path) -> tuple[Path, Path]:
    """Two face-less photos: the synthetic landscape and a real photo without a face
    (scikit-learn's sample photo of a temple)."""
    from sklearn.datasets import load_sample_image

    a, b = tmp_path / "landscape.png", tmp_path / "temple.jpg"
    Image.fromarray(landscape()).save(a)
    Image.fromarray(load_sample_image("china.jpg")).save(b, quality=92)
    return a, b


@pytest.mark.slow
def test_cli_two_faceless_photos_exit_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Two photos without a face are an error, not "the same person" (the real MTCNN, with
    its tight-crop retry border); --crop compares them whole."""
    a, b = non_faces(tmp_path)
    assert main(["verify", str(a), str(b), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "landscape.png: no face found" in err and len(err.strip().splitlines()) == 1
    assert main(["verify", str(b), str(a), "--device", "cpu"]) == 2
    assert "temple.jpg: no face found" in capsys.readouterr().err
    assert main(["verify", str(a), str(b), "--device", "cpu", "--crop"]) in (0, 1)
    assert capsys.readouterr().out.count("whole image (no face found)") == 2


@pytest.mark.slow
def test_facade_two_faceless_photos_raise_no_face(tmp_path: Path) -> None:
    import celebface

    a, b = non_faces(tmp_path)
    with pytest.raises(NoFaceError, match=r"landscape\.png: no face found"):
        celebface.verify(a, b)
    v = celebface.verify(a, b, crop=True)
    assert v.whole_a and v.whole_b
