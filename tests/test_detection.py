"""Detectors: coordinate mapping, batching, landmarks, real faces."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from celebface.data import list_dataset
from celebface.detection import get_detector
from celebface.detection.mtcnn import _group_by_canvas, _nms
from celebface.detection.prepare import pad_on_miss, prepare, sort_faces, to_input_pixels
from celebface.io import read_image
from celebface.types import Face, box_iou


def test_prepare_shrinks_pads_and_maps_back() -> None:
    img = np.zeros((200, 100, 3), np.uint8)
    prep = prepare(img, max_side=100, pad=0.1)
    assert prep.scale == pytest.approx(0.5)
    assert prep.image.shape == (120, 70, 3)  # 100x50 + 10 px each side
    # a face at (10, 20)-(30, 60) in prepared pixels is (0, 20)-(40, 100) in the input
    face = Face(box=(10, 20, 30, 60), landmarks=np.array([[20, 30]] * 5, np.float32))
    back = to_input_pixels(face, prep)
    assert back.box == pytest.approx((0, 20, 40, 100))
    assert back.landmarks[0] == pytest.approx([20, 40])


def test_prepare_short_side_resizes_both_ways() -> None:
    face = Face(box=(10, 20, 30, 60), landmarks=np.array([[20, 30]] * 5, np.float32))
    down = prepare(np.zeros((200, 100, 3), np.uint8), short_side=50)
    assert down.image.shape == (100, 50, 3) and down.scale == pytest.approx(0.5)
    assert to_input_pixels(face, down).box == pytest.approx((20, 40, 60, 120))
    up = prepare(np.zeros((30, 40, 3), np.uint8), short_side=60, pad=0.1)
    assert up.image.shape == (60 + 16, 80 + 16, 3) and up.scale == pytest.approx(2.0)
    back = to_input_pixels(face, up)  # (prepared - 8) / 2
    assert back.box == pytest.approx((1, 6, 11, 26)) and back.landmarks[0] == pytest.approx(
        [6, 11])
    capped = prepare(np.zeros((20, 200, 3), np.uint8), max_side=300, short_side=40)
    assert capped.image.shape == (30, 300, 3)  # the longer side still capped by max_side
    same = prepare(np.zeros((20, 30, 3), np.uint8))
    assert same.scale == 1.0 and same.image.shape == (20, 30, 3)


def test_short_side_setting() -> None:
    from celebface.validate import ConfigError

    det = get_detector("mtcnn", "cpu")
    assert "short_side" not in det.settings()  # off: settings recorded before it still match
    assert get_detector("mtcnn", "cpu", short_side=160).settings()["short_side"] == 160
    with pytest.raises(ConfigError, match="short_side"):
        get_detector("mtcnn", "cpu", short_side=8)


def test_mapped_boxes_are_clipped_and_sorted() -> None:
    prep = prepare(np.zeros((50, 50, 3), np.uint8), pad=0.2)
    faces = [to_input_pixels(Face(box=(0, 0, 40, 40), score=0.5), prep),
             to_input_pixels(Face(box=(15, 15, 55, 55), score=0.9), prep),
             to_input_pixels(Face(box=(0, 0, 5, 5), score=0.99), prep)]  # all in the border
    out = sort_faces(faces)
    assert [f.score for f in out] == [0.9, 0.5]
    for f in out:
        assert 0 <= f.box[0] <= f.box[2] <= 50 and 0 <= f.box[1] <= f.box[3] <= 50


def test_pad_on_miss_reruns_only_missed_images() -> None:
    calls: list[tuple[int, float]] = []

    def run(images, pad):
        calls.append((len(images), pad))
        # without padding only bright images have a (confident) face; with padding all do
        return [[Face(box=(0, 0, 9, 9), score=0.99 if (im.mean() > 100 or pad) else 0.5)]
                for im in images]

    imgs = [np.full((10, 10, 3), v, np.uint8) for v in (200, 10, 200, 10)]
    out = pad_on_miss(run, imgs, pad=0.2, miss_score=0.9)
    assert calls == [(4, 0.0), (2, 0.2)]
    assert [f[0].score for f in out] == [0.99] * 4
    calls.clear()
    assert pad_on_miss(run, imgs, pad=0.0, miss_score=0.9)[1][0].score == 0.5
    assert calls == [(4, 0.0)]


def test_group_by_canvas_limits_waste() -> None:
    sizes = [(100, 100)] * 5 + [(400, 400)] * 3 + [(110, 100)]
    groups = _group_by_canvas(sizes, batch_size=4, waste=0.3)
    assert sorted(i for g in groups for i in g) == list(range(9))
    for g in groups:
        assert len(g) <= 4
        area = sum(sizes[i][0] * sizes[i][1] for i in g)
        canvas = max(sizes[i][0] for i in g) * max(sizes[i][1] for i in g) * len(g)
        assert area >= 0.7 * canvas


def test_nms_per_image_ties_to_the_earlier_candidate() -> None:
    """Equal scores (MTCNN's saturate at 1.0) keep the earlier box whatever other images'
    boxes share the call; boxes of different images never suppress each other."""
    import torch

    mine = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]])
    scores = torch.ones(3)
    alone = _nms(mine, scores, torch.zeros(3, dtype=torch.long), 0.5).tolist()
    assert alone == [0, 2]
    for by_min in (False, True):
        for n_other in (1, 7, 300):
            other = torch.rand(n_other, 4, generator=torch.Generator().manual_seed(n_other))
            other = torch.cat([other[:, :2] * 50, other[:, :2] * 50 + 10], dim=1)
            boxes = torch.cat([other, mine, other])
            s = torch.cat([torch.ones(n_other), scores, torch.ones(n_other)])
            inds = torch.tensor([1] * n_other + [0] * 3 + [2] * n_other)
            keep = _nms(boxes, s, inds, 0.5, by_min=by_min).tolist()
            assert [k - n_other for k in keep if inds[k] == 0] == [0, 2]
            assert {int(inds[k]) for k in keep} == {0, 1, 2}


def _sizes_and_photos(pins: Path, n: int = 5) -> list[np.ndarray]:
    """A few pins105-dev crops of different sizes, and a big grey frame holding one of them."""
    items = list_dataset(pins)[::997][:n]
    photos = [read_image(it.path).rgb for it in items]
    frame = np.full((3 * photos[0].shape[0], 2 * photos[0].shape[1], 3), 127, np.uint8)
    frame[: photos[0].shape[0], : photos[0].shape[1]] = photos[0]
    return [*photos, frame]


@pytest.mark.integration
@pytest.mark.parametrize("options", [{}, {"short_side": 160, "min_face_size": 64}],
                         ids=["full", "large-face"])
def test_mtcnn_faces_do_not_depend_on_batch_mates(pins: Path, options: dict) -> None:
    """The same photo gives the same faces alone and batched with differently sized photos
    (each image's own pyramid, masked canvas edges, per-image crops and NMS)."""
    det = get_detector("mtcnn", "cpu", **options)
    photos = _sizes_and_photos(pins)
    batched = det.detect_batch(photos)
    assert sum(bool(f) for f in batched) >= len(photos) - 1
    for photo, together in zip(photos, batched, strict=True):
        alone = det.detect(photo)
        assert len(alone) == len(together)
        for a, b in zip(alone, together, strict=True):
            assert a.box == pytest.approx(b.box, abs=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-4)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_unknown_detector() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("nope")
    with pytest.raises(TypeError, match="unknown MTCNN option"):
        get_detector("mtcnn", "cpu", bogus=1)


@pytest.fixture(scope="module")
def mtcnn():
    return get_detector("mtcnn", "cpu")


def test_blank_images_have_no_faces(mtcnn) -> None:
    blank = [np.full((120, 90, 3), v, np.uint8) for v in (0, 128, 255)]
    assert mtcnn.detect_batch(blank) == [[], [], []]
    assert mtcnn.detect_batch([]) == []


def _five(five_celeb: Path, n: int = 6) -> list[np.ndarray]:
    items = list_dataset(five_celeb)
    return [read_image(it.path).rgb for it in items[:: max(1, len(items) // n)][:n]]


@pytest.mark.integration
def test_mtcnn_real_faces_batched_equals_single(mtcnn, five_celeb: Path) -> None:
    images = _five(five_celeb)
    batched = mtcnn.detect_batch(images)
    for img, faces in zip(images, batched, strict=True):
        assert faces, "a face in every sampled five_celeb photo"
        assert all(a.score >= b.score for a, b in itertools.pairwise(faces))
        best = max(faces, key=lambda f: f.area)
        lm = best.landmarks
        assert lm.shape == (5, 2)
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left/right as seen in the image
        assert max(lm[0, 1], lm[1, 1]) < min(lm[3, 1], lm[4, 1])  # eyes above the mouth
        x1, _, x2, _ = best.box
        assert (x1 <= lm[:, 0]).all() and (lm[:, 0] <= x2).all()
        single = max(mtcnn.detect(img), key=lambda f: f.area)
        assert single.box == pytest.approx(best.box, abs=1e-3)


@pytest.mark.integration
def test_mtcnn_downscaled_detection_maps_to_source(five_celeb: Path) -> None:
    img = _five(five_celeb, 1)[0]
    big = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)
    small_det = get_detector("mtcnn", "cpu", max_side=max(img.shape[:2]))
    a = max(small_det.detect(img), key=lambda f: f.area)
    b = max(small_det.detect(big), key=lambda f: f.area)  # shrunk 3x inside, mapped back
    assert box_iou(np.array(a.box) * 3, b.box) > 0.8


@pytest.mark.integration
def test_hog_agrees_with_mtcnn(mtcnn, five_celeb: Path) -> None:
    hog = get_detector("hog")
    images = _five(five_celeb, 4)
    agree = 0
    for img, h in zip(images, hog.detect_batch(images), strict=True):
        m = mtcnn.detect(img)
        if h and m:
            hb, mb = max(h, key=lambda f: f.area), max(m, key=lambda f: f.area)
            assert hb.landmarks.shape == (5, 2)
            assert hb.landmarks[0, 0] < hb.landmarks[1, 0]
            agree += box_iou(hb.box, mb.box) > 0.4
    assert agree >= 3


@pytest.mark.integration
def test_padding_finds_tight_crops(pins: Path) -> None:
    items = [it for it in list_dataset(pins) if it.identity < "pins_B"][::60][:8]
    images = [read_image(it.path).rgb for it in items]
    padded = get_detector("mtcnn", "cpu", pad=0.15, pad_on_miss=False).detect_batch(images)
    on_miss = get_detector("mtcnn", "cpu", pad=0.15).detect_batch(images)
    plain = get_detector("mtcnn", "cpu", pad=0.0).detect_batch(images)
    found_padded = sum(bool(f) for f in padded)
    assert found_padded >= 0.9 * len(images)
    assert sum(bool(f) for f in on_miss) >= sum(bool(f) for f in plain)
    assert sum(bool(f) for f in on_miss) >= 0.9 * len(images)
