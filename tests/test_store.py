"""Gallery stores: the one write protocol (lock, re-read, change, save), the version stamp,
loading that only reads, and photos known per person. Synthetic vectors, no models (fast)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import Gallery, GalleryMatcher
from celebface.gallery.store import FolderStore, MissingGalleryError
from celebface.gallery.stores import copy_gallery, open_store


def unit(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def small(rng: np.random.Generator, folder: Path | None = None) -> Gallery:
    g = Gallery(path=folder, embedder={"name": "dlib"})
    g.add(unit(rng, 4), ["alice", "alice", "bob", "carol"], ["a1", "a2", "b1", "c1"])
    return g


def test_one_photo_added_to_two_people_keeps_both(rng: np.random.Generator) -> None:
    g = Gallery()
    v = unit(rng, 2)
    assert g.add(v[:1], ["alice"], ["upload:same"]) == 1
    assert g.add(v[1:], ["bob"], ["upload:same"]) == 1
    assert g.counts() == {"alice": 1, "bob": 1}
    # the same photo again for the same person replaces its vector, not duplicates it
    assert g.add(v[1:], ["alice"], ["upload:same"]) == 1
    assert g.counts() == {"alice": 1, "bob": 1}
    np.testing.assert_array_equal(g.embeddings[g.keys().index(("alice", "upload:same"))], v[1])


def test_load_only_reads_and_leaves_centroids_to_the_matcher(tmp_path: Path,
                                                             rng: np.random.Generator,
                                                             monkeypatch) -> None:
    folder = tmp_path / "g"
    small(rng).save(folder)
    stale = b'{"someone": [1.0, 0.0]}'
    (folder / "average_embeddings.json").write_bytes(stale)  # as an interrupted save might
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    calls = {"n": 0}
    real = np.add.at

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(np.add, "at", counting)
    g = Gallery.load(folder)
    assert calls["n"] == 0  # no centroids computed to load
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert (folder / "average_embeddings.json").read_bytes() == stale
    GalleryMatcher(g, "centroid").scores(unit(rng, 2))
    assert calls["n"] == 1  # computed once, when matching needs them
    g.save()  # the next save rewrites the derived file
    assert "someone" not in (folder / "average_embeddings.json").read_text()


def test_version_stamp_moves_with_each_save_only(tmp_path: Path, rng: np.random.Generator
                                                 ) -> None:
    store = FolderStore(tmp_path / "g")
    assert store.version() is None and not store.exists()
    small(rng).save(store.folder)
    first = store.version()
    store.load()
    assert store.version() == first
    _, _, second = store.edit(lambda g: g.remove("carol"))
    assert second != first and store.version() == second
    assert store.load().names == ["alice", "bob"]


def test_edit_without_a_gallery_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingGalleryError, match="no gallery to edit"):
        FolderStore(tmp_path / "none").edit(lambda g: None)
    assert isinstance(open_store(tmp_path), FolderStore)


def test_a_failed_change_writes_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    store = FolderStore(tmp_path / "g")
    small(rng).save(store.folder)
    stamp = store.version()

    def bad(g: Gallery) -> None:
        g.remove("alice")
        raise RuntimeError("change failed")

    with pytest.raises(RuntimeError):
        store.edit(bad)
    assert store.version() == stamp and "alice" in store.load().names


def test_concurrent_edits_are_serialised_and_both_kept(tmp_path: Path,
                                                       rng: np.random.Generator) -> None:
    """Writer A holds the lock while B starts: B must wait and re-read, so A's person stays.
    (Read-modify-write without the lock across it would save B's stale copy over A's.)"""
    store = FolderStore(tmp_path / "g")
    small(rng).save(store.folder)
    inside, order = threading.Event(), []
    v = unit(rng, 2)

    def slow_add(g: Gallery) -> None:
        inside.set()
        time.sleep(0.5)
        g.add(v[:1], ["dave"], ["d1"])
        order.append("A")

    def quick_add(g: Gallery) -> None:
        g.add(v[1:], ["erin"], ["e1"])
        order.append("B")

    a = threading.Thread(target=store.edit, args=(slow_add,))
    a.start()
    inside.wait(10)
    store.edit(quick_add)  # in this thread: waits for A's lock
    a.join(10)
    assert order == ["A", "B"]
    assert store.load().counts() == {"alice": 2, "bob": 1, "carol": 1, "dave": 1, "erin": 1}


def test_copy_between_folders_is_exact_and_refuses_to_overwrite(tmp_path: Path,
                                                               rng: np.random.Generator) -> None:
    g = small(rng)
    g.thresholds["centroid"] = 0.5
    g.save(tmp_path / "a")
    copy_gallery(tmp_path / "a", tmp_path / "b")
    h = Gallery.load(tmp_path / "b")
    assert h.names == g.names and h.sources == g.sources and h.thresholds == g.thresholds
    assert h.embeddings.tobytes() == Gallery.load(tmp_path / "a").embeddings.tobytes()
    with pytest.raises(ValueError, match="already holds a gallery"):
        copy_gallery(tmp_path / "a", tmp_path / "b")
    with pytest.raises(MissingGalleryError):
        copy_gallery(tmp_path / "nothing", tmp_path / "c")


def test_server_keeps_serving_when_its_database_is_down(caplog) -> None:
    """Recognition goes on with the gallery already loaded; an edit is a clear 503."""
    pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg")
    from celebface.serve import ServeConfig
    from celebface.serve.service import FaceService, RequestError

    down = "postgresql://nobody@127.0.0.1:1/nowhere"  # nothing listens on port 1
    service = FaceService(ServeConfig(store=down, device="cpu", workers=1), models=(None, None))
    service._version = 7  # as if a gallery had been loaded
    assert service.refresh() is False and service._version == 7
    assert "cannot connect" in caplog.text and "serving the gallery loaded before" in caplog.text
    caplog.clear()
    with pytest.raises(RequestError) as err:
        service._edit(lambda g: None)
    # the client is told only that; the reason (host, port, user) goes to the log
    assert err.value.status == 503 and str(err.value) == "the gallery store is unavailable"
    assert "cannot connect" in caplog.text and "nobody@127.0.0.1:1" in caplog.text
    service.close()


def test_enrolment_embeds_without_holding_the_gallery(tmp_path: Path, rng: np.random.Generator
                                                      ) -> None:
    """Another writer (a server's edit) goes through while `enroll` embeds, and both are kept:
    the slow part runs outside the lock, the result is merged into a fresh read."""
    from celebface.gallery import EnrollConfig, enroll
    from test_gallery import COLOURS, ColourEmbedder, write_people

    data, more, out = tmp_path / "data", tmp_path / "more", tmp_path / "g"
    write_people(data, rng, {"amy": COLOURS["amy"]})
    write_people(more, rng, {"bob": COLOURS["bob"]})
    cfg = EnrollConfig(embedder="colour", detector="none", batch_size=2)
    emb = ColourEmbedder()
    enroll(data, out, config=cfg, models=(emb, None), progress=False)
    real, edited = emb.embed, threading.Event()

    def embed(*args, **kwargs):
        if not edited.is_set():  # the first batch: another writer edits meanwhile
            side = threading.Thread(target=FolderStore(out).edit, args=(
                lambda g: g.add(unit(rng, 1, 12), ["server"], ["upload:x"]),))
            side.start()
            side.join(10)
            if not side.is_alive():
                edited.set()
        return real(*args, **kwargs)

    emb.embed = embed
    s = enroll(more, out, add=True, config=cfg, models=(emb, None), progress=False)
    assert edited.is_set(), "the other writer waited for the whole enrolment"
    assert s.added == 3
    assert Gallery.load(out).counts() == {"amy": 3, "server": 1, "bob": 3}


def test_recognizer_open_reads_a_gallery_from_any_location(tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    """``Recognizer.open``: a folder, a store or a loaded gallery give the same recogniser;
    a folder that holds none is the one missing-gallery error."""
    from celebface.recognizer import Recognizer, RecognizerConfig

    small(rng).save(tmp_path / "g")
    config = RecognizerConfig(threshold=0.5)
    opened = [Recognizer.open(where, config=config, embedder=object()).gallery for where in
              (tmp_path / "g", str(tmp_path / "g"), FolderStore(tmp_path / "g"),
               Gallery.load(tmp_path / "g"))]
    for gallery in opened:
        assert gallery.names == opened[0].names and gallery.path == tmp_path / "g"
        assert gallery.embeddings.tobytes() == opened[0].embeddings.tobytes()
    with pytest.raises(MissingGalleryError, match="no such gallery folder"):
        Recognizer.open(tmp_path / "none", config=config)
