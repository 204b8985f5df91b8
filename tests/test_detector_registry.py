"""The detector registry (name -> builder + info) and YuNet on a real photo."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from celebface.detection import (
    FaceFinder,
    FinderConfig,
    detector_info,
    detector_names,
    get_detector,
    get_finder,
    min_score,
    register_detector,
)
from celebface.detection.base import Detector
from celebface.detection.registry import _REGISTRY, DEFAULT_DETECTOR, DetectorInfo
from celebface.errors import InputError
from celebface.types import Face, box_iou


class _Dummy(Detector):
    name = "dummy"

    def __init__(self, device: str = "auto", score: float = 0.5, **_: object):
        self.device, self.score = device, score

    def detect_batch(self, images):
        return [[Face(box=(1, 1, 30, 30), score=self.score),
                 Face(box=(40, 40, 60, 60), score=0.2)] for _ in images]


@pytest.fixture
def dummy():
    register_detector("dummy", lambda device="auto", **o: _Dummy(device, **o),
                      DetectorInfo(dict, min_score=0.3))
    yield
    _REGISTRY.pop("dummy")
    from celebface.detection.finder import _cached_finder, _detector, _large_detector

    for f in (_cached_finder, _detector, _large_detector):
        f.cache_clear()


def test_builtins_are_registered_with_their_floors() -> None:
    names = detector_names()
    assert names[0] == DEFAULT_DETECTOR and {"mtcnn", "hog", "yunet"} <= set(names)
    assert min_score("mtcnn") == 0.9 and min_score("hog") == 0.0 and 0 < min_score("yunet") < 1
    assert detector_info("mtcnn").large_pass and detector_info("yunet").large_pass is None
    assert min_score("not-registered") == 0.0  # a detector built in code
    with pytest.raises(InputError, match="unknown detector 'nope': choose one of mtcnn"):
        get_detector("nope")
    with pytest.raises(InputError, match="unknown detector"):
        FinderConfig(detector="nope")
    with pytest.raises(TypeError, match="unknown YuNet option"):
        get_detector("yunet", bogus=1)


def test_one_line_registers_a_detector_every_surface_finds(dummy) -> None:
    assert "dummy" in detector_names()
    det = get_detector("dummy", "cpu", score=0.7)
    assert isinstance(det, _Dummy) and det.score == 0.7
    finder = get_finder(detector="dummy", device="cpu")
    faces = finder.find(np.zeros((80, 80, 3), np.uint8))
    assert [f.score for f in faces] == [0.5]  # the registered floor 0.3 drops the 0.2 face
    assert finder.settings()["min_score"] == 0.3
    assert finder.large_detector is None  # registered without a large-face pass
    # a built detector of a registered name takes that name's floor
    assert FaceFinder(detector=_Dummy()).config.score_floor == 0.3


def test_wheel_file_names_the_missing_package_and_checks_the_hash(tmp_path, monkeypatch) -> None:
    from celebface.models import store

    monkeypatch.setitem(store.WHEEL_FILES, "x", store.WheelFile(
        "X weights", "celebface_no_such_pkg", "m.onnx", "no-such-pkg==1.0", "0" * 64))
    with pytest.raises(store.MissingWeightsError, match=r"no-such-pkg.*--no-deps no-such-pkg"):
        store.wheel_file("x")
    pkg = tmp_path / "celebface_fake_wheel"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")  # never imported
    (pkg / "m.onnx").write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(store.WHEEL_FILES, "y", store.WheelFile(
        "Y weights", "celebface_fake_wheel", "m.onnx", "fake==1", "0" * 64))
    with pytest.raises(store.MissingWeightsError, match="SHA-256 differs"):
        store.wheel_file("y")
    assert "celebface_fake_wheel" not in sys.modules


def test_yunet_rows_become_faces_in_mtcnn_order() -> None:
    from celebface.detection.yunet import face_of

    row = np.array([10, 20, 40, 50, 20, 30, 40, 31, 30, 40, 22, 55, 38, 56, 0.9], np.float32)
    f = face_of(row, upscale=2.0)
    assert f.box == pytest.approx((5, 10, 25, 35)) and f.score == pytest.approx(0.9)
    assert f.landmarks.shape == (5, 2) and f.landmarks[0] == pytest.approx([10, 15])


@pytest.mark.integration
def test_yunet_on_a_five_celeb_photo(five_celeb: Path) -> None:
    import celebface
    from celebface.io import read_image

    photo = sorted((five_celeb / "jerry_seinfeld").glob("*.jpg"))[0]
    rgb = read_image(photo).rgb
    yu = celebface.detect(photo, detector="yunet", device="cpu")
    mt = celebface.detect(photo, device="cpu")
    assert len(yu) == 1 and len(mt) == 1
    y, m = yu[0], mt[0]
    assert y.score >= min_score("yunet") and box_iou(y.box, m.box) > 0.6
    lm = np.asarray(y.landmarks)
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left eye / mouth corner first
    assert lm[2, 1] > lm[:2, 1].max() and lm[3:, 1].min() > lm[2, 1]  # eyes, nose, mouth
    iod = np.linalg.norm(m.landmarks[0] - m.landmarks[1])
    assert np.linalg.norm(lm - m.landmarks, axis=1).max() < 0.25 * iod  # MTCNN's points
    det = get_detector("yunet", "cpu")
    again = pickle.loads(pickle.dumps(det)).detect(rgb)  # shipped to Ray workers
    assert len(again) == 1 and again[0].box == pytest.approx(det.detect(rgb)[0].box)
    # the dlib embedder takes YuNet's landmarks as MTCNN's: the same person's vector
    from celebface.recognition import EmbedderSpec

    a, b = EmbedderSpec("dlib").build("cpu").embed([rgb, rgb], [y, m])
    assert float(a @ b) > 0.95


@pytest.mark.integration
@pytest.mark.slow
def test_yunet_gives_the_same_faces_on_every_surface(five_celeb: Path, tmp_path: Path,
                                                      capsys) -> None:
    """``--detector yunet`` through the one finder: facade, recogniser, service, verify CLI."""
    import json

    import celebface
    from celebface.cli.main import main
    from celebface.io import read_image
    from celebface.recognizer import Recognizer

    photo = sorted((five_celeb / "madonna").glob("*.jpg"))[0]
    rgb = read_image(photo).rgb
    facade = [f.box for f in celebface.detect(photo, detector="yunet", device="cpu")]
    assert facade
    from celebface.gallery import Gallery

    one = np.full((1, 128), 128 ** -0.5, np.float32)  # a one-person gallery: only its finder
    rec = Recognizer(Gallery(names=["x"], embeddings=one, labels=np.zeros(1, np.int32),
                             sources=["x.jpg"]),
                     detector="yunet")
    assert [f.box for f in rec.finder.find(rgb)] == facade
    assert main(["verify", str(photo), str(photo), "--detector", "yunet", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["face_a"]["box"] == pytest.approx(list(max(
        celebface.detect(photo, detector="yunet", device="cpu"), key=lambda f: f.area).box),
        abs=0.01)
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from celebface.serve import ServeConfig, create_app

    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu", workers=1,
                                 detector="yunet", allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        served = client.post("/v1/detect", content=photo.read_bytes()).json()["faces"]
    assert [f["box"] for f in served] == [[round(v, 2) for v in b] for b in facade]



def test_yunet_onet_gives_yunet_faces_mtcnn_landmarks(five_celeb: Path) -> None:
    """``yunet+onet``: YuNet's faces and scores, MTCNN's boxes and landmarks (closer to
    MTCNN's own than YuNet's are); a box O-net does not accept keeps its own."""
    from celebface.io import read_image

    photos = sorted(five_celeb.glob("*/*.jpg"))[:6]
    images = [read_image(p).rgb for p in photos]
    mt, yu, both = (get_finder(detector=d, device="cpu") for d in ("mtcnn", "yunet",
                                                                     "yunet+onet"))
    errors: dict[str, list[float]] = {"yunet": [], "yunet+onet": []}
    ious: dict[str, list[float]] = {"yunet": [], "yunet+onet": []}
    for rgb in images:
        m, y, r = mt.largest(rgb), yu.largest(rgb), both.largest(rgb)
        assert m is not None and y is not None and r is not None
        assert r.score == pytest.approx(y.score)  # YuNet's face counts by YuNet's score
        iod = np.linalg.norm(m.landmarks[0] - m.landmarks[1])
        for name, f in (("yunet", y), ("yunet+onet", r)):
            errors[name].append(np.linalg.norm(f.landmarks - m.landmarks, axis=1).mean() / iod)
            ious[name].append(box_iou(f.box, m.box))
    assert np.mean(errors["yunet+onet"]) < 0.6 * np.mean(errors["yunet"])
    assert np.mean(ious["yunet+onet"]) > np.mean(ious["yunet"])
    det = get_detector("yunet+onet", "cpu")
    assert det.settings()["detector"] == "yunet+onet"
    again = pickle.loads(pickle.dumps(det)).detect(images[0])
    assert again[0].landmarks == pytest.approx(det.detect(images[0])[0].landmarks)
    grey = np.full((200, 200, 3), 128, np.uint8)  # nothing for O-net to accept
    face = Face(box=(50, 50, 150, 150), score=0.9, landmarks=np.zeros((5, 2), np.float32))
    assert det.refiner.refine([grey], [[face]]) == [[face]]
