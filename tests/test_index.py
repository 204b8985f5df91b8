"""The gallery's FAISS index: same answers as brute force, stored and checked with the gallery."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import Gallery, GalleryMatcher, OpenSetPolicy, match
from celebface.gallery.index import VectorIndex, VectorIndexError, load_index, resolve_kind
from celebface.recognition.base import l2_normalize

pytest.importorskip("faiss")

DIM = 16


def make_gallery(rng: np.random.Generator, n_ids: int = 30, per_id: int = 4) -> Gallery:
    centers = l2_normalize(rng.normal(size=(n_ids, DIM)))
    emb = np.repeat(centers, per_id, axis=0) + 0.3 * rng.normal(size=(n_ids * per_id, DIM)) / 4
    ids = [f"id{i:03d}" for i in range(n_ids) for _ in range(per_id)]
    g = Gallery(embedder={"name": "fake", "settings": {"dim": DIM}})
    # shuffled, so gallery rows are not grouped by identity
    order = rng.permutation(len(ids))
    g.add(emb[order], [ids[i] for i in order], [f"/p/{i}.jpg" for i in order])
    return g


def probes(rng: np.random.Generator, g: Gallery, n: int = 40) -> np.ndarray:
    near = g.embeddings[rng.integers(0, len(g), n)] + 0.2 * rng.normal(size=(n, DIM)) / 4
    return np.concatenate([near, rng.normal(size=(10, DIM))]).astype(np.float32)


@pytest.mark.parametrize("method", ["centroid", "knn", "topk"])
def test_index_gives_brute_force_names_and_scores(rng: np.random.Generator, method: str) -> None:
    g = make_gallery(rng)
    m = GalleryMatcher(g, method, k=3)
    q = probes(rng, g)
    assert m.index.kind == "flat"
    for threshold in (-1.0, 0.9, 2.0):  # all known, mixed, all unknown
        want = OpenSetPolicy(threshold).decide(m.scores(q), m.names)
        got = match(m, q, OpenSetPolicy(threshold))
        assert [x.identity for x in got] == [x.identity for x in want]
        assert [x.runner_up for x in got] == [x.runner_up for x in want]
        np.testing.assert_allclose([x.similarity for x in got], [x.similarity for x in want],
                                   atol=1e-5)
        np.testing.assert_allclose([x.runner_up_similarity for x in got],
                                   [x.runner_up_similarity for x in want], atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_finds_the_same_best_identity(rng: np.random.Generator,
                                                        kind: str) -> None:
    vecs = l2_normalize(rng.normal(size=(3000, DIM))).astype(np.float32)
    index = VectorIndex.build(vecs, kind)
    assert index.kind == kind
    q = l2_normalize(vecs[:200] + 0.05 * rng.normal(size=(200, DIM))).astype(np.float32)
    exact = np.argmax(q @ vecs.T, axis=1)
    _, ids = index.search(q, 1)
    assert (ids[:, 0] == exact).mean() >= 0.95


def test_kinds() -> None:
    assert resolve_kind("auto", 10) == "flat"
    assert resolve_kind("auto", 10**6) == "ivf"
    assert resolve_kind("ivf", 10) == "flat"  # too few vectors to train
    with pytest.raises(VectorIndexError, match="unknown index kind"):
        resolve_kind("lsh", 10)


def test_index_saved_checked_and_extended(tmp_path: Path, rng: np.random.Generator,
                                          caplog: pytest.LogCaptureFixture) -> None:
    g = make_gallery(rng)
    g.save(tmp_path)
    meta = json.loads((tmp_path / "gallery.json").read_text())
    files = meta["index"]["files"]
    assert set(files) == {"centroids", "embeddings"}
    assert all((tmp_path / f["file"]).is_file() for f in files.values())
    assert files["embeddings"]["embeddings_sha256"] == meta["embeddings_sha256"]

    loaded = Gallery.load(tmp_path)
    with caplog.at_level(logging.WARNING):
        index = load_index(loaded, "embeddings")
    assert len(index) == len(g) and "rebuilt" not in caplog.text

    # add: the stored index is extended (new vectors appended), the old file removed
    extra = l2_normalize(rng.normal(size=(3, DIM)))
    loaded.add(extra, ["new1", "new2", "new3"], ["/n/1.jpg", "/n/2.jpg", "/n/3.jpg"])
    with caplog.at_level(logging.DEBUG, logger="celebface.gallery.index"):
        loaded.save()
    assert "embeddings index extended by 3" in caplog.text
    assert "centroids index extended by 3" in caplog.text
    again = Gallery.load(tmp_path)
    assert len(load_index(again, "embeddings")) == len(g) + 3
    assert len(list(tmp_path.glob("index-*.faiss"))) == 2
    q = extra + 0.01
    assert [x.identity for x in match(GalleryMatcher(again, "knn"), q, OpenSetPolicy(0.5))] == [
        "new1", "new2", "new3"]

    # remove: rebuilt, the removed person is gone from the answers
    again.remove("new2")
    again.save()
    after = Gallery.load(tmp_path)
    named = match(GalleryMatcher(after, "knn"), q, OpenSetPolicy(-1))
    assert "new2" not in {x.identity for x in named}

    # a damaged index file is not trusted: rebuilt with a log line
    entry = json.loads((tmp_path / "gallery.json").read_text())["index"]["files"]["centroids"]
    (tmp_path / entry["file"]).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        index = load_index(Gallery.load(tmp_path), "centroids")
    assert "centroids index rebuilt" in caplog.text and len(index) == len(after.names)


def test_stale_index_is_rebuilt(tmp_path: Path, rng: np.random.Generator,
                                caplog: pytest.LogCaptureFixture) -> None:
    g = make_gallery(rng)
    g.save(tmp_path)
    stale = Gallery.load(tmp_path)
    stale.embeddings = stale.embeddings[::-1].copy()  # edited, not saved: same size
    with caplog.at_level(logging.WARNING):
        GalleryMatcher(stale, "knn").index  # noqa: B018
    assert "stale" in caplog.text


def test_chosen_kind_is_kept(tmp_path: Path, rng: np.random.Generator) -> None:
    g = make_gallery(rng)
    g.info["index"] = "hnsw"
    g.save(tmp_path)
    meta = json.loads((tmp_path / "gallery.json").read_text())["index"]
    assert meta["kind"] == "hnsw" and meta["files"]["embeddings"]["kind"] == "hnsw"
    m = GalleryMatcher(Gallery.load(tmp_path), "centroid")
    assert m.index.kind == "hnsw"
    q = probes(rng, g)
    assert [x.identity for x in match(m, q, OpenSetPolicy(-1))] == [
        x.identity for x in OpenSetPolicy(-1).decide(m.scores(q), m.names)]


def test_faiss_is_imported_lazily() -> None:
    code = "import sys, celebface, celebface.gallery; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_enroll_index_flag_switches_a_gallery(tmp_path: Path, rng: np.random.Generator) -> None:
    from celebface.cli.main import main

    make_gallery(rng).save(tmp_path)
    assert main(["enroll", "--out", str(tmp_path), "--index", "hnsw"]) == 0
    meta = json.loads((tmp_path / "gallery.json").read_text())["index"]
    assert meta["kind"] == "hnsw"
    assert {f["kind"] for f in meta["files"].values()} == {"hnsw"}
    assert len(list(tmp_path.glob("index-*.faiss"))) == 2


def test_ivf_index_is_extended_on_add(tmp_path: Path, rng: np.random.Generator,
                                      caplog: pytest.LogCaptureFixture) -> None:
    g = make_gallery(rng, n_ids=300, per_id=4)  # 1,200 vectors: enough to train IVF cells
    g.info["index"] = "ivf"
    g.save(tmp_path)
    g = Gallery.load(tmp_path)
    assert load_index(g, "embeddings").kind == "ivf"
    g.add(l2_normalize(rng.normal(size=(2, DIM))), ["x", "y"], ["/x.jpg", "/y.jpg"])
    with caplog.at_level(logging.DEBUG, logger="celebface.gallery.index"):
        g.save()
    assert "embeddings index extended by 2" in caplog.text
    m = GalleryMatcher(Gallery.load(tmp_path), "knn")
    assert m.index.kind == "ivf" and len(m.index) == 1202
    assert [x.identity for x in match(m, g.embeddings[-2:], OpenSetPolicy(0.5))] == ["x", "y"]


@pytest.mark.parametrize("method", ["centroid", "topk"])
def test_without_faiss_galleries_save_and_match_exactly(
        rng: np.random.Generator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        method: str) -> None:
    """faiss missing (no wheel for the platform): the gallery saves without index files and
    names faces by exact search, the same names and scores the index gives."""
    from celebface.gallery import index as index_module

    g = make_gallery(rng)
    queries = probes(rng, g)
    want = GalleryMatcher(g, method).top(queries, 3)
    monkeypatch.setattr(index_module, "has_faiss", lambda: False)
    g.save(tmp_path / "g")
    assert not list((tmp_path / "g").glob("*.faiss"))
    got = GalleryMatcher(Gallery.load(tmp_path / "g"), method).top(queries, 3)
    assert np.array_equal(got[0], want[0])
    assert np.allclose(got[1], want[1], atol=1e-5)
