"""The shared gallery store under faults (issue 31, item 4), on fake models (no model files):
each test replays one defect, on the folder store and, with $CELEBFACE_TEST_PG set (`.ci/run`
starts a server), on PostgreSQL. Numbers are the issue's defect numbers."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import Gallery
from celebface.gallery.stores import copy_gallery, open_store
from celebface.io import encode_jpeg
from celebface.recognition.spec import EmbedderSpec
from fakes import BlobDetector, MeanColourEmbedder, ProjectionEmbedder

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient

from celebface.serve import ServeConfig, create_app
from celebface.serve.service import FaceService

ADMIN_URL = os.environ.get("CELEBFACE_TEST_PG")
RED, GREEN, BLUE = (250, 20, 20), (20, 250, 20), (20, 20, 250)


def photo(colour: tuple[int, int, int], side: int = 120) -> bytes:
    """A grey picture with one saturated square (the fake detector's face; its colour is the
    fake embedder's vector)."""
    img = np.full((240, 240, 3), 128, np.uint8)
    lo = (240 - side) // 2
    img[lo : lo + side, lo : lo + side] = colour
    return encode_jpeg(img, 95)


def fake_models() -> tuple[MeanColourEmbedder, BlobDetector]:
    return MeanColourEmbedder(), BlobDetector()


@pytest.fixture(params=["folder", "pg"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A gallery location: a folder, or a fresh PostgreSQL database."""
    if request.param == "folder":
        yield str(tmp_path / "gallery")
        return
    if not ADMIN_URL:
        pytest.skip("CELEBFACE_TEST_PG is not set (.ci/run starts a PostgreSQL server)")
    psycopg = pytest.importorskip("psycopg")
    name = f"celebface_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def config(location: str, **options) -> ServeConfig:
    where = {"store": location} if "://" in location else {"gallery": Path(location)}
    return ServeConfig(**where, device="cpu", workers=2, **options)


def client(location: str, models=None, **options) -> TestClient:
    app = create_app(config(location, **options), models=models or fake_models())
    return TestClient(app, base_url="http://localhost", raise_server_exceptions=False)


def enrolled(location: str, people: dict[str, tuple[int, int, int]]) -> None:
    with client(location) as c:
        for name, colour in people.items():
            assert c.post(f"/v1/people/{name}/photos", content=photo(colour)).status_code == 200


def service(location: str, **options) -> FaceService:
    s = FaceService(config(location, **options), fake_models())
    s.start()
    return s


# ---------------------------------------------------------------- 1: rename never merges
def test_1_renames_to_one_name_never_merge_without_merge(store: str) -> None:
    """Two renames of different people to one new name: the second is refused (409) when
    the name was taken after its server last read the gallery (apply time decides)."""
    enrolled(store, {"a": RED, "b": GREEN})
    one, two = service(store), service(store)  # both read the gallery: zed1 is free
    try:
        assert one.rename("a", "zed1")["merged"] is False
        from celebface.serve.service import RequestError

        with pytest.raises(RequestError) as err:
            two.rename("b", "zed1")  # its published gallery is older than a's rename
        assert err.value.status == 409 and err.value.code == "name_taken"
        g = open_store(store).load()
        assert sorted(g.names) == ["b", "zed1"] and g.counts() == {"zed1": 1, "b": 1}
        merged = two.rename("b", "zed1", merge=True)  # asked for: merged, and said so
        assert merged["merged"] is True and open_store(store).load().counts() == {"zed1": 2}
    finally:
        one.close()
        two.close()


def test_1_concurrent_http_renames_to_one_name(store: str) -> None:
    enrolled(store, {"a": RED, "b": GREEN})
    with client(store) as c:
        answers: list[int] = []

        def rename(who: str) -> None:
            answers.append(c.patch(f"/v1/people/{who}", json={"name": "zed1"}).status_code)

        threads = [threading.Thread(target=rename, args=(w,)) for w in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(answers) == [200, 409]
    assert open_store(store).load().counts() in ({"zed1": 1, "b": 1}, {"a": 1, "zed1": 1})


# ---------------------------------------------------------------- 2: no password leaves
@pytest.mark.parametrize("text", [
    "postgresql://u:s3cret@db.example:5432/faces",
    "postgresql://u@db.example/faces?password=s3cret&sslmode=require",
    "postgresql://u@db.example/faces?sslmode=require&PASSWORD=s3cret",
    "host=db.example user=u password=s3cret dbname=faces",
    "host=db.example password = 's3 cret' dbname=faces",
    "connection to postgres://u:s3cret@[::1]:5/x failed",
])
def test_2_redact_every_form(text: str) -> None:
    from celebface.gallery.store import redact

    out = redact(text)
    assert "s3cret" not in out and "s3 cret" not in out and "***" in out
    assert "db.example" in out or "::1" in out  # the rest stays readable


def test_2_redact_a_known_secret_anywhere() -> None:
    from celebface.gallery.store import redact

    assert redact("FATAL: bad option s3cret!", "s3cret") == "FATAL: bad option ***!"
    assert redact("postgresql://[bad") == "postgresql://[bad"  # never raises


def test_2_password_stays_in_the_process(store: str, caplog: pytest.LogCaptureFixture,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A store unreachable mid-run: the 503 says only that the store is unavailable (no
    user, host, port or database), and no log line holds the password."""
    if "://" not in store:
        pytest.skip("a database store")
    url = f"{store}?password=s3cret"  # trust auth ignores it; it must still never show
    enrolled(url, {"a": RED})
    caplog.set_level(logging.DEBUG)
    with client(url) as c:
        pg = c.app.state.service.store
        pg.url = "postgresql://u@127.0.0.1:1/nodb?password=s3cret&connect_timeout=2"
        pg.close()
        r = c.post("/v1/people/b/photos", content=photo(GREEN))
        assert r.status_code == 503
        assert r.json() == {"detail": "the gallery store is unavailable",
                            "code": "store_unavailable"}
        listed = c.get("/v1/people")  # reads go on with the gallery loaded before
        assert listed.status_code == 200 and [p["name"] for p in listed.json()["people"]] == ["a"]
    assert "s3cret" not in caplog.text and "cannot connect" in caplog.text
    from celebface.cli.main import main

    for bad in ["postgresql://u@127.0.0.1:1/nodb?password=s3cret&connect_timeout=2",
                "postgresql://u:s3cret@127.0.0.1:1/nodb?connect_timeout=2",
                "host=127.0.0.1 password=s3cret"]:
        code = main(["enroll", "--store", bad, "--remove", "a"])
        out = capsys.readouterr()
        assert code == 2 and "s3cret" not in out.out + out.err, out
    assert "s3cret" not in caplog.text


# ---------------------------------------------------------------- 3: a held lock
def _hold_lock(store: str) -> tuple[threading.Event, threading.Thread]:
    """Another writer holding the gallery's lock until the returned event is set."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with open_store(store).lock():
            held.set()
            release.wait(120)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert held.wait(30)
    return release, t


def test_3_a_held_lock_gives_a_bounded_answer_and_nothing_late(store: str) -> None:
    enrolled(store, {"a": RED})
    before = open_store(store).version()
    with client(store) as c:
        c.app.state.service.config.edit_timeout = 1.0  # --edit-timeout 1
        release, holder = _hold_lock(store)
        answers: list = []
        edit = threading.Thread(target=lambda: answers.append(
            c.post("/v1/people/b/photos", content=photo(GREEN))), daemon=True)
        start = time.monotonic()
        edit.start()
        edit.join(20)
        waited = time.monotonic() - start
        try:
            assert answers, "the edit still waits for the lock after 20 s"
            r = answers[0]
            assert r.status_code == 503 and r.json()["code"] == "store_busy", r.text
            assert int(r.headers["Retry-After"]) >= 1 and waited < 10
            ok = c.post("/v1/recognize", content=photo(RED))  # reads are not held up
            assert ok.status_code == 200 and ok.json()["faces"][0]["identity"] == "a"
        finally:
            release.set()
            holder.join(30)
            edit.join(30)
        time.sleep(0.5)
        assert open_store(store).version() == before  # nothing applied after the answer
        assert open_store(store).load().names == ["a"]
        again = c.post("/v1/people/b/photos", content=photo(GREEN))  # the lock is free now
        assert again.status_code == 200


def test_3_store_edit_timeout(store: str) -> None:
    from celebface.gallery.store import StoreBusyError

    enrolled(store, {"a": RED})
    release, holder = _hold_lock(store)
    try:
        start = time.monotonic()
        with pytest.raises(StoreBusyError, match="another writer"):
            open_store(store).edit(lambda g: g.remove("a"), timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        release.set()
        holder.join(30)
    assert open_store(store).load().names == ["a"]


# ---------------------------------------------------------------- 4: another embedder
def other_gallery(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    g = Gallery(embedder={"name": "other", "tta": "none",
                          "settings": {"model": "other", "dim": 5}})
    g.add(rng.normal(size=(2, 5)), ["x", "y"], ["x.jpg", "y.jpg"])
    g.save(tmp_path / "other")
    return tmp_path / "other"


def test_4_embedder_changed_under_the_server_is_refused_not_500(store: str, tmp_path: Path
                                                                ) -> None:
    """A server handed its models cannot load another embedder: it keeps serving the
    gallery it has (the replacement is refused and logged), never a 500."""
    enrolled(store, {"a": RED})
    with client(store) as c:
        assert c.post("/v1/recognize", content=photo(RED)).status_code == 200
        copy_gallery(other_gallery(tmp_path), store, replace=True)
        for _ in range(2):
            r = c.post("/v1/recognize", content=photo(RED))
            assert r.status_code == 200, r.text
            assert r.json()["faces"][0]["identity"] == "a"
        refused = c.post("/v1/people/b/photos", content=photo(GREEN))
        assert refused.status_code == 409 and "embedder" in refused.json()["detail"]
        assert open_store(store).load().names == ["x", "y"]  # the new gallery untouched
        gone = c.patch("/v1/people/a", json={"name": "z"})  # not in the stored gallery
        assert gone.status_code == 404 and gone.json()["code"] == "not_found", gone.text
        assert c.post("/v1/recognize", content=photo(RED)).status_code == 200


def test_4_embedder_changed_under_the_server_is_loaded(store: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that built its own models builds the new gallery's embedder."""
    enrolled(store, {"a": RED})
    built: list[str] = []

    def build(spec, device="auto"):
        built.append(spec.name)
        return ProjectionEmbedder("other", 5, 0)

    monkeypatch.setattr(EmbedderSpec, "build", build)
    monkeypatch.setattr(FaceService, "_build_models", lambda self: fake_models())
    app = create_app(config(store))  # no models handed over: the service builds its own
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        copy_gallery(other_gallery(tmp_path), store, replace=True)
        r = c.post("/v1/recognize", content=photo(RED))
        assert r.status_code == 200, r.text
        assert built == ["other"] and r.json()["faces"][0]["identity"] in ("x", "y", "unknown")
        assert c.get("/v1/people").json()["total"] == 2


# ---------------------------------------------------------------- 6: bounded video jobs
def test_6_video_jobs_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.serve import videos
    from serve_helpers import write_y4m

    gate = threading.Event()
    monkeypatch.setattr(videos.VideoJobs, "_run", lambda self, job, path: gate.wait(60))
    clip = write_y4m(tmp_path / "c.y4m", np.full((64, 64, 3), 90, np.uint8), frames=2,
                     size=(64, 48)).read_bytes()
    try:
        with client(str(tmp_path / "g"), max_videos=2) as c:
            codes = [c.post("/v1/videos?filename=c.y4m", content=clip) for _ in range(4)]
            assert [r.status_code for r in codes] == [202, 202, 503, 503]
            assert codes[2].json()["code"] == "busy" and "Retry-After" in codes[2].headers
    finally:
        gate.set()


# ---------------------------------------------------------------- 7: JSON errors, never 500
def test_7_full_disk_during_an_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import celebface.gallery.store as store_module

    where = tmp_path / "gallery"
    enrolled(str(where), {"a": RED})
    files = sorted(p.name for p in where.iterdir())
    real = store_module.atomic_write_json

    def full(path, *args, **kwargs):
        if Path(path).name == "gallery.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store_module, "atomic_write_json", full)
    with client(str(where)) as c:
        r = c.post("/v1/people/b/photos", content=photo(GREEN))
        assert r.status_code == 503 and r.json()["code"] == "store_write_failed", r.text
        assert str(tmp_path) not in r.text
        assert sorted(p.name for p in where.iterdir()) == files  # no orphan embeddings-*.npz
        assert [p["name"] for p in c.get("/v1/people").json()["people"]] == ["a"]


def test_7_damaged_vector_row_keeps_the_loaded_gallery(store: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    if "://" not in store:
        pytest.skip("a database store")
    import psycopg

    enrolled(store, {"a": RED, "b": GREEN})
    with client(store) as c:
        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute("UPDATE photos SET vector = '\\x0000'::bytea WHERE position = 1")
            conn.execute("UPDATE gallery SET version = version + 1")
        with caplog.at_level(logging.ERROR):
            for _ in range(2):
                r = c.post("/v1/recognize", content=photo(GREEN))
                assert r.status_code == 200, r.text
                assert r.json()["faces"][0]["identity"] == "b"
        assert "damaged" in caplog.text
        assert sum("damaged" in m for m in caplog.messages) == 1  # logged once, not per request
        edit = c.post("/v1/people/c/photos", content=photo(BLUE))
        assert edit.status_code == 409 and edit.json()["code"] == "gallery_refused"
        assert "damaged" in edit.text and "127.0.0.1" not in edit.text  # no host, port, db


def test_7_deeply_nested_json_is_a_400(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with client(str(tmp_path / "g")) as c:
        for path in ("/v1/recognize", "/v1/people/a/photos"):
            r = c.post(path, content=deep, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["code"] == "bad_json", r.text
        r = c.patch("/v1/people/a", content='{"name": ' + deep + "}",
                    headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "code" in r.json()


def test_7_an_unexpected_error_is_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enrolled(str(tmp_path / "g"), {"a": RED})

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(FaceService, "people", broken)
    with client(str(tmp_path / "g")) as c:
        r = c.get("/v1/people")
        assert r.status_code == 500 and r.json()["code"] == "internal_error"


# ---------------------------------------------------------------- thumbnails in the store
def test_thumbnails_live_in_the_store(store: str, tmp_path: Path) -> None:
    """A photo added through one server shows its thumbnail on another and after a
    restart, and in the gallery exported elsewhere; a removed photo's thumbnail goes."""
    with client(store) as one, client(store) as two:
        assert one.post("/v1/people/ann/photos", content=photo(RED)).status_code == 200
        [pid] = [p["id"] for p in two.get("/v1/people/ann/photos").json()["photos"]]
        first = one.get(f"/v1/people/ann/photos/{pid}/thumbnail")
        other = two.get(f"/v1/people/ann/photos/{pid}/thumbnail")
        assert first.status_code == other.status_code == 200
        assert other.content == first.content and other.content[:2] == b"\xff\xd8"
        assert two.get("/v1/people/ann/thumbnail").content == first.content
    with client(store) as again:  # a restarted server
        assert again.get(f"/v1/people/ann/photos/{pid}/thumbnail").content == first.content
        again.post("/v1/people/ann/photos", content=photo(BLUE))
        copied = tmp_path / "copy"
        copy_gallery(store, copied)
        assert open_store(copied).thumbnails([pid]) == {pid: first.content}
        assert again.delete(f"/v1/people/ann/photos/{pid}").status_code == 200
    assert open_store(store).thumbnails([pid]) == {}


# ---------------------------------------------------------------- edits that change nothing
def test_an_edit_that_changes_nothing_writes_nothing(store: str) -> None:
    enrolled(store, {"a": RED})
    s = open_store(store)
    before = s.version()
    s.edit(lambda g: g.names.index("a"))
    assert s.version() == before
    s.edit(lambda g: g.info.update(note="x"))
    assert s.version() != before


def test_enroll_add_of_nothing_new_writes_nothing(store: str, tmp_path: Path) -> None:
    from celebface.gallery import EnrollConfig, enroll

    for name, colour in {"ann": RED, "bob": GREEN}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "1.jpg").write_bytes(photo(colour))
    cfg = EnrollConfig(device="cpu")
    enroll(tmp_path / "data", store, config=cfg, models=fake_models(), progress=False)
    before = open_store(store).version()
    enroll(tmp_path / "data", store, add=True, config=cfg, models=fake_models(), progress=False)
    assert open_store(store).version() == before
