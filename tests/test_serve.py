"""`celebface serve`: the HTTP API on real five_celeb photos, and its safety rules."""

from __future__ import annotations

import io
import json
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.gallery import Gallery
from celebface.serve import ServeConfig
from celebface.serve.metrics import Metrics
from celebface.types import person_name as check_name

fastapi = pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from serve_helpers import (  # noqa: E402
    PEOPLE,
    STRANGERS,
    gallery_copy,
    held_out,
    models,
    photos,
    running,
)


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    """A tiny PNG whose header claims ``w`` x ``h`` pixels (400 M: over Pillow's limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


# ------------------------------------------------------------------ unit tests
def test_config_defaults_are_safe() -> None:
    c = ServeConfig()
    assert c.host == "127.0.0.1" and c.api_key is None and c.cors_origins == ()
    assert c.max_body_bytes == 10 * 1024 * 1024 and c.workers >= 1
    with pytest.raises(ValueError):
        ServeConfig(max_body_mb=0)


@pytest.mark.parametrize("name", ["", " ", "a/b", "a\\b", "x" * 65, "x" * 200, "bell\x07", ".",
                                  "..", "unknown", "Unknown", " lead", "trail ", "new\nline",
                                  "\uff55\uff4e\uff4b\uff4e\uff4f\uff57\uff4e", "tab\tbed",
                                  "zero\u200bwidth", "bad\udcffname", "b\ufffdb"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


@pytest.mark.parametrize("name", ["madonna", "Jerry Seinfeld", "Zoë Saldaña", "x" * 64])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


def test_web_packages_stay_out_of_import_celebface() -> None:
    import subprocess
    import sys

    code = ("import sys, celebface, celebface.cli.main, celebface.serve; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_cli_reads_the_key_from_the_environment(monkeypatch, capsys, tmp_path: Path) -> None:
    import uvicorn

    import celebface.serve.app as app_module
    from celebface.cli.main import main

    seen: dict = {}
    monkeypatch.setattr(app_module, "create_app", lambda config: seen.update(c=config))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(run=kw))
    monkeypatch.setenv("CELEBFACE_API_KEY", "from-env")
    assert main(["serve", str(tmp_path), "--port", "8123", "--max-body-mb", "2"]) == 0
    c = seen["c"]
    assert c.api_key == "from-env" and c.host == "127.0.0.1" and c.port == 8123
    assert c.max_body_bytes == 2 * 1024 * 1024 and c.workers >= 1 and c.torch_threads >= 1
    assert seen["run"]["host"] == "127.0.0.1" and seen["run"]["port"] == 8123
    main(["serve", str(tmp_path), "--api-key", "flag", "--cors-origin", "http://a.example"])
    assert seen["c"].api_key == "flag" and seen["c"].cors_origins == ("http://a.example",)
    monkeypatch.delenv("CELEBFACE_API_KEY")
    seen.clear()
    capsys.readouterr()
    # a non-loopback address without a key is refused (one line, exit 2) unless --insecure
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "without an API key" in err and "--insecure" in err and err.count("\n") == 1
    assert "c" not in seen
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0", "--insecure"]) == 0
    assert seen["c"].api_key is None and seen["c"].insecure is True
    assert "without an API key" in capsys.readouterr().err


def test_a_gallery_emptied_by_the_api_saves_and_loads(tmp_path: Path) -> None:
    g = Gallery(path=tmp_path)
    g.add(np.eye(2, 4, dtype=np.float32), ["a", "a"], ["s1", "s2"])
    g.save()
    assert g.remove("a") == 2
    g.save()  # the last person removed: still a valid (empty) gallery
    assert len(Gallery.load(tmp_path)) == 0 and Gallery.load(tmp_path).names == []


def test_metrics_text() -> None:
    m = Metrics()
    m.observe("POST", "/v1/recognize", 200, 0.3)
    m.observe("POST", "/v1/recognize", 415, 0.001)
    text = m.render({"gallery_embeddings": 9})
    assert 'celebface_requests_total{method="POST",route="/v1/recognize",status="415"} 1' in text
    assert 'celebface_request_seconds_bucket{route="/v1/recognize",le="0.5"} 2' in text
    assert 'celebface_request_seconds_count{route="/v1/recognize"} 2' in text
    assert "celebface_gallery_embeddings 9" in text


# ------------------------------------------------------------------ the API on real photos
@pytest.fixture(scope="module")
def served(five_celeb: Path, tmp_path_factory: pytest.TempPathFactory):
    gallery = gallery_copy(five_celeb, tmp_path_factory.mktemp("serve"))
    app = fastapi_app(gallery)
    with TestClient(app) as client:
        yield client, gallery


def fastapi_app(gallery: Path, **options):
    from celebface.serve import create_app

    options.setdefault("allowed_hosts", ("testserver",))  # TestClient's Host
    return create_app(ServeConfig(gallery=gallery, device="cpu", workers=2, **options),
                      models=models())


def read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.integration
@pytest.mark.slow
class TestAPI:
    def test_health_page_docs_metrics(self, served) -> None:
        client, gallery = served
        h = client.get("/health").json()
        assert h["status"] == "ok" and h["identities"] == 3 and h["embeddings"] == 9
        # an uncalibrated 3-person gallery: the size-aware default (celebface.gallery.policy)
        from celebface.gallery.policy import policy_for

        want = policy_for(Gallery.load(gallery), "centroid").threshold
        assert h["threshold"] == pytest.approx(want, abs=1e-3) and h["calibrated"] is False
        page = client.get("/")
        assert page.status_code == 200 and "<canvas" in page.text
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        assert {"/v1/recognize", "/v1/verify", "/v1/people"} <= set(spec["paths"])
        metrics = client.get("/metrics")
        assert 'route="/health",status="200"' in metrics.text
        assert "celebface_gallery_identities 3" in metrics.text
        assert "access-control-allow-origin" not in client.get(
            "/health", headers={"Origin": "http://elsewhere.example"}).headers

    def test_recognize_names_enrolled_people(self, served, five_celeb: Path) -> None:
        client, _ = served
        for person in PEOPLE:
            data = read(held_out(five_celeb, person))
            raw = client.post("/v1/recognize", content=data)
            form = client.post("/v1/recognize", files={"image": ("x.bin", data, "text/plain")})
            assert raw.status_code == form.status_code == 200, (raw.text, form.text)
            assert raw.json() == form.json()
            out = raw.json()
            face = max(out["faces"], key=lambda f: (f["box"][2] - f["box"][0]))
            assert face["identity"] == person, out
            assert face["similarity"] >= out["threshold"]
            assert face["runner_up"] in PEOPLE and face["runner_up"] != person
            assert len(face["landmarks"]) == 5
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= out["width"] + 1 and 0 <= y1 < y2 <= out["height"] + 1

    def test_strangers_are_unknown(self, served, five_celeb: Path) -> None:
        client, _ = served
        for person in STRANGERS:
            out = client.post("/v1/recognize", content=read(held_out(five_celeb, person))).json()
            assert out["faces"], out
            assert all(f["identity"] == "unknown" for f in out["faces"]), out
            assert all(f["runner_up"] in PEOPLE for f in out["faces"])

    def test_bad_photos_get_4xx_with_a_reason(self, served, five_celeb: Path) -> None:
        client, _ = served
        good = read(held_out(five_celeb, "madonna"))
        cases = [
            (client.post("/v1/recognize", content=b""), 400, "empty"),
            (client.post("/v1/recognize", content=b"%PDF-1.4 not a photo"), 415, "not an image"),
            (client.post("/v1/recognize", content=good[: len(good) // 3]), 400, "truncated"),
            (client.post("/v1/recognize", content=bomb_png()), 413, "too large"),
            (client.post("/v1/recognize", content=b"\0" * (10 * 1024 * 1024 + 1)), 413, "larger"),
            (client.post("/v1/recognize", files={"photo": ("a.jpg", good)}), 400, "'image'"),
            (client.post("/v1/recognize", data={"image": "text"}, files={"x": ("x", b"1")}),
             400, "must be a file"),
            (client.post("/v1/verify", content=good), 415, "multipart"),
        ]
        for response, status, words in cases:
            assert response.status_code == status, (status, response.text)
            detail = response.json()["detail"]
            assert words in detail and "\n" not in detail

    def test_body_limit_is_a_flag(self, five_celeb: Path, tmp_path: Path) -> None:
        app = fastapi_app(gallery_copy(five_celeb, tmp_path), max_body_mb=0.01)
        photo = read(held_out(five_celeb, "madonna"))
        with TestClient(app) as client:
            r = client.post("/v1/recognize", content=photo)
            assert r.status_code == 413 and "10,485 bytes" in r.json()["detail"]
            # no Content-Length (chunked): counted as it streams in
            chunks = [photo[i : i + 4096] for i in range(0, len(photo), 4096)]
            r = client.post("/v1/recognize", content=iter(chunks))
            assert r.status_code == 413, r.text
            form = (b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="a"'
                    b"\r\n\r\n" + photo + b"\r\n--b0undary--\r\n")
            r = client.post("/v1/people/x/photos", content=iter([form[:5000], form[5000:]]),
                            headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
            assert r.status_code == 413, r.text
            small = client.post("/v1/recognize", content=iter([photo[:2000]]))
            assert small.status_code == 400  # under the limit: read, and found truncated

    def test_verify(self, served, five_celeb: Path, tmp_path: Path) -> None:
        client, _ = served
        ben = photos(five_celeb, "ben_afflek", "val", 2)
        jerry = held_out(five_celeb, "jerry_seinfeld")

        def verify(a: bytes, b: bytes):
            return client.post("/v1/verify", files={"image1": ("a", a), "image2": ("b", b)})

        mirrored = jpeg(np.ascontiguousarray(np.asarray(Image.open(ben[0]))[:, ::-1]))
        same = verify(read(ben[0]), mirrored).json()
        assert same["same"] is True and same["score"] >= same["threshold"], same
        other = verify(read(ben[0]), read(jerry)).json()
        assert other["same"] is False and other["score"] < other["threshold"], other
        assert len(other["faces"]) == 2 and len(other["faces"][1]["landmarks"]) == 5
        two_bens = verify(read(ben[0]), read(ben[1])).json()
        assert two_bens["score"] > other["score"], (two_bens, other)
        from celebface.gallery.policy import measured_pair_threshold

        assert same["threshold"] == pytest.approx(measured_pair_threshold("dlib", "none"), abs=1e-4)
        assert not any(f["whole_image"] for f in other["faces"])
        # no face found: 400 no_face, unless the caller says the photos are crops
        blank = jpeg(np.full((120, 160, 3), 90, np.uint8))
        r = verify(read(ben[0]), blank)
        assert r.status_code == 400 and r.json()["code"] == "no_face", r.text
        assert r.json()["detail"].startswith("image2: no face found")
        crop = client.post("/v1/verify?crop=true", files={"image1": ("a", read(ben[0])),
                                                          "image2": ("b", blank)}).json()
        assert crop["same"] is False and crop["faces"][1]["whole_image"] is True, crop
        assert crop["faces"][1]["box"] == [0.0, 0.0, 159.0, 119.0]
        # two face-less photos (a synthetic landscape, a real temple) are not "the same"
        from test_verify import non_faces

        a, b = non_faces(tmp_path)
        r = verify(a.read_bytes(), b.read_bytes())
        assert r.status_code == 400 and r.json()["code"] == "no_face", r.text
        assert r.json()["detail"].startswith("image1: no face found")
        r = verify(read(ben[0]), a.read_bytes())
        assert r.status_code == 400 and r.json()["code"] == "no_face", r.text

    def test_enrol_recognize_remove(self, served, five_celeb: Path) -> None:
        client, gallery = served
        new = photos(five_celeb, "elton_john", "train", 2)
        files = [("image", (p.name, read(p), "image/jpeg")) for p in new]
        files.append(("image", ("notes.txt", b"not a photo", "text/plain")))
        r = client.post("/v1/people/elton_john/photos", files=files)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["added"] == 2 and out["photos"] == 2 and out["identities"] == 4
        assert "not an image" in out["skipped"][0]["reason"]
        assert "elton_john" in Gallery.load(gallery).names  # saved through the atomic store
        people = {p["name"]: p["photos"] for p in client.get("/v1/people").json()["people"]}
        assert people == {"ben_afflek": 3, "jerry_seinfeld": 3, "madonna": 3, "elton_john": 2}
        thumb = client.get("/v1/people/elton_john/thumbnail")
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        # the live recogniser knows him now: his closest match (named, or the runner-up of an
        # unknown when 2 photos leave him under the uncalibrated threshold)
        seen = client.post("/v1/recognize", content=read(held_out(five_celeb, "elton_john")))
        face = seen.json()["faces"][0]
        best = face["identity"] if face["identity"] != "unknown" else face["runner_up"]
        assert best == "elton_john", seen.text
        # same photo again: replaced, not counted twice
        again = client.post("/v1/people/elton_john/photos", content=read(new[0])).json()
        assert again["photos"] == 2
        gone = client.delete("/v1/people/elton_john")
        assert gone.status_code == 200 and gone.json()["removed"] == 2
        assert "elton_john" not in Gallery.load(gallery).names
        assert client.delete("/v1/people/elton_john").status_code == 404
        assert client.get("/v1/people/elton_john/thumbnail").status_code == 404

    def test_enrol_refuses_bad_names_and_photos(self, served, five_celeb: Path) -> None:
        client, _ = served
        photo = read(held_out(five_celeb, "mindy_kaling"))
        for name in ["x" * 65, "back\\slash", "unknown", "bell%07"]:
            r = client.post(f"/v1/people/{name}/photos", content=photo)
            assert r.status_code == 400, (name, r.text)
        assert client.post("/v1/people/a%2Fb/photos", content=photo).status_code in (400, 404)
        blank = jpeg(np.full((100, 100, 3), 200, np.uint8))
        r = client.post("/v1/people/nobody/photos", content=blank)
        assert r.status_code == 400 and "no face found" in r.json()["detail"]
        assert r.json()["code"] == "no_face"
        r = client.post("/v1/people/nobody/photos", content=photo[:200])
        assert r.status_code == 400 and "truncated" in r.json()["detail"]
        r = client.post("/v1/people/nobody/photos", content=b"plain text")
        assert r.status_code == 415
        names = [p["name"] for p in client.get("/v1/people").json()["people"]]
        assert "nobody" not in names

    def test_thumbnail_of_a_cli_enrolled_person_is_cut_from_their_photo(self, served) -> None:
        client, _ = served
        r = client.get("/v1/people/madonna/thumbnail")
        assert r.status_code == 200
        assert Image.open(io.BytesIO(r.content)).size == (160, 160)

    def test_two_concurrent_enrolments_are_both_kept(self, served, five_celeb: Path,
                                                     monkeypatch) -> None:
        client, gallery = served
        # Make the race certain: both requests finish embedding together (outside the lock),
        # then each save takes a while. Without the edit lock both would load the same
        # gallery and the second save would drop the first one's person.
        embedder, save = models()[0], Gallery.save
        embed, together = embedder.embed, threading.Barrier(2, timeout=60)

        def embed_together(*args, **kwargs):
            out = embed(*args, **kwargs)
            together.wait()
            return out

        def slow_save(self, *args, **kwargs):
            time.sleep(0.5)
            return save(self, *args, **kwargs)

        monkeypatch.setattr(embedder, "embed", embed_together)
        monkeypatch.setattr(Gallery, "save", slow_save)
        jobs = {"mindy_kaling": photos(five_celeb, "mindy_kaling", "train", 2),
                "elton": photos(five_celeb, "elton_john", "train", 2, start=2)}
        results: dict[str, int] = {}
        barrier = threading.Barrier(len(jobs))

        def post(name: str, paths: list[Path]) -> None:
            files = [("image", (p.name, read(p))) for p in paths]
            barrier.wait()
            results[name] = client.post(f"/v1/people/{name}/photos", files=files).status_code

        threads = [threading.Thread(target=post, args=job) for job in jobs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == {"mindy_kaling": 200, "elton": 200}
        counts = Gallery.load(gallery).counts()
        assert counts["mindy_kaling"] == 2 and counts["elton"] == 2, counts
        people = {p["name"]: p["photos"] for p in client.get("/v1/people").json()["people"]}
        assert people["mindy_kaling"] == 2 and people["elton"] == 2


@pytest.mark.integration
@pytest.mark.slow
def test_api_key_and_cors(five_celeb: Path, tmp_path: Path) -> None:
    app = fastapi_app(gallery_copy(five_celeb, tmp_path), api_key="s3cret",
                      cors_origins=("http://app.example",))
    with TestClient(app) as client:
        assert client.get("/v1/people").status_code == 401
        r = client.post("/v1/recognize", content=b"anything", headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        assert client.get("/v1/people", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.delete("/v1/people/madonna").status_code == 401
        assert client.get("/v1/people", headers={"X-API-Key": "s3cret"}).status_code == 200
        ok = client.get("/v1/people", headers={"Authorization": "Bearer s3cret",
                                               "Origin": "http://app.example"})
        assert ok.status_code == 200 and len(ok.json()["people"]) == 3
        assert ok.headers["access-control-allow-origin"] == "http://app.example"
        assert client.get("/health").status_code == 200  # liveness needs no key


@pytest.mark.integration
@pytest.mark.slow
def test_shutdown_finishes_requests_in_flight(five_celeb: Path, tmp_path: Path) -> None:
    import urllib.request

    app = fastapi_app(gallery_copy(five_celeb, tmp_path))
    data = read(held_out(five_celeb, "madonna"))
    answers: list[tuple[int, dict]] = []
    with running(app) as (url, server):
        def post() -> None:
            req = urllib.request.Request(f"{url}/v1/recognize", data=data, method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                answers.append((r.status, json.loads(r.read())))

        thread = threading.Thread(target=post)
        thread.start()
        while app.state.metrics.in_flight == 0 and thread.is_alive():
            time.sleep(0.005)
        server.should_exit = True  # what uvicorn does on SIGTERM / Ctrl-C
        thread.join(60)
    assert answers and answers[0][0] == 200
    assert answers[0][1]["faces"][0]["identity"] == "madonna"
    assert app.state.service.pool is None  # the pool was drained and stopped


@pytest.mark.integration
@pytest.mark.slow
def test_starts_without_a_gallery_and_creates_it(five_celeb: Path, tmp_path: Path) -> None:
    folder = tmp_path / "new-gallery"
    photo = read(held_out(five_celeb, "jerry_seinfeld"))
    with TestClient(fastapi_app(folder)) as client:
        assert client.get("/health").json()["identities"] == 0
        faces = client.post("/v1/recognize", content=photo).json()["faces"]
        assert faces and faces[0]["identity"] == "unknown"
        files = [("image", (p.name, read(p))) for p in photos(five_celeb, "jerry_seinfeld",
                                                            "train", 3)]
        r = client.post("/v1/people/jerry_seinfeld/photos", files=files)
        assert r.status_code == 200 and r.json()["added"] == 3, r.text
        assert Gallery.load(folder).embedder["name"] == "dlib"
        named = client.post("/v1/recognize", content=photo).json()["faces"]
        assert named[0]["identity"] == "jerry_seinfeld", named
        assert client.delete("/v1/people/jerry_seinfeld").status_code == 200
        assert client.post("/v1/recognize", content=photo).json()["faces"][0]["identity"] \
            == "unknown"
    assert len(Gallery.load(folder)) == 0
