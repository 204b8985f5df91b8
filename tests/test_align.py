"""Face geometry through crop -> data layer -> embedder: one alignment rule everywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from celebface.data import DatasetError, FaceItem, kind_of, open_dataset
from celebface.geometry import crop_face, crop_matrix, map_face
from celebface.recognition.align import face_tag
from celebface.types import Face


def _face() -> Face:
    lm = np.array([[40, 50], [70, 52], [55, 65], [43, 80], [68, 81]], np.float32)
    return Face((30.0, 30.0, 80.0, 95.0), 0.99, lm)


@pytest.mark.parametrize("align", [False, True])
def test_crop_geometry_follows_the_pixels(align: bool) -> None:
    """A bright dot under each landmark lands where map_face puts the landmark."""
    face = _face()
    m = crop_matrix(face, 0.2, 224, align)
    mapped = map_face(face, m)
    for (x, y), (cx, cy) in zip(face.landmarks, mapped.landmarks, strict=True):
        image = np.zeros((120, 110, 3), np.uint8)
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
        crop = crop_face(image, face, 0.2, 224, align)
        ys, xs = np.nonzero(crop[..., 0] > 60)
        assert abs(xs.mean() - cx) < 2.5 and abs(ys.mean() - cy) < 2.5
    if not align:  # the box of a square crop: centred, side 224 / 1.4 on the longer side
        x1, y1, x2, y2 = mapped.box
        assert y2 - y1 == pytest.approx(224 / 1.4, abs=0.01)
        assert (x1 + x2) / 2 == pytest.approx(112, abs=0.01)


def test_crop_geometry_is_scale_equivariant() -> None:
    face = _face()
    a = map_face(face, crop_matrix(face, 0.2, 224))
    b = map_face(face.scaled(2.5), crop_matrix(face.scaled(2.5), 0.2, 224))
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_auto_cache_tag_names_the_first_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vectors cached under another first-pass geometry must not be reused."""
    from celebface.detection import finder

    tag = face_tag(None, "auto")
    assert tag not in ("rule:auto", face_tag(None, "detect"), face_tag(None, "whole"))
    assert face_tag(None, "detect").startswith("rule:detect/mtcnn")
    assert face_tag(_face()).startswith("face:") and face_tag(None, "whole") == "rule:whole"
    monkeypatch.setattr(finder, "LARGE_FACE", finder.LARGE_FACE / 2)
    assert face_tag(None, "auto") != tag
    from celebface.detection import mtcnn

    tag, detect = face_tag(None, "auto"), face_tag(None, "detect")
    monkeypatch.setattr(mtcnn, "VERSION", mtcnn.VERSION + 1)  # faces of an older detector
    assert face_tag(None, "auto") != tag and face_tag(None, "detect") != detect


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, five_celeb: Path) -> Path:
    from celebface.cropping import CropConfig, crop_dataset

    src = tmp_path_factory.mktemp("src")
    for person in ("madonna", "elton_john"):
        (src / person).mkdir()
        for f in sorted((five_celeb / person).iterdir())[:3]:
            shutil.copy(f, src / person / f.name)
    dst = tmp_path_factory.mktemp("crops") / "crops"
    crop_dataset(src, dst, CropConfig(progress=False, device="cpu"))
    return dst


@pytest.mark.integration
def test_crop_folder_carries_face_geometry(crops: Path) -> None:
    assert kind_of(crops) == "crops"
    ds = open_dataset(crops)
    assert ds.kind == "crops" and len(ds) == 6 and ds.names == ["elton_john", "madonna"]
    for item in ds.items:
        assert isinstance(item, FaceItem) and item.face is not None
        x1, y1, x2, y2 = item.face.box
        assert 20 < x1 < 60 and 20 < y1 < 60 and 164 < x2 < 204 and 164 < y2 < 204
        lm = item.face.landmarks
        assert lm[0, 0] < lm[1, 0] and lm[2, 1] < lm[3, 1]  # eyes left->right, nose above mouth
    with pytest.raises(DatasetError, match="no images in split"):
        ds.split("val")


@pytest.mark.integration
def test_embed_and_enroll_use_the_crop_geometry(crops: Path, tmp_path: Path) -> None:
    """The default crop -> embed path embeds the recorded face, not the whole crop."""
    from celebface.gallery.faces import FaceSetConfig, embed_faces
    from celebface.recognition import DlibEmbedder, EmbedConfig, embed_dataset

    out = embed_dataset(crops, tmp_path / "emb", EmbedConfig(embedder="dlib"), progress=False,
                        device="cpu")
    ds = open_dataset(crops)
    emb = DlibEmbedder()
    images = [ds.load(it) for it in ds.items]
    want = emb.embed(images, [it.face for it in ds.items])
    np.testing.assert_allclose(out.embeddings, want, atol=1e-5)
    whole = emb.embed(images, None)
    assert np.min(np.sum(whole * want, 1)) < 0.999  # the old whole-crop chips differ
    faces = embed_faces(crops, FaceSetConfig(embedder="dlib", detector="none", device="cpu"))
    np.testing.assert_allclose(faces.embeddings, want, atol=1e-5)


def test_default_threshold_follows_the_gallery_size() -> None:
    """An uncalibrated gallery aims at 1% FAR: with fewer people each may be matched more
    loosely (FAR ~ N p), so its threshold is lower."""
    from celebface.gallery.policy import policy_for, tail_threshold
    from celebface.gallery.store import Gallery

    tail = [(0.1, 0.80), (0.01, 0.90), (0.001, 0.95)]
    assert tail_threshold(tail, 0.01) == pytest.approx(0.90)
    assert tail_threshold(tail, 0.003) == pytest.approx(0.90 + 0.05 * np.log(0.01 / 0.003)
                                                         / np.log(10))
    assert tail_threshold(tail, 1e-9) == pytest.approx(0.95)  # clamped to what was measured

    def gallery(n: int) -> Gallery:
        g = Gallery(embedder={"name": "dlib", "tta": "none"})
        v = np.eye(128, dtype=np.float32)[:n]
        g.add(v, [f"p{i}" for i in range(n)], [f"s{i}" for i in range(n)])
        return g

    t5, t80 = (policy_for(gallery(n), "centroid").threshold for n in (5, 80))
    assert 0.5 < t5 < t80 < 1.0


def test_fused_embedder_has_its_own_uncalibrated_threshold() -> None:
    """dlib+facenet cosines live on another scale than dlib's: its gallery must not fall back
    to the 0.5 used for unmeasured embedders (that would accept every stranger)."""
    from celebface.gallery.policy import FALLBACK_THRESHOLD, default_threshold

    fused = default_threshold("dlib+facenet", "none", "centroid", 10)
    assert fused != FALLBACK_THRESHOLD and 0.8 < fused < default_threshold("dlib", "none",
                                                                          "centroid", 10)
    assert default_threshold("nobody", "none", "centroid", 10) == FALLBACK_THRESHOLD
