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
from celebface.streaming import (
    IoUTracker,
    Recognizer,
    RecognizerConfig,
    Source,
    SourceError,
    StreamConfig,
    TrackerConfig,
    classify,
    iter_frames,
    run_inputs,
)
from celebface.streaming.synthetic import moving_faces, write_video
from celebface.streaming.tracker import Track
from celebface.types import UNKNOWN, Face, Match, box_iou
from fakes import BlobDetector, MeanColourEmbedder

COLOURS = {"red": (230, 40, 40), "green": (40, 220, 60), "blue": (50, 60, 235),
           "yellow": (235, 225, 40)}


def colour_gallery() -> Gallery:
    g = Gallery(embedder={"name": "meancolour"})
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
    t.record(Match("a", 0.9, "b", 0.5), 0, cfg.vote_window)
    assert not t.needs_embedding(1, cfg)
    t.box = (1, 0, 11, 10)
    assert not t.needs_embedding(2, cfg)
    t.box = (5, 0, 15, 10)  # IoU 1/3
    assert t.needs_embedding(2, cfg)
    t.box = (0, 0, 10, 10)
    assert t.needs_embedding(5, cfg)


def test_track_vote_ignores_a_stray_decision() -> None:
    t = Track(1, (0, 0, 1, 1))
    for ident in ["amy", "amy", "bob", "amy", UNKNOWN]:
        t.record(Match(ident, 0.8 if ident != UNKNOWN else 0.3, "x", 0.2), 0, 7)
    d = t.decision()
    assert d is not None and d.identity == "amy" and d.similarity == pytest.approx(0.8)
    assert d.runner_up == "x"  # latest was unknown: its closest known person


# ------------------------------------------------------------------ recogniser
def test_recognizer_tracks_and_names_a_moving_video(rng: np.random.Generator) -> None:
    names = ["red", "green", "blue", "yellow"]
    frames, truth = grey_video(names, 24, rng)
    det, emb = BlobDetector(), MeanColourEmbedder(flip_call=3)
    cfg = RecognizerConfig(video_detect_side=160, tracker=TrackerConfig(reembed_every=8))
    rec = Recognizer(colour_gallery(), detector=det, embedder=emb, config=cfg)
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
    rec2 = Recognizer(colour_gallery(), detector=BlobDetector(), embedder=MeanColourEmbedder(),
                      config=RecognizerConfig(video_detect_side=160, track=False))
    for frame in frames[:5]:
        faces = rec2.process_frame(frame)
        assert all(f.track_id is None for f in faces)
    assert rec2.stats.embedded == 20


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
    rec = Recognizer(colour_gallery(), detector=BlobDetector(), embedder=MeanColourEmbedder(),
                     config=RecognizerConfig(video_detect_side=0))
    srcs = [classify(str(video)), classify(str(photos)), Source("camera", "98")]
    with caplog.at_level(logging.WARNING):
        s = run_inputs(rec, srcs, jsonl=tmp_path / "out.jsonl", out=tmp_path / "ann",
                       show=True, progress=False)
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
