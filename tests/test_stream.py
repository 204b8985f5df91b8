"""Tracker, recogniser, sources and outputs on synthetic frames with stand-in models (fast).

Real detectors and embedders on real faces are exercised in test_recognize.py.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.gallery import Gallery
from celebface.recognizer import Recognizer
from celebface.streaming import (
    IoUTracker,
    RecognizerConfig,
    Source,
    SourceError,
    StreamConfig,
    TrackerConfig,
    VideoTracker,
    classify,
    iter_frames,
    output_sinks,
    run_inputs,
)
from celebface.streaming.synthetic import moving_faces, write_video
from celebface.streaming.tracker import Track
from celebface.types import UNKNOWN, Face, Match, box_iou
from fakes import BlobDetector, MeanColourEmbedder

COLOURS = {"red": (230, 40, 40), "green": (40, 220, 60), "blue": (50, 60, 235),
           "yellow": (235, 225, 40)}


def colour_gallery(embedder: str = "meancolour") -> Gallery:
    g = Gallery(embedder={"name": embedder})
    names = list(COLOURS)
    vecs = np.array([COLOURS[n] for n in names], np.float32) - 128.0
    g.add(vecs, names, names)
    g.thresholds["centroid"] = 0.9
    return g


def colour_sprite(name: str, rng: np.random.Generator) -> np.ndarray:
    base = np.array(COLOURS[name], np.float32)
    return np.clip(base + rng.normal(0, 6, (60, 50, 3)), 0, 255).astype(np.uint8)


def grey_video(names: list[str], n_frames: int, rng: np.random.Generator):
    video = moving_faces([colour_sprite(n, rng) for n in names], n_frames=n_frames,
                         size=(320, 240), face_height=60, speed=5.0, seed=1)
    frames = [np.full_like(f, 128) for f in video.frames]
    for frame, src, boxes in zip(frames, video.frames, video.boxes, strict=True):
        for x1, y1, x2, y2 in boxes:
            sl = np.s_[int(y1):int(y2), int(x1):int(x2)]
            frame[sl] = src[sl]
    return frames, video.boxes


# ------------------------------------------------------------------ tracker
def test_tracker_keeps_ids_and_expires_tracks() -> None:
    tr = IoUTracker(TrackerConfig(max_missed=1))
    a, b = Face((0, 0, 10, 10)), Face((50, 50, 60, 60))
    ids = [t.id for t in tr.update([a, b])]
    assert ids == [1, 2]
    moved = [Face((52, 51, 62, 61)), Face((1, 0, 11, 10))]  # order swapped, small moves
    assert [t.id for t in tr.update(moved)] == [2, 1]
    tr.update([])
    tr.update([])  # missed twice > max_missed: both closed
    assert [t.id for t in tr.update([a])] == [3]


def test_track_reembeds_when_new_moved_or_stale() -> None:
    cfg = TrackerConfig(reembed_iou=0.6, reembed_every=5)
    t = Track(1, (0, 0, 10, 10))
    assert t.needs_embedding(0, cfg)
    t.add(np.array([1.0, 0.0, 0.0]), 0)
    assert not t.needs_embedding(1, cfg)
    t.box = (1, 0, 11, 10)
    assert not t.needs_embedding(2, cfg)
    t.box = (5, 0, 15, 10)  # IoU 1/3
    assert t.needs_embedding(2, cfg)
    t.box = (0, 0, 10, 10)
    assert t.needs_embedding(5, cfg)


def test_track_mean_and_hysteresis() -> None:
    t = Track(1, (0, 0, 1, 1))
    t.add(np.array([2.0, 0.0]), 0, np.array([0.9, 0.5]))
    t.add(np.array([0.0, 1.0]), 1, np.array([0.8, 0.6]))  # unit vectors, whatever their length
    assert t.mean == pytest.approx(np.array([1, 1]) / np.sqrt(2))
    assert t.similarity(np.array([1.0, 1.0])) == pytest.approx(1.0)
    # the decision reads the mean of the frames' scores (the mean vector's would be higher)
    assert t.mean_scores == pytest.approx([0.85, 0.55]) and t.scores == pytest.approx([0.8, 0.6])
    amy, bob = Match("amy", 0.9, "bob", 0.5), Match("bob", 0.8, "amy", 0.7)
    shown = [t.decide(m, switch_after=2).identity
             for m in (amy, bob, amy, bob, bob, amy, bob, bob)]
    # one stray decision does not flip the name; two in a row do
    assert shown == ["amy", "amy", "amy", "amy", "bob", "bob", "bob", "bob"]


def test_track_views_weigh_near_duplicates_once() -> None:
    t = Track(1, (0, 0, 1, 1))
    t.add(np.array([1.0, 0.0]), 0, np.array([0.9, 0.5]), same_view=0.99)
    t.add(np.array([0.999, 0.02]), 1, np.array([0.7, 0.5]), same_view=0.99)  # cos 0.9998
    t.add(np.array([0.8, 0.6]), 2, np.array([0.8, 0.6]), same_view=0.99)  # cos 0.8: new view
    assert len(t.views) == 2 and t.count == 3
    # the mean over views of each view's mean: ((0.9 + 0.7) / 2 + 0.8) / 2, (0.5 + 0.6) / 2
    assert t.mean_scores == pytest.approx([0.8, 0.55])
    one = Track(2, (0, 0, 1, 1))  # no bound given: everything is one view
    for i, e in enumerate(([1.0, 0.0], [0.0, 1.0], [0.8, 0.6])):
        one.add(np.array(e), i, np.array([0.5, 0.5]))
    assert len(one.views) == 1


class SequenceEmbedder(MeanColourEmbedder):
    """Returns ``vectors`` in turn, one per face embedded, whatever the image."""

    def __init__(self, vectors: list[np.ndarray]) -> None:
        super().__init__()
        self.vectors = vectors

    def embed(self, images, faces=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = [self.vectors[(self.faces_seen + i) % len(self.vectors)]
               for i in range(len(images))]
        self.faces_seen += len(images)
        return np.array(out, np.float32)


def test_track_seen_in_distinct_views_passes_a_lower_threshold(rng: np.random.Generator
                                                               ) -> None:
    from celebface.recognition.registry import embedder_config

    offsets = embedder_config("dlib").view_offsets["none"]
    # two distinct views of "red", each half the 2-view offset under the threshold (0.9)
    red = np.array(COLOURS["red"], np.float64) - 128.0
    red /= np.linalg.norm(red)
    side = np.cross(red, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    c = 0.9 - offsets[0] / 2
    views = [c * red + s * np.sqrt(1 - c * c) * side for s in (1, -1)]
    img = np.full((240, 320, 3), 128, np.uint8)
    img[90:150, 130:180] = colour_sprite("red", rng)
    cfg = RecognizerConfig(video_detect_side=0, tracker=TrackerConfig(
        detect_every=1, reembed_every=1, track_gate=-1, switch_after=1))

    def names(gallery: Gallery, vectors: list[np.ndarray]) -> list[str]:
        rec = VideoTracker(Recognizer(gallery, detector=BlobDetector(),
                                      embedder=SequenceEmbedder(vectors), config=cfg))
        return [rec.process_frame(img)[0].identity for _ in range(4)]

    # a dlib gallery: the threshold of a 2-view track is 0.9 - offsets[0]
    rec = VideoTracker(Recognizer(colour_gallery("dlib"), detector=BlobDetector(),
                                  embedder=MeanColourEmbedder()))
    assert rec.policy.track_threshold(1) == rec.policy.threshold == pytest.approx(0.9)
    assert [rec.policy.track_threshold(n) for n in (2, 3, 4, 9)] == pytest.approx(
        [0.9 - offsets[0], 0.9 - offsets[1], 0.9 - offsets[2], 0.9 - offsets[2]])
    assert names(colour_gallery("dlib"), views) == [UNKNOWN, "red", "red", "red"]
    # one view seen again and again stays one view: still unknown
    assert names(colour_gallery("dlib"), views[:1]) == [UNKNOWN] * 4
    # an embedder with no measured offsets keeps one threshold
    assert names(colour_gallery(), views) == [UNKNOWN] * 4


def test_track_gate_comes_from_measurements(caplog: pytest.LogCaptureFixture) -> None:
    from celebface.recognition.registry import embedder_config

    class Classifier:  # a trained model: no gallery to measure a gate on
        label_names = ("amy", "bob")

        def predict_embeddings(self, e: np.ndarray) -> np.ndarray:
            return np.full((len(e), 2), 0.5)

    def gate(gallery: Gallery | None, **tracker: float) -> float:
        model = None if gallery is not None else Classifier()
        return VideoTracker(Recognizer(
            gallery, detector=BlobDetector(), embedder=MeanColourEmbedder(), model=model,
            config=RecognizerConfig(tracker=TrackerConfig(**tracker)))).track_gate

    dlib = embedder_config("dlib")
    assert gate(colour_gallery("dlib")) == dlib.track_gate["none"]  # measured
    flip = colour_gallery("dlib")
    flip.embedder = {"name": "dlib", "tta": "flip"}
    # no gate measured for flip: the pair threshold, a point of the same two distributions
    assert "flip" not in dlib.track_gate
    assert gate(flip) == (dlib.pair_threshold["flip"],)
    # nothing measured: the cosine at which 1% of the gallery's different-person pairs pass
    g = colour_gallery()
    e, lab = g.embeddings, g.labels
    cos = (e @ e.T)[lab[:, None] != lab[None, :]]
    assert gate(g) == pytest.approx((np.quantile(cos, 0.99),))
    assert gate(g, track_gate=0.5) == (0.5,)  # the config wins
    with caplog.at_level(logging.WARNING):
        assert gate(None) == (-1.0,)
    assert "no track gate" in caplog.text


def test_a_view_that_does_not_earn_the_name_contradicts_it() -> None:
    from celebface.recognition.registry import embedder_config

    rec = VideoTracker(Recognizer(colour_gallery("dlib"), detector=BlobDetector(),
                                  embedder=MeanColourEmbedder()))  # threshold 0.9
    one, many = embedder_config("dlib").name_drop["none"]
    assert rec.policy.name_drop == (one, many) and one > many
    photos = rec.recognizer.gallery.counts()["red"]
    drop = rec.policy.drop_for("red")
    assert drop == (one if photos == 1 else many)  # a one-photo person's own views spread more
    t = Track(1, (0, 0, 1, 1))
    t.shown = Match("red", 0.95, "blue", 0.5)
    names = rec.names

    def view(**score: float) -> tuple[np.ndarray, Match]:
        row = np.array([score.get(n, 0.1) for n in names], np.float32)
        return row, rec._decide(row[None])[0]

    assert not rec.contradicts(t, *view(red=0.95))  # earns it
    assert not rec.contradicts(t, *view(red=0.88, blue=0.8))  # a little under, closest red
    assert rec.contradicts(t, *view(red=0.5, blue=0.95))  # names another person
    assert rec.contradicts(t, *view(red=0.88, blue=0.89))  # under, and closer to blue
    assert rec.contradicts(t, *view(red=0.9 - drop - 0.01))  # far under, closest red
    t.shown = Match(UNKNOWN, 0.5, "red", 0.5)  # an unknown track has no name to lose
    assert not rec.contradicts(t, *view(blue=0.95))


def test_gate_per_view_count_and_a_view_that_earns_the_name_stays() -> None:
    rec = VideoTracker(Recognizer(colour_gallery("dlib"), detector=BlobDetector(),
                                  embedder=MeanColourEmbedder(),
                                  config=RecognizerConfig(tracker=TrackerConfig())))  # thr 0.9
    rec.track_gate = (0.5, 0.9)  # 1 view: 0.5, 2 or more: 0.9
    names = rec.names

    def view(**score: float) -> tuple[np.ndarray, Match]:
        row = np.array([score.get(n, 0.1) for n in names], np.float32)
        return row, rec._decide(row[None])[0]

    t = Track(1, (0, 0, 1, 1))
    t.add(np.array([1.0, 0.0, 0.0]), 0, same_view=0.99)
    probe = np.array([0.8, 0.6, 0.0])  # cosine 0.8 with the one view
    assert not rec.leaves(t, probe, *view(red=0.5))  # one view: gate 0.5
    t.add(np.array([0.0, 0.0, 1.0]), 1, same_view=0.99)
    assert rec.leaves(t, probe, *view(red=0.5))  # two views: gate 0.9
    t.shown = Match("red", 0.95, "blue", 0.5)
    assert rec.leaves(t, probe, *view(red=0.85))  # under the track's threshold: it leaves
    assert not rec.leaves(t, probe, *view(red=0.95))  # it earns "red" by itself: it stays
    assert rec.policy.track_threshold(2) < 0.9
    assert not rec.leaves(t, probe, *view(red=rec.policy.track_threshold(2) + 1e-4))


def test_track_agreement_is_the_best_of_its_latest_views() -> None:
    from celebface.streaming.tracker import RECENT

    t = Track(1, (0, 0, 1, 1))
    assert t.agreement(np.array([1.0, 0.0, 0.0])) == 1.0  # nothing seen yet
    angles = np.linspace(0, np.pi / 2, RECENT + 1)  # RECENT + 1 distinct views in turn
    for i, a in enumerate(angles):
        t.add(np.array([np.cos(a), np.sin(a), 0.0]), i, same_view=0.99)
        t.add(np.array([np.cos(a), np.sin(a), 0.01]), i, same_view=0.99)  # a near-duplicate
    assert len(t.views) == RECENT + 1
    # the first view is no longer among the latest: only the later ones count
    assert t.agreement(np.array([1.0, 0.0, 0.0])) == pytest.approx(np.cos(angles[1]), abs=1e-3)
    assert t.agreement(np.array([0.0, 1.0, 0.0])) == pytest.approx(1.0, abs=1e-3)


def test_tracker_coasts_at_the_last_velocity() -> None:
    tr = IoUTracker()
    (t,) = tr.update([Face((0, 0, 10, 10))], frame=0)
    tr.update([Face((4, 0, 14, 10))], frame=2)  # 2 px a frame to the right
    (c,) = tr.coast(3)
    assert c is t and c.box == pytest.approx((6, 0, 16, 10))
    # the prediction is what the next detection is matched against (IoU with the old box
    # would be 1/4, below match_iou=0.4)
    tr2 = IoUTracker(TrackerConfig(match_iou=0.4))
    tr2.update([Face((0, 0, 10, 10))], frame=0)
    tr2.update([Face((4, 0, 14, 10))], frame=2)
    (t2,) = tr2.update([Face((10, 0, 20, 10))], frame=5)
    assert t2.id == 1
    tr2.end_all()
    assert [x.id for x in tr2.update([Face((10, 0, 20, 10))], frame=6)] == [2]


def test_cut_detector(rng: np.random.Generator) -> None:
    from celebface.streaming.cuts import MIN_SHOT_FRAMES, CutDetector
    from celebface.streaming.synthetic import background

    a, b = background(320, 180, rng), background(320, 180, rng)
    pan = [np.roll(a, 2 * i, axis=1) for i in range(10)]  # a camera pan: the same colours
    cuts = CutDetector(27.0)
    got = [cuts.update(f) for f in [*pan, b, b, *pan[:3]]]
    # the cut is reported on the frame it happens; a second within MIN_SHOT_FRAMES is not
    assert got == [False] * 10 + [True] + [False] * 4 and MIN_SHOT_FRAMES > 3
    assert not any(CutDetector(0.0).update(f) for f in (a, b))
    cuts.reset()
    assert not cuts.update(b)  # a new video: its first frame is no cut


def test_box_change_sees_another_face_take_the_place(rng: np.random.Generator) -> None:
    from celebface.streaming.cuts import BoxChange

    img = np.full((240, 320, 3), 128, np.uint8)
    green, moved, blue = img.copy(), img.copy(), img.copy()
    sprite = colour_sprite("green", rng)
    green[90:150, 130:180] = sprite
    moved[90:150, 133:183] = sprite  # the face moved 3 px: the same face
    blue[90:150, 130:180] = colour_sprite("blue", rng) // 3  # brightness is what it compares
    box = (130.0, 90.0, 180.0, 150.0)
    change = BoxChange(28.0)
    assert not change.changed(BoxChange.crop(green, box), moved, box)
    assert change.changed(BoxChange.crop(green, box), blue, box)
    assert not change.changed(BoxChange.crop(blue, box), blue, box)
    outside = (400.0, 0.0, 420.0, 20.0)
    assert BoxChange.crop(blue, outside) is None
    assert not change.changed(None, blue, box) and not change.changed(
        BoxChange.crop(green, box), blue, outside)


# ------------------------------------------------------------------ recogniser
def test_recognizer_tracks_and_names_a_moving_video(rng: np.random.Generator) -> None:
    names = ["red", "green", "blue", "yellow"]
    frames, truth = grey_video(names, 24, rng)
    det, emb = BlobDetector(), MeanColourEmbedder()
    cfg = RecognizerConfig(video_detect_side=160,
                           tracker=TrackerConfig(reembed_every=8, detect_every=1))
    rec = VideoTracker(Recognizer(colour_gallery(), detector=det, embedder=emb, config=cfg))
    track_names: dict[int, set[str]] = {}
    for frame, boxes in zip(frames, truth, strict=True):
        faces = rec.process_frame(frame)
        assert len(faces) == 4
        for face in faces:
            # boxes come back in full-frame pixels although detection ran at half size
            best = max(boxes, key=lambda b, f=face: box_iou(f.box, b))
            assert box_iou(face.box, best) > 0.8
            expected = names[boxes.index(best)]
            assert face.identity == expected
            assert face.runner_up in names and face.runner_up != expected
            track_names.setdefault(face.track_id, set()).add(face.identity)
    assert det.sizes[0] == (120, 160)
    assert len(track_names) == 4 and all(len(v) == 1 for v in track_names.values())
    # the tracker embeds far fewer faces than it reports (new, moved, or every 8 frames)
    assert rec.stats.faces == 96 and rec.stats.embedded < 60
    assert set(rec.stats.per_frame_ms()) == {"detect", "embed", "match", "track"}

    # without the tracker every face of every frame is embedded and names are per frame
    rec2 = VideoTracker(Recognizer(colour_gallery(), detector=BlobDetector(),
                                   embedder=MeanColourEmbedder(),
                                   config=RecognizerConfig(video_detect_side=160, track=False)))
    for frame in frames[:5]:
        faces = rec2.process_frame(frame)
        assert all(f.track_id is None for f in faces)
    assert rec2.stats.embedded == 20


def test_new_person_and_shot_cut_start_new_tracks(rng: np.random.Generator) -> None:
    def frame(name: str, grey: int) -> np.ndarray:
        img = np.full((240, 320, 3), grey, np.uint8)
        img[90:150, 130:180] = colour_sprite(name, rng)
        return img

    # red, then blue in the same place (no cut: an appearance jump), then a cut to green
    frames = ([frame("red", 128)] * 6 + [frame("blue", 128)] * 6 + [frame("green", 40)] * 6)
    det = BlobDetector()
    rec = VideoTracker(Recognizer(colour_gallery(), detector=det, embedder=MeanColourEmbedder(),
                                  config=RecognizerConfig(video_detect_side=0,
                                                          tracker=TrackerConfig(detect_every=3,
                                                                                reembed_every=3))))
    got = [rec.process_frame(f) for f in frames]
    assert all(len(fs) == 1 for fs in got)
    ids = [fs[0].track_id for fs in got]
    names = [fs[0].identity for fs in got]
    assert rec.cut_frames == [12]
    assert names == ["red"] * 6 + ["blue"] * 6 + ["green"] * 6
    # detection on frames 0, 3, 6, 9, the cut at 12, then 15: the blue face is seen at frame
    # 6, and its track is new (not red's with a new name)
    assert ids == [1] * 6 + [2] * 6 + [3] * 6
    assert len(det.sizes) == 6
    # coasted frames carry the track's name and the last embedded frame's own score
    assert got[1][0].embedding is None and got[0][0].embedding is not None
    assert got[1][0].similarity == pytest.approx(got[0][0].similarity)
    # with no cut test, no box-change test and no gate, a view that names another person
    # still splits the track (its name is not earned), at the next detection
    lax = VideoTracker(Recognizer(
        colour_gallery(), detector=BlobDetector(), embedder=MeanColourEmbedder(),
        config=RecognizerConfig(video_detect_side=0, tracker=TrackerConfig(
            detect_every=3, reembed_every=3, cut_threshold=0, box_change=0, track_gate=-1))))
    got = [lax.process_frame(f)[0] for f in frames]
    assert [f.track_id for f in got] == [1] * 6 + [2] * 6 + [3] * 6
    assert [f.identity for f in got] == ["red"] * 6 + ["blue"] * 6 + ["green"] * 6


def test_recognize_still_image_unknown_and_threshold(rng: np.random.Generator) -> None:
    img = np.full((200, 300, 3), 128, np.uint8)
    img[20:80, 20:70] = colour_sprite("red", rng)
    img[100:160, 200:250] = (200, 60, 200)  # purple: nobody in the gallery
    rec = Recognizer(colour_gallery(), detector=BlobDetector(), embedder=MeanColourEmbedder())
    faces = sorted(rec.recognize(img), key=lambda f: f.box[0])
    assert [f.identity for f in faces] == ["red", UNKNOWN]
    assert faces[1].runner_up in COLOURS and faces[1].similarity < 0.9
    assert faces[0].embedding is not None and faces[0].embedding.shape == (3,)
    lenient = Recognizer(colour_gallery(), detector=BlobDetector(),
                         embedder=MeanColourEmbedder(), config=RecognizerConfig(threshold=-1))
    assert UNKNOWN not in {f.identity for f in lenient.recognize(img)}


def test_uncalibrated_gallery_warns(caplog: pytest.LogCaptureFixture) -> None:
    g = colour_gallery()
    g.thresholds.clear()
    with caplog.at_level(logging.WARNING):
        rec = Recognizer(g, detector=BlobDetector(), embedder=MeanColourEmbedder())
    assert "no calibrated" in caplog.text and rec.threshold == 0.5
    assert rec.policy.source == "fallback" and not rec.policy.calibrated


# ------------------------------------------------------------------ sources
def test_classify_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "v.mp4").write_bytes(b"x")
    assert classify(str(tmp_path)).kind == "folder"
    assert classify(str(tmp_path / "a.jpg")).kind == "image"
    assert classify(str(tmp_path / "v.mp4")).kind == "video"
    assert classify("rtsp://example.invalid/live").kind == "stream"
    with pytest.raises(FileNotFoundError, match="no such file"):
        classify(str(tmp_path / "missing.jpg"))


@pytest.mark.timeout(60)
def test_missing_camera_and_dead_stream_fail_fast() -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open camera"):
        list(iter_frames(Source("camera", "97")))
    cfg = StreamConfig(reconnects=1, reconnect_delay_s=0.05, open_timeout_s=2,
                       read_timeout_s=2)
    with pytest.raises(SourceError, match="cannot open stream"):
        list(iter_frames(Source("stream", "http://127.0.0.1:9/live.mjpg"), cfg))
    assert time.monotonic() - start < 20


@pytest.mark.timeout(30)
def test_stream_that_drops_reconnects_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.streaming import sources

    opened = {"n": 0}

    class FlakyCapture:
        def __init__(self) -> None:
            opened["n"] += 1
            self.left = 2 if opened["n"] == 1 else 0  # only the first connection works

        def read(self):
            if self.left:
                self.left -= 1
                return True, np.zeros((4, 4, 3), np.uint8)
            return False, None

        def release(self) -> None:
            pass

    monkeypatch.setattr(sources, "_open_capture", lambda s, c: FlakyCapture())
    cfg = StreamConfig(reconnects=2, reconnect_delay_s=0.0)
    frames = []
    with pytest.raises(SourceError, match="gave up after 2 reconnect"):
        for f in iter_frames(Source("stream", "rtsp://cam/1"), cfg):
            frames.append(f)
    assert opened["n"] == 3 and len(frames) == 2 and frames[-1].index == 1


def test_video_file_and_bad_files(tmp_path: Path, rng: np.random.Generator) -> None:
    frames, _ = grey_video(["red"], 6, rng)
    path = write_video(frames, tmp_path / "clip.avi", fps=10)
    got = list(iter_frames(Source("video", str(path))))
    assert len(got) == 6 and got[0].rgb.shape == (240, 320, 3) and got[1].time_s == 0.1
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot open video"):
        list(iter_frames(Source("video", str(tmp_path / "broken.mp4"))))
    # a folder: the bad image and the bad video are reported and skipped
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.fromarray(frames[0]).save(folder / "ok.png")
    (folder / "bad.jpg").write_bytes(b"nope")
    (folder / "bad.mp4").write_bytes(b"nope")
    got = list(iter_frames(Source("folder", str(folder))))
    assert [f.relpath for f in got] == ["ok.png"]


def test_run_inputs_writes_jsonl_images_and_video(tmp_path: Path, rng: np.random.Generator,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    frames, _ = grey_video(["red", "blue"], 8, rng)
    video = write_video(frames, tmp_path / "clip.avi", fps=8)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(frames[0]).save(photos / "one.png")
    (photos / "corrupt.jpg").write_bytes(b"x")
    for name in ("a.avi", "b.avi"):  # videos inside a folder: each its own output and tracks
        write_video(frames, photos / name, fps=8)
    rec = VideoTracker(Recognizer(colour_gallery(), detector=BlobDetector(),
                                  embedder=MeanColourEmbedder(),
                                  config=RecognizerConfig(video_detect_side=0)))
    srcs = [classify(str(video)), classify(str(photos)), Source("camera", "98")]
    with caplog.at_level(logging.WARNING):
        sinks = output_sinks(srcs, jsonl=tmp_path / "out.jsonl", out=tmp_path / "ann",
                             show=True, progress=False)
        s = run_inputs(rec, srcs, sinks)
    assert "no display" in caplog.text
    assert s.frames == 25 and s.faces == 50 and s.sources_ok == 2
    assert len(s.errors) == 1 and "camera 98" in s.errors[0]
    assert s.identities == {"red": 25, "blue": 25}
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 25 and lines[0]["frame"] == 0 and lines[0]["time_s"] == 0.0
    first = {Path(r["source"]).name: r for r in lines if r["frame"] == 0}
    ids = [sorted(f["track_id"] for f in first[v]["faces"]) for v in ("clip.avi", "a.avi", "b.avi")]
    assert ids[0] == ids[1] == ids[2]  # tracks start afresh in every video
    for name in ("a.mp4", "b.mp4"):
        assert (tmp_path / "ann" / "photos" / name).stat().st_size > 0
    face = lines[0]["faces"][0]
    assert {"box", "identity", "similarity", "runner_up", "track_id"} <= set(face)
    assert (tmp_path / "ann" / "clip.mp4").stat().st_size > 0
    annotated = tmp_path / "ann" / "photos" / "one.jpg"
    assert annotated.is_file() and Image.open(annotated).size == (320, 240)
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "ann").glob(".*"))
