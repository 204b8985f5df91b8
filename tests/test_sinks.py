"""Streaming as events and sinks: what a sink receives, in which order, and what a failing or
stopping sink leaves of the other sinks' outputs (stand-in models, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.recognizer import Recognizer
from celebface.streaming import (
    BaseSink,
    End,
    RecognizerConfig,
    Source,
    SourceError,
    Start,
    StreamConfig,
    VideoTracker,
    classify,
    events,
    output_sinks,
    run_inputs,
)
from celebface.streaming.sinks import Recognised, StopRun
from celebface.streaming.synthetic import write_video
from fakes import BlobDetector, MeanColourEmbedder
from test_stream import colour_gallery, grey_video


class Recorder(BaseSink):
    """Writes down every call it gets; raises ``fail`` (an exception) at frame ``at``."""

    def __init__(self, fail: BaseException | None = None, at: int = -1) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.fail, self.at = fail, at

    def on_start(self, start: Start) -> None:
        self.calls.append(("start", start.name, start.fps, start.size, start.is_video))

    def on_frame(self, result: Recognised) -> None:
        self.calls.append(("frame", result.frame.index, len(result.faces)))
        if self.fail is not None and len(self.frames()) - 1 == self.at:
            raise self.fail

    def on_end(self, end: End) -> None:
        self.calls.append(("end", end.frames))

    def close(self) -> None:
        self.calls.append(("close",))

    def frames(self) -> list[tuple]:
        return [c for c in self.calls if c[0] == "frame"]


def recognizer() -> VideoTracker:
    return VideoTracker(Recognizer(colour_gallery(), detector=BlobDetector(),
                                   embedder=MeanColourEmbedder(),
                                   config=RecognizerConfig(video_detect_side=0)))


@pytest.fixture
def clip(tmp_path: Path, rng: np.random.Generator) -> Path:
    frames, _ = grey_video(["red", "blue"], 6, rng)
    return write_video(frames, tmp_path / "clip.avi", fps=8)


def test_a_sink_gets_start_frames_end_in_order_with_the_video_fps(
        tmp_path: Path, clip: Path, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(folder / "one.png")
    write_video(grey_video(["red"], 3, rng)[0], folder / "two.avi", fps=5)
    opened: list[str] = []
    real = cv2.VideoCapture

    def capture(*args: object) -> object:
        opened.append(str(args[0]))
        return real(*args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    sink = Recorder()
    s = run_inputs(recognizer(), [classify(str(clip)), classify(str(folder))], [sink])
    frames = [("frame", i, 2) for i in range(6)]
    assert sink.calls == [
        ("start", "clip.avi", 8.0, (320, 240), True), *frames, ("end", 6),
        ("start", "photos/one.png", 0.0, (30, 40), False), ("frame", 0, 0), ("end", 1),
        ("start", "photos/two.avi", 5.0, (320, 240), True),
        ("frame", 0, 1), ("frame", 1, 1), ("frame", 2, 1), ("end", 3),
        ("close",)]
    assert s.frames == 10 and s.sources_ok == 2
    # the frame rate comes with the start: each video is opened once, never again to ask it
    assert sorted(opened) == sorted([str(clip), str(folder / "two.avi")])


def test_a_stream_that_gives_up_still_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.streaming import sources

    class OneFrame:
        def __init__(self) -> None:
            self.left = 1

        def read(self) -> tuple[bool, np.ndarray | None]:
            self.left -= 1
            return (True, np.zeros((4, 6, 3), np.uint8)) if self.left >= 0 else (False, None)

        def release(self) -> None:
            pass

    monkeypatch.setattr(sources, "_open_capture", lambda s, c: OneFrame())
    got: list[object] = []
    with pytest.raises(SourceError, match="gave up"):
        for event in events(Source("stream", "rtsp://cam/1"), StreamConfig(reconnects=0), 3):
            got.append(event)
    assert [type(e).__name__ for e in got] == ["Start", "Frame", "End"]
    assert got[0] == Start("rtsp://cam/1", "stream3", (6, 4), 0.0, True)
    assert got[2] == End("rtsp://cam/1", 1)


def test_a_failing_sink_keeps_what_the_others_wrote(tmp_path: Path, clip: Path) -> None:
    """A sink that raises ends the run with its error, after every sink got that frame and the
    end of the video and was closed: JSON Lines, annotated video and timeline are all kept."""
    srcs = [classify(str(clip)), classify(str(clip))]
    before = Recorder()
    broken = Recorder(OSError(28, "No space left on device"), at=2)
    sinks = output_sinks(srcs, jsonl=tmp_path / "out.jsonl", out=tmp_path / "ann",
                         timeline=tmp_path / "tl", progress=False)
    with pytest.raises(OSError, match="No space left"):
        run_inputs(recognizer(), srcs, [before, broken, *sinks])
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x)["frame"] for x in lines] == [0, 1, 2]
    assert (tmp_path / "ann" / "clip.mp4").stat().st_size > 0
    assert not list((tmp_path / "ann").glob(".*"))  # no partial file left behind
    found = json.loads((tmp_path / "tl" / "clip" / "appearances.json").read_text())
    assert [a["frames"] for a in found["appearances"]] == [3, 3]
    for sink in (before, broken):
        assert sink.calls[-3:] == [("frame", 2, 2), ("end", 3), ("close",)]
    assert not (tmp_path / "ann" / "clip-2.mp4").exists()  # the second source never began


def test_a_sink_that_stops_ends_the_run_after_the_frame(tmp_path: Path, clip: Path) -> None:
    srcs = [classify(str(clip)), classify(str(clip))]
    stopper, after = Recorder(StopRun(), at=1), Recorder()
    s = run_inputs(recognizer(), srcs, [stopper, after])
    assert after.calls == [("start", "clip.avi", 8.0, (320, 240), True), ("frame", 0, 2),
                           ("frame", 1, 2), ("end", 2), ("close",)]
    assert s.frames == 2 and s.sources_ok == 1 and not s.errors


def test_video_timeline_is_the_same_loop(tmp_path: Path, clip: Path) -> None:
    from celebface.errors import InputError
    from celebface.streaming import video_timeline

    done: list[int] = []
    found = video_timeline(recognizer(), clip, tmp_path / "tl", on_frame=done.append)
    assert done == [1, 2, 3, 4, 5, 6]
    assert sorted(a.person for a in found) == ["blue", "red"]
    data = json.loads((tmp_path / "tl" / "appearances.json").read_text())
    assert data["source"] == str(clip) and data["duration_s"] == pytest.approx(6 / 8)
    (tmp_path / "still.png").write_bytes((tmp_path / "tl" / "timeline.png").read_bytes())
    with pytest.raises(InputError, match="not a video file"):
        video_timeline(recognizer(), tmp_path / "still.png")
    (tmp_path / "bad.avi").write_bytes(b"nope")
    with pytest.raises(SourceError, match="cannot open video"):
        video_timeline(recognizer(), tmp_path / "bad.avi")
