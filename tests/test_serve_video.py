"""Naming an ``unknown-N`` track of a video job from the service (stand-in models: colour
blobs): its face is enrolled as ``celebface enroll --from-timeline`` would, and the job's
timeline shows the name."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi import FastAPI
from fastapi.testclient import TestClient

from celebface.serve import ServeConfig, create_app
from celebface.streaming.synthetic import write_video
from fakes import BlobDetector, MeanColourEmbedder
from test_stream import colour_gallery, colour_sprite

MAGENTA = (200, 60, 200)


def clip(path: Path, rng: np.random.Generator) -> Path:
    """1 s of red and a magenta stranger, then a cut to blue (20 fps)."""
    frames = []
    for i in range(40):
        img = np.full((240, 320, 3), 128 if i < 20 else 50, np.uint8)
        if i < 20:
            img[90:150, 40 + i:90 + i] = colour_sprite("red", rng)
            img[90:150, 200:250] = MAGENTA
        else:
            img[60:120, 120:170] = colour_sprite("blue", rng)
        frames.append(img)
    return write_video(frames, path, fps=20)


@contextmanager
def finished_job(tmp_path: Path, rng: np.random.Generator, **config: Any
                 ) -> Iterator[tuple[TestClient, dict[str, Any], FastAPI]]:
    colour_gallery().save(tmp_path / "g")
    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu", **config),
                     models=(MeanColourEmbedder(), BlobDetector()))
    video = clip(tmp_path / "clip.webm", rng)
    with TestClient(app, base_url="http://localhost") as client:
        headers = {"X-API-Key": "admin-key"} if config else {}
        job = client.post("/v1/videos?filename=clip.webm", content=video.read_bytes(),
                          headers=headers).json()
        deadline = time.monotonic() + 60
        while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/v1/videos/{job['id']}", headers=headers).json()
        assert job["status"] == "done", job
        yield client, job, app


def magenta_png() -> bytes:
    img = np.full((120, 120, 3), 128, np.uint8)
    img[30:90, 35:85] = MAGENTA
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_naming_an_unknown_track_enrols_its_face(tmp_path: Path,
                                                 rng: np.random.Generator) -> None:
    with finished_job(tmp_path, rng) as (client, job, app):
        people = {a["person"]: a for a in job["appearances"]}
        assert set(people) == {"red", "unknown-1", "blue"}
        assert client.post("/v1/recognize", content=magenta_png()).json()["faces"][0][
            "identity"] == "unknown"
        track = people["unknown-1"]["track"]
        r = client.post(f"/v1/videos/{job['id']}/tracks/{track}/name",
                        json={"name": "magenta_man"})
        assert r.status_code == 200, r.text
        named = {a["track"]: a for a in r.json()["appearances"]}[track]
        assert (named["person"], named["label"]) == ("magenta_man", "Magenta Man")
        assert r.json()["enrolled"]["added"] == 1
        # the job shows the name from now on, the gallery has the person, who is recognised
        again = client.get(f"/v1/videos/{job['id']}").json()
        assert {a["track"]: a["label"] for a in again["appearances"]}[track] == "Magenta Man"
        listed = {p["name"]: p["photos"] for p in client.get("/v1/people").json()["people"]}
        assert listed["magenta_man"] == 1
        assert client.post("/v1/recognize", content=magenta_png()).json()["faces"][0][
            "identity"] == "magenta_man"
        # the job's appearances.csv says so, as a user's edit would for enroll --from-timeline
        jobs = app.state.videos
        table = jobs.get(job["id"]).folder / "timeline" / "appearances.csv"
        rows = {int(r["track"]): r for r in csv.DictReader(table.open(encoding="utf-8"))}
        assert (rows[track]["person"], rows[track]["shown"]) == ("magenta_man", "unknown-1")
        # refused: a recognised track, a track that is not there, an unknown-N name
        red = people["red"]["track"]
        base = f"/v1/videos/{job['id']}/tracks"
        assert client.post(f"{base}/{red}/name", json={"name": "x"}).json()["code"] == \
            "track_named"
        assert client.post(f"{base}/99/name", json={"name": "x"}).status_code == 404
        assert client.post(f"{base}/{track}/name", json={"name": "unknown-7"}).json()[
            "code"] == "invalid_name"


def test_naming_a_track_needs_an_admin_key(tmp_path: Path, rng: np.random.Generator) -> None:
    keys = tmp_path / "keys"
    keys.write_text("admin-key admin\nread-key recognize\n")
    with finished_job(tmp_path, rng, keys_file=keys) as (client, job, _):
        track = next(a["track"] for a in job["appearances"] if a["person"] == "unknown-1")
        url = f"/v1/videos/{job['id']}/tracks/{track}/name"
        r = client.post(url, json={"name": "m"}, headers={"X-API-Key": "read-key"})
        assert r.status_code == 403
        r = client.post(url, json={"name": "m"}, headers={"X-API-Key": "admin-key"})
        assert r.status_code == 200, r.text
