"""The one face finder (celebface.detection.finder): minimum score, nested boxes, size, the
whole-image rule, one cached finder per settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from celebface.detection.finder import (
    HEAD_MARGIN,
    FaceFinder,
    FinderConfig,
    as_finder,
    drop_nested,
    get_finder,
    inside,
    is_whole,
    pick_face,
    whole_face,
)
from celebface.errors import InputError
from celebface.types import Face


class FakeDetector:
    """Returns the given faces per call (as many lists as images) and records the image
    sizes it saw."""

    def __init__(self, faces: list[list[Face]], name: str = "mtcnn"):
        self.faces, self.name, self.calls, self.seen = faces, name, 0, []

    def detect_batch(self, images):
        self.calls += 1
        self.seen.append([im.shape[:2] for im in images])
        return [list(f) for f in self.faces[: len(images)]]


def _img(h: int = 50, w: int = 40, v: int = 0) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def test_locate_rules() -> None:
    images = [_img()] * 2
    known = Face((30.0, 30.0, 35.0, 38.0), 0.99, np.zeros((5, 2), np.float32))
    small, big = Face((0, 0, 5, 5), 0.99), Face((10, 10, 30, 30), 0.95)
    det, large = FakeDetector([[small, big]]), FakeDetector([[]])
    out = FaceFinder(detector=det, large_detector=large).locate(images, [known, None], "auto")
    assert out[0] is known and out[1] == big  # known kept; the largest confident face
    finder = FaceFinder(detector=FakeDetector([[]]), large_detector=FakeDetector([[]]))
    assert finder.locate(images[:1]) == [None]  # detect (the default): skip
    assert finder.largest(images[0]) is None
    whole = finder.largest(images[0], rule="auto")
    assert whole == whole_face(images[0]) and whole.box == (0.0, 0.0, 39.0, 49.0)
    assert is_whole(whole) and not is_whole(big) and not is_whole(None)
    unused = FakeDetector([])
    finder = FaceFinder(FinderConfig(rule="whole"), detector=unused, large_detector=unused)
    assert finder.locate(images[:1])[0].box == (0.0, 0.0, 39.0, 49.0)
    assert unused.calls == 0
    assert pick_face([]) is None
    with pytest.raises(InputError, match="unknown face rule"):
        finder.locate(images, None, "guess")
    with pytest.raises(InputError, match="unknown detector"):
        FinderConfig(detector="nope")


def test_auto_rule_tries_the_large_face_pass_first() -> None:
    """``auto``: the large-face detector sees every image whose face is not known; the full
    detector only those where it found no confident face; ``detect`` skips the first pass."""
    images = [_img(60, 50, v) for v in (10, 20, 30)]
    first = Face((5, 5, 45, 55), 0.99, np.zeros((5, 2), np.float32))
    weak = Face((0, 0, 50, 60), 0.5)  # below min_score: a miss
    late = Face((1, 1, 30, 30), 0.97)
    large, full = FakeDetector([[first], [weak]]), FakeDetector([[late]])
    known = Face((0, 0, 9, 9), 0.99)
    out = FaceFinder(detector=full, large_detector=large).locate(
        images, [None, None, known], "auto")
    assert len(large.seen[0]) == 2 and len(full.seen[0]) == 1  # the known face: neither
    assert out == [first, late, known]
    large, full = FakeDetector([[first]] * 3), FakeDetector([[late]] * 3)
    finder = FaceFinder(detector=full, large_detector=large)
    assert finder.locate(images, None, "auto") == [first] * 3
    assert full.calls == 0  # every face found in the first pass: no full pass
    assert finder.locate(images, None, "detect") == [late] * 3 and large.calls == 1
    hog = FaceFinder(detector=FakeDetector([[late]] * 3, name="hog"))
    assert hog.large_detector is None  # no MTCNN first pass for another detector
    assert hog.locate(images, None, "auto") == [late] * 3


def test_faces_that_count() -> None:
    """At least the detector's minimum score (MTCNN 0.9, HOG 0.0, or the config's), at
    least ``min_face``, not nested; highest score first."""
    image = _img(100, 100)
    weak_big = Face((0, 0, 60, 60), 0.5)
    a, b = Face((70, 0, 80, 10), 0.99), Face((70, 50, 95, 75), 0.95)
    det = FakeDetector([[weak_big, b, a]])
    assert FaceFinder(detector=det).find(image) == [a, b]
    assert FaceFinder(detector=det).largest(image) == b
    det.name = "hog"
    assert FaceFinder(detector=det).find(image) == [a, b, weak_big]
    assert FaceFinder(FinderConfig(min_score=0.97), detector=det).find(image) == [a]
    assert FaceFinder(FinderConfig(min_face=15), detector=det).find(image) == [b, weak_big]
    assert FaceFinder(detector=FakeDetector([[], []])).find_batch([image, image]) == [[], []]


def test_nested_boxes_are_dropped() -> None:
    """A box mostly inside the head around a larger face (a chin, a neck) is not a second
    face; the larger face is kept whatever the scores; faces side by side stay."""
    # five_celeb elton_john ...emmysperformancewatchnowjpg.jpg, MTCNN's boxes (rounded)
    face, chin = Face((103.8, 33.6, 144.2, 90.2), 0.9996), Face((108.2, 75.2, 140.0, 118.3),
                                                                0.963)
    assert inside(chin, face) == pytest.approx(0.35, abs=0.01)  # IoU-style tests miss it
    assert inside(chin, face, HEAD_MARGIN) == pytest.approx(0.67, abs=0.01)
    assert drop_nested([chin, face]) == [face]
    assert drop_nested([chin, face], margin=0.0) == [face, chin]
    assert drop_nested([face.with_(score=0.95), chin.with_(score=0.99)]) == [
        face.with_(score=0.95)]  # the larger box is the person, not the higher score
    big = Face((100, 100, 200, 220), 0.999)
    assert inside(big, chin) < 0.25 and inside(big, Face((300, 0, 310, 10))) == 0.0
    beside = Face((190, 100, 290, 220), 0.97)  # cheek to cheek: 35% inside the head
    assert drop_nested([big, beside]) == [big, beside]
    half = Face((150, 100, 250, 220), 0.98)  # half behind the other's face
    assert drop_nested([half, big]) == [big]
    assert drop_nested([half, big], margin=0.0) == [big, half]
    det = FakeDetector([[chin, face]])
    assert FaceFinder(detector=det).find(_img(300, 300)) == [face]
    off = FaceFinder(FinderConfig(nested=1.5), detector=det).find(_img(300, 300))
    assert off == [face, chin]


def test_max_side_shrinks_before_detection_and_maps_back() -> None:
    """The finder shrinks once, to ``max_side``; faces come back in the input's pixels."""
    lm = np.array([[20, 20], [40, 20], [30, 30], [22, 40], [38, 40]], np.float32)
    det = FakeDetector([[Face((10, 10, 50, 50), 0.99, lm)]])
    face = FaceFinder(FinderConfig(max_side=100), detector=det).find(_img(400, 200))[0]
    assert det.seen == [[(100, 50)]]
    assert face.box == pytest.approx((40, 40, 200, 200))
    np.testing.assert_allclose(face.landmarks, lm * 4)
    FaceFinder(FinderConfig(max_side=0), detector=det).find(_img(400, 200))
    FaceFinder(FinderConfig(max_side=1024), detector=det).find(_img(400, 200))
    assert det.seen[1:] == [[(400, 200)], [(400, 200)]]


def test_one_cached_finder_per_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.detection import finder as finder_mod

    built: list[tuple] = []

    def fake_build(name: str, device: str) -> FakeDetector:
        built.append((name, device))
        return FakeDetector([[]], name)

    monkeypatch.setattr(finder_mod, "_detector", fake_build)
    finder_mod._cached_finder.cache_clear()
    try:
        a = get_finder(device="cpu")
        assert get_finder(FinderConfig(device="cpu")) is a and a.config.rule == "detect"
        b = get_finder(device="cpu", rule="auto")
        assert b is not a and b.config.rule == "auto"
        assert get_finder(device="cuda:1").config.device == "cuda:1"
        assert as_finder(device="cpu") is a and as_finder(a) is a
        assert as_finder(a, rule="auto").detector is a.detector
        with pytest.raises(ValueError):
            a.with_(device="cuda")
        assert a.detector is a.detector and b.detector is not a.detector
        assert built == [("mtcnn", "cpu"), ("mtcnn", "cpu")]  # a, then b: each built once
    finally:
        finder_mod._cached_finder.cache_clear()


def test_facade_passes_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """``celebface.embed``/``detect`` find faces on the device they are given (MTCNN ran on
    the CPU with ``device="cuda"`` before)."""
    import celebface.api as api
    import celebface.detection as detection
    import celebface.recognition as recognition

    devices = []

    class Finder:
        def locate(self, images, known, rule):
            return [None] * len(images)

        def find(self, image):
            return []

    def fake_finder(**config):
        devices.append(config.get("device"))
        return Finder()

    class Embedder:
        def embed(self, images, faces):
            return np.zeros((len(images), 2), np.float32)

    monkeypatch.setattr(detection, "get_finder", fake_finder)
    monkeypatch.setattr(recognition.EmbedderSpec, "build", lambda *a, **k: Embedder())
    api.embed([_img()], device="cuda:3")
    api.detect(_img(), device="cuda:2")
    assert devices == ["cuda:3", "cuda:2"]


@pytest.mark.integration
def test_large_face_pass_on_tight_crops_and_small_faces(pins: Path) -> None:
    """Real MTCNN: on tight crops the first pass finds the face the full pass finds (box and
    landmarks close); a face too small for it (a crop pasted into a big grey frame) is left to
    the full pass, so ``auto`` still finds it there."""
    from celebface.data import list_dataset
    from celebface.io import read_image
    from celebface.types import box_iou

    finder = get_finder(device="cpu")
    items = list_dataset(pins)[5::1500][:8]
    images = [read_image(it.path).rgb for it in items]
    large = finder.large_detector
    for lf, ff in zip(large.detect_batch(images), finder.find_batch(images), strict=True):
        a, b = pick_face(finder.counted(lf)), pick_face(ff)
        assert a is not None and b is not None
        assert box_iou(a.box, b.box) > 0.7
        iod = np.linalg.norm(b.landmarks[0] - b.landmarks[1])
        assert np.abs(a.landmarks - b.landmarks).max() < 0.35 * iod
    import cv2

    img = images[0]
    k = 60 / max(img.shape[:2])  # a 60-px photo in a 480-px frame: the face under LARGE_FACE / 3
    small = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)),
                       interpolation=cv2.INTER_AREA)
    frame = np.full((480, 480, 3), 127, np.uint8)
    frame[100:100 + small.shape[0], 200:200 + small.shape[1]] = small
    assert not finder.counted(large.detect(frame))
    got = finder.largest(frame, rule="auto")
    want = pick_face(finder.find(frame))
    assert got is not None and got.landmarks is not None and want is not None
    assert 200 <= got.center[0] <= 260 and 100 <= got.center[1] <= 160
    assert box_iou(got.box, want.box) > 0.9


def test_recognizer_sizes_stills_and_video_frames_by_its_config() -> None:
    """Stills at ``detect_side``, video frames at ``video_detect_side``: two finders of one
    config but for ``max_side``, sharing one detector."""
    from celebface.gallery import Gallery
    from celebface.recognizer import Recognizer, RecognizerConfig

    g = Gallery(embedder={"name": "fake"})
    g.add(np.eye(3, dtype=np.float32)[:1], ["a"], ["a"])
    det = FakeDetector([[Face((10, 10, 50, 50), 0.99)]])
    config = RecognizerConfig(detect_side=100, video_detect_side=50, min_face=5)
    rec = Recognizer(g, detector=det, config=config)
    assert rec.detect(_img(400, 200))[0].box == pytest.approx((40, 40, 200, 200))
    assert rec.detect(_img(400, 200), video=True)[0].box == pytest.approx((80, 80, 400, 400))
    assert det.seen == [[(100, 50)], [(50, 25)]]
    assert rec.finder.detector is rec.video_finder.detector is det
    assert rec.finder.config.min_face == 5 and rec.video_finder.config.max_side == 50


def test_video_frames_default_to_yunet_onet_at_its_registered_size() -> None:
    """No detector named: MTCNN for stills, ``yunet+onet`` for video frames at its
    registered video size; a detector named (or a size) is used for both."""
    from celebface.detection.registry import DEFAULT_VIDEO_DETECTOR, video_side
    from celebface.gallery import Gallery
    from celebface.recognizer import Recognizer, RecognizerConfig

    g = Gallery(embedder={"name": "fake"})
    g.add(np.eye(3, dtype=np.float32)[:1], ["a"], ["a"])
    rec = Recognizer(g, config=RecognizerConfig(device="cpu"))
    assert rec.finder.name == "mtcnn" and rec.finder.config.max_side == 1024
    assert rec.video_finder.name == DEFAULT_VIDEO_DETECTOR == "yunet+onet"
    assert rec.video_finder.config.max_side == video_side("yunet+onet") == 640
    named = Recognizer(g, detector="mtcnn", config=RecognizerConfig(device="cpu"))
    assert named.video_finder.name == "mtcnn" and named.video_finder.config.max_side == 320
    sized = Recognizer(g, config=RecognizerConfig(device="cpu", video_detect_side=480))
    assert sized.video_finder.config.max_side == 480
