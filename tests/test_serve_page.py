"""What the web page needs from the service (issue 31, item 5), on fake models: names shown
everywhere, one card per shown name, search and paging of people, the key's scope, no CDN
page, and a server that stops at once on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")

from serve_helpers import free_port, gallery_copy, held_out
from test_store_faults import BLUE, GREEN, RED, client, photo

SRC = Path(__file__).resolve().parents[1] / "src"


def test_rename_to_another_persons_shown_name_is_refused_or_merged(tmp_path: Path) -> None:
    """``madonna`` renamed "Ben Afflek" while ``ben_afflek`` is shown so: 409 (not two cards
    with one name); with merge, her photos go to ``ben_afflek``."""
    where = str(tmp_path / "g")
    with client(where) as c:
        for name, colour in {"ben_afflek": RED, "madonna": GREEN}.items():
            assert c.post(f"/v1/people/{name}/photos", content=photo(colour)).status_code == 200
        r = c.patch("/v1/people/madonna", json={"name": "Ben Afflek"})
        assert r.status_code == 409 and r.json()["code"] == "name_taken"
        assert "ben_afflek" in r.json()["detail"]
        r = c.patch("/v1/people/madonna", json={"name": "ben afflek", "merge": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["merged"] is True and body["name"] == "ben_afflek"
        assert body["label"] == "Ben Afflek" and body["from_label"] == "Madonna"
        people = c.get("/v1/people").json()["people"]
        assert [(p["name"], p["label"], p["photos"]) for p in people] == [
            ("ben_afflek", "Ben Afflek", 2)]
        # renaming someone to their own shown name is a plain rename
        r = c.patch("/v1/people/ben_afflek", json={"name": "Ben Afflek"})
        assert r.status_code == 200 and r.json()["merged"] is False


def test_replies_carry_the_shown_name(tmp_path: Path) -> None:
    with client(str(tmp_path / "g")) as c:
        added = c.post("/v1/people/jerry_seinfeld/photos", content=photo(RED)).json()
        assert added["label"] == "Jerry Seinfeld"
        [pid] = [p["id"] for p in c.get("/v1/people/jerry_seinfeld/photos").json()["photos"]]
        c.post("/v1/people/jerry_seinfeld/photos", content=photo(BLUE))
        gone = c.delete(f"/v1/people/jerry_seinfeld/photos/{pid}").json()
        assert gone["label"] == "Jerry Seinfeld"
        assert c.delete("/v1/people/jerry_seinfeld").json()["label"] == "Jerry Seinfeld"


def test_video_appearances_carry_the_shown_name(tmp_path: Path) -> None:
    from celebface.serve.videos import VideoJob

    job = VideoJob("j1", "clip.mp4", tmp_path, 10, 25.0, status="done", appearances=[
        {"person": "ben_afflek", "track": 1}, {"person": "unknown-2", "track": 2}])
    shown = [a["label"] for a in job.to_dict()["appearances"]]
    assert shown == ["Ben Afflek", "unknown-2"]


def test_people_search_and_paging(tmp_path: Path) -> None:
    with client(str(tmp_path / "g")) as c:
        for i, name in enumerate(["ann_lee", "bob", "annie", "carl"]):
            colour = (250, 20 + 50 * i, 20)
            assert c.post(f"/v1/people/{name}/photos", content=photo(colour)).status_code == 200
        found = c.get("/v1/people?q=ANN").json()
        assert [p["name"] for p in found["people"]] == ["ann_lee", "annie"]
        assert found["total"] == 2
        assert [p["name"] for p in c.get("/v1/people?q=Ann Lee").json()["people"]] == [
            "ann_lee"]  # the shown name matches too
        page = c.get("/v1/people?size=3&page=1").json()
        assert page["total"] == 4 and page["pages"] == 2
        assert [p["name"] for p in page["people"]] == ["carl"]


def test_health_tells_the_keys_scope(tmp_path: Path) -> None:
    with client(str(tmp_path / "g")) as c:
        assert c.get("/health").json()["scope"] == "admin"  # keys off: everything allowed
    with client(str(tmp_path / "g"), api_key="adm1n", recognize_keys=("r3ad",)) as c:
        assert "scope" not in c.get("/health").json()
        assert c.get("/health", headers={"X-API-Key": "r3ad"}).json()["scope"] == "recognize"
        assert c.get("/health", headers={"X-API-Key": "adm1n"}).json()["scope"] == "admin"
        assert c.get("/redoc").status_code == 404  # it would fetch its logo from a CDN


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_the_server_at_once(five_celeb: Path, tmp_path: Path) -> None:
    """`celebface serve` that has named a face exits within 2 s of SIGTERM (it took 5 s:
    the models' native libraries tearing down)."""
    gallery = gallery_copy(five_celeb, tmp_path)
    port = free_port()
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "celebface.cli.main", "serve",
                             str(gallery), "--port", str(port), "--device", "cpu",
                             "--workers", "1"], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
                break
            except OSError:
                time.sleep(0.3)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/recognize", method="POST",
                                     data=held_out(five_celeb, "madonna").read_bytes())
        named = json.loads(urllib.request.urlopen(req, timeout=120).read())
        assert named["faces"][0]["identity"] == "madonna"
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM" in log.read_text()
    assert took < 2.0, f"{took:.2f} s"


def test_adding_photos_under_another_persons_shown_name_is_refused(tmp_path: Path) -> None:
    """"Ben Afflek" when ``ben_afflek`` is shown so: 409 naming him (no second card)."""
    with client(str(tmp_path / "g")) as c:
        assert c.post("/v1/people/ben_afflek/photos", content=photo(RED)).status_code == 200
        r = c.post("/v1/people/Ben Afflek/photos", content=photo(GREEN))
        assert r.status_code == 409 and "ben_afflek" in r.json()["detail"]
        assert c.post("/v1/people/ben_afflek/photos", content=photo(GREEN)).status_code == 200
        assert c.get("/v1/people").json()["total"] == 1
