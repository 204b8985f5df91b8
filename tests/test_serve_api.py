"""`celebface serve`, round two: collections, detect/embed, input forms, error codes, key
scopes, Host and Origin checks, decode caps, the bounded queue, offline docs and the serve
command's refusals. Unit tests first (no models), then the API on real five_celeb photos."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import Gallery
from celebface.gallery.store import GalleryError, photo_id
from celebface.serve import ServeConfig
from celebface.serve.config import KeyFileError, read_keys_file

fastapi = pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from celebface.serve.app import allowed_hosts, host_name, refusal  # noqa: E402
from celebface.serve.service import (  # noqa: E402
    FaceService,
    RequestError,
    display_name,
    page_of,
    source_name,
    upload_source,
)
from serve_helpers import PEOPLE, gallery_copy, held_out, models, photos  # noqa: E402


def png_header(w: int, h: int, depth: int = 16, colour: int = 0) -> bytes:
    """A small PNG whose header claims ``w`` x ``h`` pixels (16-bit grey by default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([depth, colour, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


# ------------------------------------------------------------------ the gallery's collections
def small_gallery() -> Gallery:
    g = Gallery()
    g.add(np.eye(5, 8, dtype=np.float32), ["a", "a", "b", "c", "c"],
          ["/p/a1.jpg", "/p/a2.jpg", "/p/b1.jpg", "upload:00ff:c.jpg", "/p/c2.jpg"])
    return g


def test_photos_of_lists_ids_and_sources() -> None:
    g = small_gallery()
    assert g.photos_of("a") == [(photo_id("/p/a1.jpg"), "/p/a1.jpg"),
                                (photo_id("/p/a2.jpg"), "/p/a2.jpg")]
    assert len({pid for pid, _ in g.photos_of("c")}) == 2
    with pytest.raises(GalleryError, match="not in the gallery"):
        g.photos_of("nobody")


def test_remove_photo_keeps_the_others_and_drops_an_emptied_person() -> None:
    g = small_gallery()
    assert g.remove_photo("a", photo_id("/p/a2.jpg")) == 1
    assert g.counts() == {"a": 1, "b": 1, "c": 2} and "/p/a2.jpg" not in g.sources
    with pytest.raises(GalleryError, match="no photo"):
        g.remove_photo("a", photo_id("/p/b1.jpg"))  # another person's photo
    assert g.remove_photo("b", photo_id("/p/b1.jpg")) == 1
    assert g.names == ["a", "c"] and g.counts() == {"a": 1, "c": 2}
    assert np.allclose(g.centroids()[1], g.embeddings[1:].mean(0) / np.linalg.norm(
        g.embeddings[1:].mean(0)))


def test_rename_and_merge() -> None:
    g = small_gallery()
    g.rename("b", "Bea")
    assert g.names == ["a", "Bea", "c"] and g.counts()["Bea"] == 1
    with pytest.raises(GalleryError, match="already"):
        g.rename("a", "c")
    before = g.embeddings.copy()
    assert g.merge("a", "c") == 2
    assert g.names == ["Bea", "c"] and g.counts() == {"Bea": 1, "c": 4}
    assert np.array_equal(g.embeddings, before)  # no vector changes, only labels
    with pytest.raises(GalleryError):
        g.merge("c", "c")
    with pytest.raises(GalleryError):
        g.merge("a", "c")  # gone


def test_collection_edits_save_and_load(tmp_path: Path) -> None:
    g = small_gallery()
    g.save(tmp_path)
    g.merge("a", "b")
    g.rename("b", "B")
    g.save()
    back = Gallery.load(tmp_path)
    assert back.counts() == {"B": 3, "c": 2}


# ------------------------------------------------------------------ small pure helpers
def test_names_sources_and_pages() -> None:
    assert display_name("jerry_seinfeld") == "Jerry Seinfeld"
    assert display_name("Zoë Saldaña") == "Zoë Saldaña" and display_name("DJ_Khaled") == "DJ Khaled"
    src = upload_source(b"photo", "../../dir\\Me at\x07 home.JPG")
    assert src.startswith("upload:") and source_name(src) == "Me at home.JPG"
    assert source_name(upload_source(b"photo", None)).startswith("upload ")
    assert source_name("/data/madonna/m1.jpg") == "m1.jpg"
    p = page_of(list(range(5)), 1, 2)
    assert p == {"items": [2, 3], "page": 1, "size": 2, "total": 5, "pages": 3}
    assert page_of([], 0, 10)["pages"] == 1


def test_person_names_are_one_spelling_and_text() -> None:
    """A composed and a decomposed "é" are one person (NFC, as the gallery stores names); a
    name holding U+FFFD (a URL's %FF%FE decoded) is refused, not a 500."""
    import unicodedata

    from celebface.types import InvalidNameError
    from celebface.types import person_name as check_name

    composed = "Ren\u00e9e"
    assert check_name(unicodedata.normalize("NFD", composed)) == composed
    with pytest.raises(InvalidNameError, match="U\\+FFFD"):
        check_name("b\ufffd\ufffdb")


def test_keys_file(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text("# keys\nr3ad recognize\n\nadm1n admin  # the editor\nplain\n")
    assert read_keys_file(f) == {"r3ad": "recognize", "adm1n": "admin", "plain": "admin"}
    c = ServeConfig(api_key="top", recognize_keys=("r2",), keys_file=f)
    assert c.keys() == {"r2": "recognize", "r3ad": "recognize", "adm1n": "admin",
                        "plain": "admin", "top": "admin"}
    f.write_text("k owner\n")
    with pytest.raises(KeyFileError, match=r"keys:1: expected"):
        read_keys_file(f)
    with pytest.raises(KeyFileError, match="cannot read"):
        read_keys_file(tmp_path / "missing")


@pytest.mark.parametrize("field,value", [("port", 99999), ("port", -1), ("workers", -1),
                                         ("threshold", 7.0), ("max_pixels", 0),
                                         ("queue", -2), ("max_decodes", 0)])
def test_config_ranges(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ServeConfig(**{field: value})


def hdr(**h: str) -> dict[bytes, bytes]:
    return {k.replace("_", "-").encode(): v.encode() for k, v in h.items()}


def test_host_and_origin_rules() -> None:
    local = ServeConfig()
    hosts = allowed_hosts(local)
    assert hosts == {"localhost", "127.0.0.1", "::1"}
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM:80") == "example.com"
    ok = hdr(host="127.0.0.1:8000")
    assert refusal(local, hosts, "GET", ok) is None
    # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1
    assert refusal(local, hosts, "GET", hdr(host="evil.example:8000"))[2] == "bad_host"
    assert refusal(local, hosts, "GET", {})[2] == "bad_host"
    same = hdr(host="127.0.0.1:8000", origin="http://127.0.0.1:8000")
    assert refusal(local, hosts, "POST", same) is None
    evil = hdr(host="127.0.0.1:8000", origin="http://evil.example")
    assert refusal(local, hosts, "POST", evil)[:2] == (403, refusal(local, hosts, "POST",
                                                                     evil)[1])
    assert refusal(local, hosts, "POST", evil)[2] == "cross_origin"
    assert refusal(local, hosts, "DELETE", hdr(host="localhost", origin="null"))[2] \
        == "cross_origin"
    assert refusal(local, hosts, "POST", hdr(host="localhost", sec_fetch_site="cross-site"))
    assert refusal(local, hosts, "GET", evil) is None  # reads: the browser keeps the answer
    allowed = ServeConfig(cors_origins=("http://evil.example",))
    assert refusal(allowed, hosts, "POST", evil) is None
    named = ServeConfig(host="10.1.2.3", allowed_hosts=("faces.lan",), api_key="k")
    assert allowed_hosts(named) == {"faces.lan", "10.1.2.3", "localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(ServeConfig(host="0.0.0.0", api_key="k")) is None  # any name
    assert allowed_hosts(ServeConfig(allowed_hosts=("*",))) is None


# ------------------------------------------------------------------ decode caps, the queue
def test_pixels_are_capped_from_the_header_before_decoding(monkeypatch) -> None:
    import celebface.serve.service as service_module

    decoded: list[str] = []
    real = service_module.read_image_bytes
    monkeypatch.setattr(service_module, "read_image_bytes",
                        lambda *a, **k: decoded.append(a[1]) or real(*a, **k))
    service = FaceService(ServeConfig())
    bomb = png_header(9000, 9000)  # 81 M pixels of 16-bit grey: 157 KB on the wire
    with pytest.raises(RequestError) as err:
        service.decode(bomb, "grey16.png")
    assert err.value.status == 413 and err.value.code == "image_too_large"
    assert "grey16.png" in str(err.value) and "9000x9000" in str(err.value)
    assert decoded == []  # refused from the header: nothing decoded
    service = FaceService(ServeConfig(max_pixels=90_000_000))
    with pytest.raises(RequestError):  # allowed by the cap: decoded (and found damaged)
        service.decode(bomb, "grey16.png")
    assert decoded == ["grey16.png"]
    small = FaceService(ServeConfig(max_image_mb=0.0001))
    with pytest.raises(RequestError, match="bytes") as err:
        small.decode(b"x" * 200, "big.jpg")
    assert err.value.status == 413


def test_decodes_at_once_are_capped(monkeypatch) -> None:
    import celebface.serve.service as service_module

    now = peak = 0
    lock = threading.Lock()

    def slow(*args, **kwargs):
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.05)
        with lock:
            now -= 1
        raise service_module.ImageReadError("x", "not an image (unrecognised format)")

    monkeypatch.setattr(service_module, "read_image_bytes", slow)
    service = FaceService(ServeConfig(max_decodes=2))
    def one() -> None:
        with pytest.raises(RequestError):
            service.decode(b"abc", "p")

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


def test_a_full_queue_answers_503_with_retry_after() -> None:
    from concurrent.futures import ThreadPoolExecutor

    service = FaceService(ServeConfig(workers=1, queue=1))
    service.pool = ThreadPoolExecutor(1)
    release = threading.Event()

    async def scenario() -> list:
        jobs = [asyncio.ensure_future(service.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(RequestError) as err:
            await service.run(release.wait, 10)
        release.set()
        return [err.value, *(await asyncio.gather(*jobs))]

    busy, *done = asyncio.run(scenario())
    assert busy.status == 503 and busy.code == "busy" and int(busy.headers["Retry-After"]) >= 1
    assert done == [True, True]
    assert asyncio.run(service.run(lambda: 7)) == 7  # places are given back
    service.close()


# ------------------------------------------------------------------ the serve command
def test_serve_refuses_bad_numbers_files_and_damaged_galleries(tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    import uvicorn

    from celebface.cli.main import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("server started"))
    for args in (["--port", "99999"], ["--port", "-1"], ["--workers", "-1"],
                 ["--threshold", "7"], ["--max-pixels", "0"], ["--queue", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            main(["serve", str(tmp_path), *args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "Traceback" not in err and "out of range" in err, args
    a_file = tmp_path / "photo.jpg"
    a_file.write_bytes(b"x")
    assert main(["serve", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert "not a gallery folder" in err and err.count("\n") == 1
    g = small_gallery()
    g.save(tmp_path / "g")
    npz = next((tmp_path / "g").glob("embeddings-*.npz"))
    npz.write_bytes(npz.read_bytes()[:-20] + b"\0" * 20)
    assert main(["serve", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and err.count("\n") == 1 and "Traceback" not in err
    keys = tmp_path / "keys"
    keys.write_text("k boss\n")
    assert main(["serve", str(tmp_path / "new"), "--keys-file", str(keys)]) == 2
    assert "expected 'KEY" in capsys.readouterr().err


def test_serve_reads_recognize_keys_from_flags_and_the_environment(monkeypatch,
                                                                   tmp_path: Path) -> None:
    import uvicorn

    import celebface.serve.app as app_module
    from celebface.cli.main import main

    seen: dict = {}
    monkeypatch.setattr(app_module, "create_app", lambda config: seen.update(c=config))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setenv("CELEBFACE_RECOGNIZE_KEYS", "r1,r2")
    assert main(["serve", str(tmp_path)]) == 0
    assert seen["c"].keys() == {"r1": "recognize", "r2": "recognize"}
    assert main(["serve", str(tmp_path), "--recognize-key", "r9", "--allowed-host", "a.lan",
                 "--host", "0.0.0.0"]) == 0  # a recognise key is a key: no --insecure needed
    assert seen["c"].keys() == {"r9": "recognize"} and seen["c"].allowed_hosts == ("a.lan",)


# ------------------------------------------------------------------ the API on real photos
def make_app(gallery: Path, **options):
    from celebface.serve import create_app

    options.setdefault("allowed_hosts", ("testserver",))  # TestClient's Host
    return create_app(ServeConfig(gallery=gallery, device="cpu", workers=2, **options),
                      models=models())


@pytest.fixture(scope="module")
def client(five_celeb: Path, tmp_path_factory: pytest.TempPathFactory):
    gallery = gallery_copy(five_celeb, tmp_path_factory.mktemp("serve-api"))
    with TestClient(make_app(gallery)) as c:
        c.gallery = gallery
        yield c


def b64(data: bytes, prefix: str = "") -> str:
    return prefix + base64.b64encode(data).decode()


pytestmark_api = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.integration
@pytest.mark.slow
class TestRoutes:
    def test_every_input_form_gives_the_same_answer(self, client, five_celeb: Path) -> None:
        data = held_out(five_celeb, "jerry_seinfeld").read_bytes()
        answers = [
            client.post("/v1/recognize", content=data),
            client.post("/v1/recognize", files={"file": ("j.jpg", data)}),
            client.post("/v1/recognize", files={"image": ("j.jpg", data)}),
            client.post("/v1/recognize", json={"file": b64(data)}),
            client.post("/v1/recognize", json={"image": b64(data, "data:image/jpeg;base64,")}),
        ]
        assert [r.status_code for r in answers] == [200] * 5, [r.text for r in answers]
        first = answers[0].json()
        assert all(r.json() == first for r in answers)
        face = first["faces"][0]
        assert face["identity"] == "jerry_seinfeld" and face["label"] == "Jerry Seinfeld"

    def test_recognize_options(self, client, five_celeb: Path) -> None:
        data = held_out(five_celeb, "madonna").read_bytes()
        out = client.post("/v1/recognize?prediction_count=3", content=data).json()
        face = out["faces"][0]
        preds = face["predictions"]
        assert preds[0]["name"] == face["identity"] == "madonna"
        assert len(preds) == 3 and {p["name"] for p in preds} == set(PEOPLE)
        assert preds[0]["similarity"] == pytest.approx(face["similarity"], abs=1e-3)
        assert preds[0]["similarity"] >= preds[1]["similarity"] >= preds[2]["similarity"]
        assert preds[1]["name"] == face["runner_up"]
        one = client.post("/v1/recognize", content=data).json()["faces"][0]
        assert len(one["predictions"]) == 1
        score = face["score"]
        above = client.post(f"/v1/recognize?det_prob_threshold={min(1.0, score + 1e-4)}",
                            content=data).json()
        assert all(f["score"] >= score + 1e-4 for f in above["faces"])
        assert len(above["faces"]) < len(out["faces"]) or score + 1e-4 > 1.0
        again = client.post("/v1/recognize?limit=0&prediction_count=3", content=data)
        assert again.json()["faces"] == out["faces"]
        for bad in ("prediction_count=0", "limit=-1", "det_prob_threshold=2",
                    "prediction_count=x"):
            r = client.post(f"/v1/recognize?{bad}", content=data)
            assert r.status_code == 400 and r.json()["code"] == "bad_parameter", bad

    def test_limit_keeps_the_largest_faces(self, client, five_celeb: Path) -> None:
        # two photos side by side: two faces; limit=1 keeps the bigger one
        from PIL import Image

        a = Image.open(held_out(five_celeb, "madonna")).convert("RGB")
        b = Image.open(held_out(five_celeb, "ben_afflek")).convert("RGB")
        b = b.resize((b.width // 2, b.height // 2))
        canvas = Image.new("RGB", (a.width + b.width, max(a.height, b.height)), (128, 128, 128))
        canvas.paste(a, (0, 0))
        canvas.paste(b, (a.width, 0))
        import io

        buf = io.BytesIO()
        canvas.save(buf, format="JPEG")
        both = client.post("/v1/detect", content=buf.getvalue()).json()["faces"]
        assert len(both) >= 2
        one = client.post("/v1/detect?limit=1", content=buf.getvalue()).json()["faces"]
        area = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in both]
        assert len(one) == 1 and one[0] == both[int(np.argmax(area))]

    def test_detect_finds_what_recognize_finds(self, client, five_celeb: Path) -> None:
        data = held_out(five_celeb, "ben_afflek").read_bytes()
        det = client.post("/v1/detect", files={"file": ("b.jpg", data)}).json()
        rec = client.post("/v1/recognize", content=data).json()
        assert [f["box"] for f in det["faces"]] == [f["box"] for f in rec["faces"]]
        assert "identity" not in det["faces"][0] and (det["width"], det["height"]) == (
            rec["width"], rec["height"])

    def test_embed_gives_unit_vectors_near_the_person(self, client, five_celeb: Path) -> None:
        data = held_out(five_celeb, "ben_afflek").read_bytes()
        out = client.post("/v1/embed", json={"file": b64(data)}).json()
        g = Gallery.load(client.gallery)
        assert out["embedder"] == g.spec.name and out["faces"]  # the gallery's embedder
        vec = np.asarray(out["faces"][0]["embedding"])
        assert vec.shape == (g.dim,) and abs(np.linalg.norm(vec) - 1) < 1e-4
        sims = g.centroids() @ vec
        assert g.names[int(np.argmax(sims))] == "ben_afflek"

    def test_base64_wrapped_at_76_columns_is_read(self, client, five_celeb: Path) -> None:
        """Issue 31: base64 as MIME and `base64` write it (lines of 76) was refused."""
        good = held_out(five_celeb, "madonna").read_bytes()
        plain = client.post("/v1/detect", json={"file": b64(good)})
        for wrapped in (base64.encodebytes(good).decode(),
                        base64.encodebytes(good).decode().replace("\n", "\r\n")):
            assert "\n" in wrapped[:100]
            r = client.post("/v1/detect", json={"file": wrapped})
            assert r.status_code == 200, r.text
            assert r.json() == plain.json()

    def test_bad_inputs_have_codes(self, client, five_celeb: Path) -> None:
        good = held_out(five_celeb, "madonna").read_bytes()
        cases = [
            (client.post("/v1/recognize", json={"file": "!!not base64!!"}), 400, "bad_base64"),
            (client.post("/v1/recognize", json={"photo": b64(good)}), 400, "missing_field"),
            (client.post("/v1/recognize", json=[1]), 400, "bad_json"),
            (client.post("/v1/recognize", content=b"{", headers={
                "Content-Type": "application/json"}), 400, "bad_json"),
            (client.post("/v1/recognize", files={"file": ("notes.pdf", b"%PDF-1.4")}), 415,
             "not_an_image"),
            (client.post("/v1/recognize", content=b""), 400, "empty_image"),
            (client.post("/v1/recognize", files={"file": ("big.png", png_header(9000, 9000))}),
             413, "image_too_large"),
            (client.post("/v1/recognize", files={"file": ("half.jpg", good[:3000])}), 400,
             "bad_image"),
            (client.post("/v1/verify", content=good), 415, "unsupported_media_type"),
            (client.get("/v1/people/nobody/photos"), 404, "no_such_person"),
            (client.get("/v1/people/madonna/photos/0000/thumbnail"), 404, "no_such_photo"),
            (client.delete("/v1/people/madonna/photos/0000"), 404, "not_found"),
            (client.post("/v1/people/unknown/photos", content=good), 400, "invalid_name"),
            (client.get("/v1/nothing-here"), 404, "not_found"),
            (client.patch("/v1/people/madonna", json={}), 400, "bad_parameter"),
        ]
        for r, status, code in cases:
            body = r.json()
            assert (r.status_code, body["code"]) == (status, code), (status, code, r.text)
            assert body["detail"] and "\n" not in body["detail"]
        # messages name the file sent
        r = client.post("/v1/recognize", files={"file": ("notes.pdf", b"%PDF-1.4")})
        assert r.json()["detail"].startswith("notes.pdf: ")
        r = client.post("/v1/recognize", files={"file": ("half.jpg", good[:3000])})
        assert r.json()["detail"] == "half.jpg: corrupt or truncated image"

    def test_collections(self, client, five_celeb: Path) -> None:
        listed = client.get("/v1/people/madonna/photos").json()
        train = [p.name for p in photos(five_celeb, "madonna", "train", 3)]
        assert listed["label"] == "Madonna" and listed["total"] == 3
        assert sorted(p["source"] for p in listed["photos"]) == sorted(train)
        page = client.get("/v1/people/madonna/photos?size=2&page=1").json()
        assert page["pages"] == 2 and [p["id"] for p in page["photos"]] == [
            listed["photos"][2]["id"]]
        thumb = client.get(listed["photos"][0]["thumbnail"])
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        people = client.get("/v1/people?size=2").json()
        assert people["total"] == 3 and len(people["people"]) == 2 and people["pages"] == 2
        assert people["people"][0]["label"] == display_name(people["people"][0]["name"])

        # enrol two photos with their file names; the same photo again replaces its row
        new = photos(five_celeb, "elton_john", "train", 2)
        files = [("file", (p.name, p.read_bytes())) for p in new]
        assert client.post("/v1/people/elton_john/photos", files=files).json()["photos"] == 2
        again = client.post("/v1/people/elton_john/photos",
                            json={"file": [b64(new[0].read_bytes())]}).json()
        assert again["photos"] == 2
        mine = client.get("/v1/people/elton_john/photos").json()["photos"]
        assert sorted(p["source"] for p in mine) == sorted([new[1].name, "file #1"])
        for p in mine:  # thumbnails of uploaded photos are kept when enrolled
            assert client.get(p["thumbnail"]).status_code == 200

        gone = client.delete(f"/v1/people/elton_john/photos/{mine[0]['id']}").json()
        assert gone["removed"] == 1 and gone["photos"] == 1
        assert Gallery.load(client.gallery).counts()["elton_john"] == 1

        r = client.patch("/v1/people/elton_john", json={"name": "madonna"})
        assert r.status_code == 409 and r.json()["code"] == "name_taken"
        r = client.patch("/v1/people/elton_john", json={"name": "Elton John"})
        assert r.status_code == 200 and r.json()["from"] == "elton_john", r.text
        names = Gallery.load(client.gallery).names
        assert "Elton John" in names and "elton_john" not in names
        assert client.get("/v1/people/Elton John/thumbnail").status_code == 200
        r = client.patch("/v1/people/Elton John", json={"name": "madonna", "merge": True})
        assert r.status_code == 200 and r.json()["merged"] and r.json()["photos"] == 4, r.text
        assert Gallery.load(client.gallery).counts() == {"ben_afflek": 3, "jerry_seinfeld": 3,
                                                          "madonna": 4}
        last = client.get("/v1/people/madonna/photos").json()["photos"]
        for p in last:
            assert client.delete(f"/v1/people/madonna/photos/{p['id']}").status_code == 200
        assert "madonna" not in Gallery.load(client.gallery).names

        # one photo sent twice in one request, then once more: replaced, never a 409
        twice = [("file", (new[0].name, new[0].read_bytes()))] * 2
        assert client.post("/v1/people/twin/photos", files=twice).status_code == 200
        r = client.post("/v1/people/twin/photos", files=twice[:1])
        assert r.status_code == 200 and r.json()["photos"] == 1, r.text

    def test_openapi_documents_every_status_and_no_422(self, client) -> None:
        spec = client.get("/openapi.json").json()
        assert {"/v1/recognize", "/v1/detect", "/v1/embed", "/v1/people/{name}/photos",
                "/v1/people/{name}/photos/{photo}", "/v1/people/{name}"} <= set(spec["paths"])
        assert "422" not in client.get("/openapi.json").text.replace('"4220', "")
        schemes = spec["components"]["securitySchemes"]
        assert schemes["APIKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                     "description": schemes["APIKey"]["description"]}
        for path, ops in spec["paths"].items():
            if not path.startswith("/v1"):
                continue
            for method, op in ops.items():
                assert {"400", "401", "403"} <= set(op["responses"]), (path, method)
                assert op.get("security"), (path, method)
                if method in ("post", "patch", "delete"):
                    assert "503" in op["responses"], (path, method)
        body = spec["paths"]["/v1/recognize"]["post"]["requestBody"]["content"]
        assert set(body) == {"multipart/form-data", "application/json",
                             "application/octet-stream"}

    def test_docs_are_served_from_the_package(self, client) -> None:
        html = client.get("/docs").text
        assert "/docs-static/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
        js = client.get("/docs-static/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 500_000
        assert client.get("/docs-static/swagger-ui.css").status_code == 200
        assert client.get("/redoc").status_code == 404  # ReDoc fetches its logo from a CDN


@pytest.mark.integration
@pytest.mark.slow
def test_key_scopes(five_celeb: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("from-file recognize\n")
    app = make_app(gallery_copy(five_celeb, tmp_path), api_key="boss",
                   recognize_keys=("viewer",), keys_file=keys)
    photo = held_out(five_celeb, "madonna").read_bytes()
    with TestClient(app) as c:
        def as_(key: str | None) -> dict:
            return {"X-API-Key": key} if key else {}

        assert c.get("/health").json() == {"status": "ok"}  # no gallery size without a key
        assert c.get("/health", headers=as_("viewer")).json()["identities"] == 3
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=as_("viewer")).status_code == 200
        for key in ("viewer", "from-file", "boss"):
            r = c.post("/v1/recognize", content=photo, headers=as_(key))
            assert r.status_code == 200 and r.json()["faces"][0]["identity"] == "madonna"
            assert c.get("/v1/people", headers=as_(key)).status_code == 200
        r = c.post("/v1/detect", content=photo, headers={"Authorization": "Bearer from-file"})
        assert r.status_code == 200
        for key in ("viewer", "from-file"):
            r = c.post("/v1/people/x/photos", content=photo, headers=as_(key))
            assert r.status_code == 403 and r.json()["code"] == "forbidden"
            r = c.patch("/v1/people/madonna", json={"name": "M"}, headers=as_(key))
            assert r.status_code == 403
            r = c.delete("/v1/people/madonna", headers=as_(key))
            assert r.status_code == 403
        r = c.post("/v1/recognize", content=photo, headers=as_("nope"))
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert c.patch("/v1/people/madonna", json={"name": "M"},
                       headers=as_("boss")).status_code == 200


@pytest.mark.integration
@pytest.mark.slow
def test_other_sites_cannot_edit_a_keyless_server(five_celeb: Path, tmp_path: Path) -> None:
    gallery = gallery_copy(five_celeb, tmp_path)
    photo = held_out(five_celeb, "mindy_kaling").read_bytes()
    with TestClient(make_app(gallery, cors_origins=("http://friend.example",))) as c:
        evil = {"Origin": "http://evil.example"}
        r = c.post("/v1/people/mallory/photos", files={"file": ("m.jpg", photo)}, headers=evil)
        assert r.status_code == 403 and r.json()["code"] == "cross_origin"
        assert c.delete("/v1/people/madonna", headers=evil).status_code == 403
        r = c.get("/v1/people", headers={"Host": "evil.example"})
        assert r.status_code == 400 and r.json()["code"] == "bad_host"
        assert "mallory" not in Gallery.load(gallery).names
        assert "madonna" in Gallery.load(gallery).names
        r = c.post("/v1/people/friend/photos", files={"file": ("m.jpg", photo)},
                   headers={"Origin": "http://friend.example"})
        assert r.status_code == 200, r.text
        r = c.post("/v1/recognize", content=photo, headers={"Origin": "http://testserver"})
        assert r.status_code == 200
