"""Timeline of appearances: builder, files, CLI, enrolling renamed unknown tracks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.recognizer import Recognizer
from celebface.streaming import (
    RecognizerConfig,
    TrackerConfig,
    VideoTracker,
    output_sinks,
    run_inputs,
)
from celebface.streaming.synthetic import write_video
from celebface.streaming.timeline import (
    TimelineBuilder,
    renamed_faces,
    thumbnail,
    write_timeline,
)
from celebface.types import UNKNOWN, Face
from test_stream import BlobDetector, MeanColourEmbedder, colour_gallery, colour_sprite


def named(box, name, sim, track, embedded=True) -> Face:
    return Face(box, identity=name, similarity=sim, track_id=track,
                embedding=np.ones(3, np.float32) if embedded else None)


def test_builder_appearances_and_files(tmp_path: Path) -> None:
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[10:30, 10:30] = 200
    b = TimelineBuilder(fps=10)
    b.add(0, 0.0, rgb, [named((10, 10, 30, 30), "amy", 0.90, 1)])
    b.add(1, 0.1, rgb, [named((10, 10, 30, 30), "amy", 0.97, 1),
                        named((100, 50, 120, 80), UNKNOWN, 0.5, 2)])
    b.add(2, 0.2, rgb, [named((12, 10, 32, 30), "amy", 0.99, 1, embedded=False),
                        named((100, 50, 140, 90), UNKNOWN, 0.4, 2)])
    b.add(5, 0.5, rgb, [named((0, 0, 10, 10), UNKNOWN, 0.3, 7)])
    apps, thumbs = b.appearances()
    assert [(a.person, a.track, a.first_frame, a.last_frame, a.frames) for a in apps] == [
        ("amy", 1, 0, 2, 3), ("unknown-1", 2, 1, 2, 2), ("unknown-2", 7, 5, 5, 1)]
    amy = apps[0]
    # scores of embedded frames only; the end is the last frame's end
    assert amy.best_score == 0.97 and amy.mean_score == pytest.approx(0.935)
    assert amy.start_s == 0.0 and amy.end_s == pytest.approx(0.3)
    # unknown: the largest face is its thumbnail (40 px box + 40% margin each side, clipped
    # at the frame's bottom)
    assert thumbs[apps[1].thumbnail].shape[:2] == (66, 72)
    write_timeline(tmp_path, apps, thumbs, 0.6, "clip.mp4")
    with (tmp_path / "appearances.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["person"] for r in rows] == ["amy", "unknown-1", "unknown-2"]
    assert rows[0]["best_score"] == "0.97" and rows[0]["end_s"] == "0.3"
    data = json.loads((tmp_path / "appearances.json").read_text())
    assert data["duration_s"] == 0.6 and data["appearances"][1]["shown"] == "unknown-1"
    assert Image.open(tmp_path / "timeline.png").size[0] > 300
    for r in rows:
        assert Image.open(tmp_path / r["thumbnail"]).format == "JPEG"


def test_thumbnail_clips_to_the_frame() -> None:
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    assert thumbnail(img, (0, 0, 50, 50)).shape == (70, 70, 3)
    assert thumbnail(img, (80, 80, 100, 100), margin=0.5).shape == (30, 30, 3)


def test_renamed_faces(tmp_path: Path) -> None:
    rgb = np.full((60, 60, 3), 90, np.uint8)
    b = TimelineBuilder()
    b.add(0, None, rgb, [named((5, 5, 25, 25), "amy", 0.9, 1),
                         named((30, 30, 50, 50), UNKNOWN, 0.4, 2)])
    b.add(1, None, rgb, [named((5, 5, 25, 25), UNKNOWN, 0.4, 3)])
    write_timeline(tmp_path, *b.appearances(), 0.1)
    assert renamed_faces(tmp_path) == []
    table = tmp_path / "appearances.csv"
    rows = list(csv.DictReader(table.open()))
    rows[1]["person"] = "zoe"  # a renamed unknown track
    rows[0]["person"] = "amy"  # unchanged: already in the gallery
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert renamed_faces(tmp_path) == [("zoe", tmp_path / "thumbnails/track0002.jpg")]
    rows[2]["person"] = "../evil"
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert renamed_faces(tmp_path) == [("zoe", tmp_path / "thumbnails/track0002.jpg")]
    with pytest.raises(ValueError, match="no such file"):
        renamed_faces(tmp_path / "nothing")


def test_run_inputs_writes_a_timeline(tmp_path: Path, rng: np.random.Generator) -> None:
    """Two shots: red and purple (nobody), then a cut to blue: three appearances."""
    def frame(names: list[str], grey: int) -> np.ndarray:
        img = np.full((240, 320, 3), grey, np.uint8)
        for i, n in enumerate(names):
            x = 40 + 150 * i
            img[90:150, x:x + 50] = (colour_sprite(n, rng) if n != "purple"
                                     else np.array((200, 60, 200), np.uint8))
        return img

    frames = [frame(["red", "purple"], 128)] * 10 + [frame(["blue"], 60)] * 10
    video = write_video(frames, tmp_path / "clip.avi", fps=10)
    rec = VideoTracker(Recognizer(colour_gallery(), detector=BlobDetector(),
                                  embedder=MeanColourEmbedder(),
                                  config=RecognizerConfig(video_detect_side=0,
                                                          tracker=TrackerConfig(detect_every=3))))
    from celebface.streaming import classify

    srcs = [classify(str(video))]
    s = run_inputs(rec, srcs, output_sinks(srcs, timeline=tmp_path / "tl", progress=False))
    assert s.appearances == 3
    data = json.loads((tmp_path / "tl" / "appearances.json").read_text())
    got = [(a["person"], a["first_frame"], a["last_frame"], a["frames"])
           for a in data["appearances"]]
    assert got == [("red", 0, 9, 10), ("unknown-1", 0, 9, 10), ("blue", 10, 19, 10)]
    assert data["appearances"][2]["start_s"] == pytest.approx(1.0)
    assert (tmp_path / "tl" / "timeline.png").is_file()


@pytest.mark.integration
@pytest.mark.slow
def test_cli_timeline_then_enroll_the_unknown(pins: Path, tmp_path: Path) -> None:
    """Real faces: A is enrolled, B is not; B's unknown track, renamed in the CSV, is enrolled
    from its thumbnail and named in the next run."""
    from celebface.cli.main import main
    from celebface.io import read_image
    from celebface.streaming.synthetic import moving_faces
    from test_recognize import PINS_IDS, STRANGERS, link_subset, rows

    a, b = PINS_IDS[0], STRANGERS[0]
    g = str(tmp_path / "g")
    train = link_subset(pins, tmp_path / "train", [a], "train", 4)
    assert main(["enroll", str(train), "--out", g, "--detector", "none", "--device", "cpu"]) == 0
    crops = [read_image(rows(pins, p, "val", 1)[0]).rgb for p in (a, b)]
    clip = moving_faces(crops, n_frames=12, size=(480, 270), face_height=120, speed=4, seed=2)
    video = write_video(clip.frames, tmp_path / "clip.avi", fps=12)
    tl = tmp_path / "tl"
    # a threshold on the default embedder's (dlib+sface) scale
    args = ["recognize", str(video), "--gallery", g, "--device", "cpu", "--threshold", "0.78"]
    assert main([*args, "--timeline", str(tl)]) == 0
    table = tl / "appearances.csv"
    got = list(csv.DictReader(table.open()))
    assert sorted(r["person"] for r in got) == sorted([a, "unknown-1"])
    assert all(int(r["frames"]) >= 10 for r in got)
    assert main(["enroll", "--from-timeline", str(tl), "--out", g, "--add"]) == 2  # none renamed
    for r in got:
        if r["person"] == "unknown-1":
            r["person"] = b
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(got[0]))
        w.writeheader()
        w.writerows(got)
    assert main(["enroll", "--from-timeline", str(tl), "--out", g, "--add", "--device",
                 "cpu"]) == 0
    assert main([*args, "--timeline", str(tmp_path / "tl2")]) == 0
    again = list(csv.DictReader((tmp_path / "tl2" / "appearances.csv").open()))
    assert sorted(r["person"] for r in again) == sorted([a, b])
    # the facade gives the same appearances
    import celebface

    apps = celebface.timeline(video, g, device="cpu", detect_every=2)
    assert sorted(x.person for x in apps) == sorted([a, b])
    assert all(x.frames >= 10 and x.end_s > x.start_s for x in apps)


def test_service_video_job(tmp_path: Path, rng: np.random.Generator) -> None:
    """POST /v1/videos streams the upload, a job finds the appearances, GET reports them."""
    pytest.importorskip("fastapi")
    import time

    from fastapi.testclient import TestClient

    from celebface.serve import ServeConfig, create_app

    colour_gallery().save(tmp_path / "g")
    frames = []
    for _ in range(12):
        img = np.full((240, 320, 3), 128, np.uint8)
        img[90:150, 40:90] = colour_sprite("red", rng)
        img[90:150, 200:250] = (200, 60, 200)  # purple: nobody
        frames.append(img)
    video = write_video(frames, tmp_path / "clip.avi", fps=12).read_bytes()
    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu"),
                     models=(MeanColourEmbedder(), BlobDetector()))
    with TestClient(app, base_url="http://localhost") as client:
        r = client.post("/v1/videos?filename=clip.avi", content=video)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["frames_total"] == 12 and job["status"] in ("queued", "running", "done")
        deadline = time.monotonic() + 30
        while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/v1/videos/{job['id']}").json()
        assert job["status"] == "done", job
        assert job["progress"] == 1.0 and job["frames_done"] == 12
        got = sorted((a["person"], a["frames"]) for a in job["appearances"])
        assert got == [("red", 12), ("unknown-1", 12)]
        thumb = client.get(job["appearances"][0]["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        # browsers play no MJPEG AVI: the page gets a WebM copy (EBML header), 12 frames
        copy = client.get(job["video_url"])
        assert copy.status_code == 200 and copy.content[:4] == b"\x1a\x45\xdf\xa3"
        (tmp_path / "copy.webm").write_bytes(copy.content)
        import cv2

        cap = cv2.VideoCapture(str(tmp_path / "copy.webm"))
        assert sum(1 for _ in iter(lambda: cap.read()[0], False)) == 12
        # bad uploads: one line each naming the user's file, no job
        bad = client.post("/v1/videos?filename=clip.avi", content=b"not a video")
        assert bad.status_code == 415 and bad.json()["detail"].startswith("clip.avi: not a video")
        assert client.post("/v1/videos?filename=x.txt", content=video).status_code == 415
        assert client.get("/v1/videos/nope").status_code == 404
        assert "timeline" in client.get("/video").text


def test_service_video_limits_and_playable_uploads(tmp_path: Path, rng: np.random.Generator
                                                   ) -> None:
    """--max-video-mb is the video upload's own limit (413 naming the file); a WebM upload
    plays as it is (no copy)."""
    pytest.importorskip("fastapi")
    import time

    from fastapi.testclient import TestClient

    from celebface.serve import ServeConfig, create_app

    colour_gallery().save(tmp_path / "g")
    frames = [np.full((120, 160, 3), 128, np.uint8) for _ in range(6)]
    for f in frames:
        f[30:90, 50:100] = colour_sprite("red", rng)
    video = write_video(frames, tmp_path / "clip.webm", fps=6).read_bytes()
    big = b"\0" * 300_000
    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu", max_body_mb=0.1,
                                 max_video_mb=0.2),
                     models=(MeanColourEmbedder(), BlobDetector()))
    with TestClient(app, base_url="http://localhost") as client:
        r = client.post("/v1/videos?filename=holiday.mp4", content=big)
        assert r.status_code == 413
        assert r.json()["detail"] == "holiday.mp4: larger than 0.2 MB (--max-video-mb)"
        # a video under --max-video-mb but over --max-body-mb is taken
        assert 0.1 * 2**20 < len(big[:150_000]) < 0.2 * 2**20
        r = client.post("/v1/videos?filename=holiday.mp4", content=big[:150_000])
        assert r.status_code == 415 and r.json()["detail"].startswith("holiday.mp4: ")
        job = client.post("/v1/videos?filename=clip.webm", content=video).json()
        deadline = time.monotonic() + 30
        while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/v1/videos/{job['id']}").json()
        assert job["status"] == "done" and job["video_url"] is None
        r = client.get(f"/v1/videos/{job['id']}/video")
        assert r.status_code == 404 and "clip.webm" in r.json()["detail"]


def test_service_reads_the_videos_it_accepts(tmp_path: Path, rng: np.random.Generator) -> None:
    """Issue 31: a .y4m upload was accepted (202) and then always failed (the service's list
    of video suffixes and the video reader's disagreed), its error showing a server path."""
    pytest.importorskip("fastapi")
    import time

    from fastapi.testclient import TestClient

    from celebface.serve import ServeConfig, create_app
    from celebface.serve.videos import SUFFIXES
    from celebface.streaming.sources import VIDEO_EXTENSIONS
    from serve_helpers import write_y4m

    colour_gallery().save(tmp_path / "g")
    img = np.full((240, 320, 3), 128, np.uint8)
    img[90:150, 40:90] = colour_sprite("red", rng)
    clip = write_y4m(tmp_path / "clip.y4m", img, frames=6, size=(320, 240)).read_bytes()
    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu"),
                     models=(MeanColourEmbedder(), BlobDetector()))
    with TestClient(app, base_url="http://localhost") as client:
        jobs = []
        for name, body in (("clip.y4m", clip), ("broken.y4m", clip[:60] + b"\0" * 9000)):
            r = client.post(f"/v1/videos?filename={name}", content=body)
            if r.status_code == 415:  # refused at once: one line, no server path
                assert str(tmp_path) not in r.text and "/tmp" not in r.json()["detail"]
                continue
            assert r.status_code == 202, r.text
            jobs.append(r.json())
        assert jobs and jobs[0]["filename"] == "clip.y4m"
        done = []
        for job in jobs:
            deadline = time.monotonic() + 30
            while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
                time.sleep(0.1)
                job = client.get(f"/v1/videos/{job['id']}").json()
            done.append(job)
        assert done[0]["status"] == "done", done[0]
        assert [a["person"] for a in done[0]["appearances"]] == ["red"]
        for job in done[1:]:
            assert "/" not in (job["error"] or ""), job
    assert SUFFIXES == VIDEO_EXTENSIONS
