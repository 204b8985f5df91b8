"""The service on the gallery store's write protocol, with real five_celeb photos: one photo
added to two people keeps both; a `celebface enroll --add` running while the server edits is
not lost; the server sees a gallery changed by another process without a restart."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from celebface.gallery import EnrollConfig, Gallery

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient

from serve_helpers import gallery_copy, held_out, models, photos

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SRC = Path(__file__).resolve().parents[1] / "src"


def client_for(gallery: Path) -> TestClient:
    from celebface.serve import ServeConfig, create_app

    return TestClient(create_app(ServeConfig(gallery=gallery, device="cpu", workers=2),
                                 models=models()), base_url="http://localhost")


def people(client: TestClient) -> dict[str, int]:
    return {p["name"]: p["photos"] for p in client.get("/v1/people").json()["people"]}


def person_folder(five_celeb: Path, root: Path, person: str, n: int) -> Path:
    (root / person).mkdir(parents=True)
    for p in photos(five_celeb, person, "train", n):
        (root / person / p.name).symlink_to(p)
    return root


def test_one_photo_added_to_two_people_keeps_both(five_celeb: Path, tmp_path: Path) -> None:
    photo = photos(five_celeb, "mindy_kaling", "train", 1)[0].read_bytes()
    with client_for(gallery_copy(five_celeb, tmp_path)) as client:
        first = client.post("/v1/people/alice/photos", content=photo).json()
        second = client.post("/v1/people/bob/photos", content=photo).json()
        assert first["added"] == 1 and second["added"] == 1
        assert second["identities"] == 5 and second["photos"] == 1
        listed = people(client)
        assert listed["alice"] == 1 and listed["bob"] == 1
        assert client.get("/v1/people/alice/thumbnail").status_code == 200


def test_cli_enrolment_during_a_server_edit_is_kept(five_celeb: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    """The server edits while the CLI embeds: each must save into a fresh read under the lock,
    never a copy read before the other's save (the server used to read without the lock)."""
    enroll_module = importlib.import_module("celebface.gallery.enroll")  # the package's
    # `enroll` attribute is the function
    gallery = gallery_copy(five_celeb, tmp_path)
    data = person_folder(five_celeb, tmp_path / "data", "mindy_kaling", 2)
    embedder = models()[0]
    real_embed, real_items = embedder.embed, enroll_module.embed_items
    server_embedded, cli_waiting = threading.Event(), threading.Event()

    def embed(*args, **kwargs):
        out = real_embed(*args, **kwargs)
        if threading.current_thread().name.startswith("celebface-serve"):
            server_embedded.set()
        return out

    def items_after_the_server(*args, **kwargs):
        cli_waiting.set()
        assert server_embedded.wait(120)
        time.sleep(0.5)  # time for the server's edit to read the gallery
        yield from real_items(*args, **kwargs)

    monkeypatch.setattr(embedder, "embed", embed)
    monkeypatch.setattr(enroll_module, "embed_items", items_after_the_server)
    results: list = []

    def cli() -> None:
        results.append(enroll_module.enroll(
            data, gallery, add=True, models=models(), progress=False,
            config=EnrollConfig(max_side=640, cache_dir=tmp_path / "cache")))

    with client_for(gallery) as client:
        thread = threading.Thread(target=cli, name="cli")
        thread.start()
        assert cli_waiting.wait(120)
        photo = photos(five_celeb, "elton_john", "train", 1)[0].read_bytes()
        r = client.post("/v1/people/elton_john/photos", content=photo)
        thread.join(180)
        assert r.status_code == 200, r.text
        assert results and results[0].added == 2
        on_disk = Gallery.load(gallery).counts()
        assert on_disk.get("mindy_kaling") == 2 and on_disk.get("elton_john") == 1, on_disk
        listed = people(client)
        assert listed.get("mindy_kaling") == 2 and listed.get("elton_john") == 1


def test_server_sees_a_cli_enrolment_without_restart(five_celeb: Path, tmp_path: Path) -> None:
    gallery = gallery_copy(five_celeb, tmp_path)
    data = person_folder(five_celeb, tmp_path / "data", "mindy_kaling", 3)
    with client_for(gallery) as client:
        assert "mindy_kaling" not in people(client)
        cmd = [sys.executable, "-m", "celebface.cli.main", "enroll", str(data), "--out",
               str(gallery), "--add", "--max-side", "640", "--threads", "1", "--device", "cpu"]
        env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin",
               "HOME": str(tmp_path)}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert people(client).get("mindy_kaling") == 3  # the next request reloads
        face = client.post("/v1/recognize",
                           content=held_out(five_celeb, "mindy_kaling").read_bytes()
                           ).json()["faces"][0]
        best = face["identity"] if face["identity"] != "unknown" else face["runner_up"]
        assert best == "mindy_kaling", face
