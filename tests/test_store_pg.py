"""The gallery in PostgreSQL, against a real server (no mock): `.ci/run` starts one and sets
$CELEBFACE_TEST_PG (an admin URL); without it these tests skip. Each test gets its own database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import Gallery
from celebface.gallery.stores import copy_gallery, open_store

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg")

ADMIN_URL = os.environ.get("CELEBFACE_TEST_PG")
pytestmark = pytest.mark.skipif(not ADMIN_URL, reason="CELEBFACE_TEST_PG is not set "
                                "(.ci/run starts a PostgreSQL server and sets it)")
SRC = Path(__file__).resolve().parents[1] / "src"


def db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")  # type: ignore[union-attr]
    return f"{base}/{name}"


@pytest.fixture
def pg_url():
    name = f"celebface_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield db_url(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unit(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}


def test_round_trip_migrations_and_export_import(pg_url: str, tmp_path: Path,
                                                 rng: np.random.Generator) -> None:
    g = Gallery(embedder={"name": "dlib", "settings": {"alignment": "template"}})
    g.add(unit(rng, 5), ["ann", "ann", "bo", "cy", "bo"], ["p1", "p2", "p3", "p4", "p5"])
    g.thresholds["centroid"] = 0.61
    g.calibration["centroid"] = {"gap_weight": 0.33}
    g.save(tmp_path / "folder")
    store = open_store(pg_url)
    assert not store.exists() and store.version() is None
    copy_gallery(tmp_path / "folder", pg_url)  # import
    h = store.load()
    assert h.names == g.names and h.sources == g.sources
    assert h.labels.tolist() == g.labels.tolist()
    assert h.embeddings.tobytes() == Gallery.load(tmp_path / "folder").embeddings.tobytes()
    assert h.embedder == g.embedder and h.thresholds == g.thresholds
    assert h.calibration == g.calibration
    copy_gallery(pg_url, tmp_path / "back")  # export
    back = Gallery.load(tmp_path / "back")
    assert back.embeddings.tobytes() == h.embeddings.tobytes() and back.names == g.names
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_version").fetchall()
    assert rows == [(1, "001_gallery.sql"), (2, "002_thumbnails.sql")]
    open_store(pg_url).load()  # a second client: nothing applied twice
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 2


def test_cli_export_import(pg_url: str, tmp_path: Path, rng: np.random.Generator, capsys
                           ) -> None:
    from celebface.cli.main import main

    g = Gallery(embedder={"name": "dlib"})
    g.add(unit(rng, 3), ["a", "b", "b"], ["1", "2", "3"])
    g.save(tmp_path / "g")
    assert main(["gallery", "import", str(tmp_path / "g"), pg_url]) == 0
    assert main(["gallery", "import", str(tmp_path / "g"), pg_url]) == 2  # no silent overwrite
    assert "already holds a gallery" in capsys.readouterr().err
    assert main(["gallery", "export", pg_url, str(tmp_path / "out")]) == 0
    out = Gallery.load(tmp_path / "out")
    assert out.embeddings.tobytes() == Gallery.load(tmp_path / "g").embeddings.tobytes()
    assert main(["gallery", "export", db_url("celebface_no_such_db"), str(tmp_path / "x")]) == 2
    assert "cannot connect" in capsys.readouterr().err


def test_edits_from_two_connections_are_serialised(pg_url: str, rng: np.random.Generator
                                                   ) -> None:
    import threading

    first, second = open_store(pg_url), open_store(pg_url)  # as two servers would
    first.edit(lambda g: g.add(unit(rng, 1), ["base"], ["b"]), Gallery)
    inside = threading.Event()
    v = unit(rng, 2)

    def slow(g: Gallery) -> None:
        inside.set()
        time.sleep(0.5)
        g.add(v[:1], ["one"], ["o"])

    t = threading.Thread(target=first.edit, args=(slow,))
    t.start()
    inside.wait(10)
    second.edit(lambda g: g.add(v[1:], ["two"], ["t"]))
    t.join(10)
    assert second.load().counts() == {"base": 1, "one": 1, "two": 1}
    assert first.version() == second.version() == 3


def test_a_writer_killed_mid_write_loses_nothing_committed(pg_url: str) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        from celebface.gallery import Gallery
        from celebface.gallery.stores import open_store

        class SlowSources(list):  # the second save stalls while it streams its rows
            reads = 0  # (the first read: the edit's check that something changed)

            def __iter__(self):
                SlowSources.reads += 1
                for i, s in enumerate(list.__iter__(self)):
                    if i == 1000 and SlowSources.reads == 2:
                        print("writing", flush=True)
                        time.sleep(60)
                    yield s

        rng = np.random.default_rng(1)
        store = open_store({pg_url!r})
        store.edit(lambda g: g.add(rng.normal(size=(3, 128)), ["kept"] * 3, ["a", "b", "c"]),
                   Gallery)
        print("committed", flush=True)

        def big(g):
            g.add(rng.normal(size=(5000, 128)), ["lost"] * 5000, [str(i) for i in range(5000)])
            g.sources = SlowSources(g.sources)

        store.edit(big)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env=child_env())
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.strip() == "writing":
                break
        assert lines == ["committed", "writing"], lines
        with psycopg.connect(pg_url) as conn:  # the rows were going in when it died
            active = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                  "'COPY photos%%'").fetchone()[0]
        assert active == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = open_store(pg_url)
    g = store.load()
    assert g.counts() == {"kept": 3} and store.version() == 1
    start = time.monotonic()  # its lock died with it: the next writer goes straight in
    store.edit(lambda g: g.remove("kept"))
    assert time.monotonic() - start < 10 and len(store.load()) == 0


# ------------------------------------------------------------ two servers, one database
def _serve(url: str, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celebface.cli.main", "serve", "--store", url, "--port",
           str(port), "--workers", "1", "--threads", "1", "--device", "cpu"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=child_env())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def _post(url: str, body: bytes, content_type: str = "application/octet-stream") -> dict:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def _wait_up(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            _get(f"{base}/health")
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"server did not start: {log.read_text()[-2000:]}")


@pytest.mark.integration
@pytest.mark.slow
def test_two_servers_share_one_database(pg_url: str, five_celeb: Path, tmp_path: Path) -> None:
    from celebface.gallery import EnrollConfig, enroll
    from serve_helpers import PEOPLE, free_port, held_out, models, photos

    for person in PEOPLE:  # `celebface enroll --store` into the database
        (tmp_path / "data" / person).mkdir(parents=True)
        for p in photos(five_celeb, person, "train", 3):
            (tmp_path / "data" / person / p.name).symlink_to(p)
    summary = enroll(tmp_path / "data", pg_url, config=EnrollConfig(max_side=640),
                     models=models(), progress=False)
    assert (summary.identities, summary.embeddings) == (3, 9)
    ports = [free_port(), free_port()]
    procs = [_serve(pg_url, p, tmp_path / f"server{i}.log") for i, p in enumerate(ports)]
    try:
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base, proc, i in zip(bases, procs, range(2), strict=True):
            _wait_up(base, proc, tmp_path / f"server{i}.log")
        a, b = bases
        assert len(_get(f"{b}/v1/people")["people"]) == 3
        boundary = "celebfaceboundary"
        parts = []
        for p in photos(five_celeb, "elton_john", "train", 3):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                         f'filename="{p.name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                         + p.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        added = _post(f"{a}/v1/people/elton_john/photos", body,
                      f"multipart/form-data; boundary={boundary}")
        assert added["added"] == 3
        done = time.monotonic()
        while True:  # the other server sees him on its next request
            people = {p["name"]: p["photos"] for p in _get(f"{b}/v1/people")["people"]}
            if "elton_john" in people or time.monotonic() - done > 1.0:
                break
            time.sleep(0.05)
        seen_after = time.monotonic() - done
        assert people.get("elton_john") == 3 and seen_after <= 1.0, (people, seen_after)
        face = _post(f"{b}/v1/recognize", held_out(five_celeb, "elton_john").read_bytes()
                     )["faces"][0]
        best = face["identity"] if face["identity"] != "unknown" else face["runner_up"]
        assert best == "elton_john", face
        # the photos added through A show their thumbnails on B, and after B restarts
        listed = _get(f"{b}/v1/people/elton_john/photos")["photos"]
        assert len(listed) == 3

        def thumb(base: str, item: dict) -> bytes:
            with urllib.request.urlopen(base + item["thumbnail"], timeout=60) as r:
                assert r.headers["Content-Type"] == "image/jpeg"
                return r.read()

        shown = [thumb(a, item) for item in listed]
        assert [thumb(b, item) for item in listed] == shown
        procs[1].terminate()
        procs[1].wait(30)
        procs[1] = _serve(pg_url, ports[1], tmp_path / "server1-again.log")
        _wait_up(b, procs[1], tmp_path / "server1-again.log")
        assert [thumb(b, item) for item in listed] == shown
        # and a removal through B reaches A
        with urllib.request.urlopen(urllib.request.Request(
                f"{b}/v1/people/elton_john", method="DELETE"), timeout=60) as r:
            assert json.loads(r.read())["removed"] == 3
        assert "elton_john" not in {p["name"] for p in _get(f"{a}/v1/people")["people"]}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.integration
def test_recognize_calibrate_and_verify_take_a_database_gallery(
        pg_url: str, five_celeb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``celebface recognize|calibrate|verify --gallery postgresql://...`` read (and calibrate
    stores into) the database, and answer as on the same gallery exported to a folder;
    ``celebface.recognize(photo, url)`` reads the gallery again once the store's version
    changes."""
    import celebface
    from celebface.cli.main import main
    from serve_helpers import PEOPLE, STRANGERS, gallery_copy, held_out, photos

    folder = gallery_copy(five_celeb, tmp_path)
    copy_gallery(folder, pg_url)
    store = open_store(pg_url)
    ben = held_out(five_celeb, "ben_afflek")

    def recognize(gallery: str, name: str) -> tuple[dict, str]:
        out = tmp_path / f"{name}.jsonl"
        assert main(["recognize", str(ben), "--gallery", gallery, "--jsonl", str(out),
                     "--device", "cpu"]) == 0
        return json.loads(out.read_text().splitlines()[0]), capsys.readouterr().out

    line, said = recognize(pg_url, "pg")
    assert line["faces"][0]["identity"] == "ben_afflek", line
    assert line["faces"] == recognize(str(folder), "folder")[0]["faces"]

    calib = tmp_path / "calib"
    for person, split, n in [*((p, "val", 2) for p in PEOPLE), *((s, "train", 3)
                                                                  for s in STRANGERS)]:
        (calib / person).mkdir(parents=True)
        for p in photos(five_celeb, person, split, n, start=1 if split == "val" else 0):
            (calib / person / p.name).symlink_to(p)
    assert main(["calibrate", pg_url, str(calib), "--far", "0.2", "--device", "cpu"]) == 0
    assert f"stored in {pg_url}" in capsys.readouterr().out
    calibrated = store.load()
    assert "centroid" in calibrated.thresholds and not Gallery.load(folder).thresholds
    _, said = recognize(pg_url, "pg-calibrated")
    assert f"threshold {calibrated.thresholds['centroid']:.3f}" in said

    copy_gallery(pg_url, tmp_path / "exported")
    a, b = photos(five_celeb, "ben_afflek", "train", 2)
    answers = []
    for gallery in (pg_url, str(tmp_path / "exported")):
        assert main(["verify", str(a), str(b), "--gallery", gallery, "--json",
                     "--device", "cpu"]) == 0
        answers.append(json.loads(capsys.readouterr().out.splitlines()[0]))
    assert answers[0] == answers[1] and answers[0]["same"]

    assert main(["recognize", str(ben), "--gallery", db_url("celebface_no_such_db")]) == 2
    assert "cannot connect" in capsys.readouterr().err

    assert celebface.recognize(ben, pg_url, device="cpu")[0].identity == "ben_afflek"
    store.edit(lambda g: g.remove("ben_afflek"))  # a new version: read again
    assert celebface.recognize(ben, pg_url, device="cpu")[0].identity != "ben_afflek"
