"""`celebface cluster`: grouping logic on synthetic vectors, the output folder with fake models,
and a real run on photos of three people whose renamed clusters are then enrolled."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.clustering import (
    METHODS,
    SINGLETON,
    ClusterConfig,
    ClusterError,
    average_linkage,
    bcubed,
    centre_similarity,
    cluster_photos,
    cluster_vectors,
    reranked_distances,
)
from fakes import MeanColourEmbedder


def _colour() -> MeanColourEmbedder:
    """The mean colour of the face region (or whole image) + 1, as a unit vector."""
    return MeanColourEmbedder("colour", offset=1.0)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def blobs(rng: np.random.Generator, sizes: list[int], spread: float = 0.05) -> tuple:
    centres = rng.normal(size=(len(sizes), 32))
    vecs = np.concatenate([c + spread * rng.normal(size=(n, 32)) * np.linalg.norm(c)
                           for c, n in zip(centres, sizes, strict=True)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return vecs, truth


@pytest.mark.parametrize("method", METHODS)
def test_groups_without_knowing_how_many(method: str, rng: np.random.Generator) -> None:
    vecs, truth = blobs(rng, [7, 5, 3, 1])
    labels = cluster_vectors(vecs, 0.8, method, cut=0.7)
    assert labels.max() + 1 == 3  # the lone face is a singleton
    assert labels[-1] == SINGLETON
    assert list(labels[:7]) == [0] * 7  # the largest cluster is cluster 0
    assert bcubed(truth, labels) == (1.0, 1.0)
    merged = cluster_vectors(vecs, -1.0, method, cut=10.0)  # everything linked: one cluster
    p, r = bcubed(truth, merged)
    assert r == 1.0 and p < 0.5


def test_bcubed_and_centre_similarity() -> None:
    truth = ["a", "a", "b", "b"]
    assert bcubed(truth, np.array([0, 0, 0, 0])) == (0.5, 1.0)
    assert bcubed(truth, np.array([-1, -1, -1, -1])) == (1.0, 0.5)
    vecs = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    sims = centre_similarity(vecs, np.array([0, 0, -1]))
    assert sims[2] == 1.0 and sims[0] == pytest.approx(sims[1]) and sims[0] < 1.0
    with pytest.raises(ValueError, match="method"):
        cluster_vectors(vecs, 0.5, "kmeans")
    with pytest.raises(ValueError, match="cut"):
        cluster_vectors(vecs, 0.5, "rerank")


def people(rng: np.random.Generator, sizes: list[int], spread: float = 0.25) -> tuple:
    """Face-like unit vectors: a direction everyone shares, one per person, noise per face."""
    centres = 2.0 * rng.normal(size=32) + rng.normal(size=(len(sizes), 32))
    vecs = np.concatenate([c + spread * rng.normal(size=(n, 32))
                           for c, n in zip(centres, sizes, strict=True)])
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True), np.repeat(np.arange(len(sizes)),
                                                                        sizes)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(((a[:, None] == a[None]) == (b[:, None] == b[None])).all())


def test_average_linkage_matches_scipy(rng: np.random.Generator) -> None:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    vecs, _ = blobs(rng, [9, 6, 4, 4, 2, 1], spread=0.6)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tree = linkage(pdist(vecs, "cosine"), "average")
    found = set()
    for cut in (0.05, 0.2, 0.4, 0.6, 0.9):
        ours = average_linkage(1.0 - vecs @ vecs.T, cut)
        assert same_partition(ours, fcluster(tree, cut, "distance"))
        found.add(len(np.unique(ours)))
    assert len(found) >= 3  # the cuts gave different partitions


def reference_reranked(vecs: np.ndarray, k1: int = 8, k2: int = 6, w: float = 0.3) -> np.ndarray:
    """Zhong et al.'s k-reciprocal re-ranking, written plainly with loops."""
    n = len(vecs)
    d = np.clip(2 - 2 * vecs @ vecs.T, 0, None)
    rank = np.argsort(d, 1, kind="stable")

    def recip(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k + 1]
        return fwd[np.any(rank[fwd, :k + 1] == i, 1)]

    enc = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        expanded = r
        for j in r:
            rj = recip(j, round(k1 / 2))
            if len(np.intersect1d(rj, r)) > 2 / 3 * len(rj):
                expanded = np.union1d(expanded, rj)
        enc[i, expanded] = np.exp(-d[i, expanded]) / np.exp(-d[i, expanded]).sum()
    enc = np.stack([enc[rank[i, :k2]].mean(0) for i in range(n)])
    shared = np.array([[np.minimum(enc[i], enc[j]).sum() for j in range(n)] for i in range(n)])
    return (1 - w) * (1 - shared / (2 - shared)) + w * d


def test_reranked_distances_match_the_reference(rng: np.random.Generator) -> None:
    vecs, _ = people(rng, [12, 10, 6, 3])
    ours = reranked_distances(vecs)
    ref = reference_reranked(vecs)
    assert np.allclose(ours, np.maximum(ref, ref.T) - np.diag(np.diag(ref)), atol=1e-5)
    # people with more faces than the neighbourhood: their faces share neighbours, strangers not
    vecs, truth = people(rng, [14, 12, 10])
    ours = reranked_distances(vecs)
    same = truth[:, None] == truth[None]
    assert ours[same].mean() < 0.3 < 0.45 < ours[~same].min()
    assert reranked_distances(vecs[:1]).shape == (1, 1)


def lookalikes(rng: np.random.Generator, n: int, cos: float) -> tuple:
    """Two tight groups of ``n`` faces whose centres have cosine ``cos``."""
    a = rng.normal(size=32)
    b = rng.normal(size=32)
    b -= (b @ a) / (a @ a) * a
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    centres = [a, cos * a + np.sqrt(1 - cos ** 2) * b]
    vecs = np.concatenate([c + 0.03 * rng.normal(size=(n, 32)) for c in centres])
    return vecs, np.repeat([0, 1], n)


def test_rerank_keeps_lookalikes_apart(rng: np.random.Generator) -> None:
    vecs, truth = lookalikes(rng, 20, 0.95)
    merged = cluster_vectors(vecs, 0.9, "agglomerative")  # mean cosine ~0.93 >= 0.9: merged
    assert merged.max() == 0
    kept = cluster_vectors(vecs, 0.9, "rerank", cut=0.7)  # no shared neighbours: apart
    assert bcubed(truth, kept) == (1.0, 1.0)


def test_rerank_holds_small_groups_to_the_cosine(rng: np.random.Generator) -> None:
    vecs, truth = people(rng, [3, 3, 3])
    sims = vecs @ vecs.T
    same = truth[:, None] == truth[None]
    assert sims[~same].max() < 0.92 < sims[same].min()
    # nine faces: every face is among everyone's 8 nearest, so neighbourhoods mean nothing
    ungated = cluster_vectors(vecs, 0.92, "rerank", cut=0.7, large=0)
    assert bcubed(truth, ungated)[0] < 0.5
    assert bcubed(truth, cluster_vectors(vecs, 0.92, "rerank", cut=0.7)) == (1.0, 1.0)


@pytest.mark.slow
def test_output_folder_with_fake_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from celebface.recognition import EmbedderSpec

    monkeypatch.setattr(EmbedderSpec, "build", lambda *a, **k: _colour())
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    colours = {"r": (200, 0, 0), "g": (0, 200, 0), "b": (0, 0, 200)}
    for k, (name, n) in enumerate([("r", 3), ("g", 2), ("b", 1)]):
        for j in range(n):
            where = photos / "sub" if j % 2 else photos
            Image.new("RGB", (30 + k + j, 30), colours[name]).save(where / f"{name}, {j}.png")
    (photos / "broken.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    assert main(["cluster", str(photos), "--out", str(out), "--detector", "none",
                 "--threshold", "0.99"]) == 0
    said = capsys.readouterr().out
    assert "6 faces in 7 photos -> 2 clusters, 1 singletons" in said
    assert "(agglomerative, cosine 0.9900)" in said  # no measured re-ranking cut: fallback
    rows = read_rows(out / "clusters.csv")
    assert len(rows) == 6 and {r["cluster"] for r in rows} == {"cluster_000", "cluster_001",
                                                               "singleton"}
    assert sorted(r["photo"] for r in rows if r["cluster"] == "cluster_000") == [
        "r, 0.png", "r, 2.png", "sub/r, 1.png"]  # commas quoted by the csv module
    assert len(list((out / "people" / "cluster_000").glob("*.jpg"))) == 3
    assert len(list((out / "singletons").glob("*.jpg"))) == 1
    assert {p.name for p in (out / "sheets").glob("*.png")} == {
        "cluster_000.png", "cluster_001.png", "singletons.png"}
    # a second run into the same folder is refused (renamed folders are never overwritten)
    with pytest.raises(ClusterError, match="not empty"):
        cluster_photos(photos, out, ClusterConfig(detector="none", threshold=0.99))
    # with a cut given, the faces are re-ranked: the same groups
    s = cluster_photos(photos, tmp_path / "out2", ClusterConfig(detector="none", threshold=0.99,
                                                                cut=0.7), progress=False)
    assert (s.method, s.cut, s.clusters, s.singletons) == ("rerank", 0.7, 2, 1)


@pytest.mark.slow
@pytest.mark.integration
def test_real_photos_cluster_then_enroll(five_celeb: Path, tmp_path: Path) -> None:
    from celebface.gallery import Gallery, enroll

    photos = tmp_path / "photos"
    photos.mkdir()
    truth = {}
    for person in ("ben_afflek", "madonna", "mindy_kaling"):
        for k, src in enumerate(sorted((five_celeb / person).iterdir())[:4]):
            name = f"{person[:3]}{k}{src.suffix}"
            (photos / name).symlink_to(src)
            truth[name] = person
    out = tmp_path / "out"
    summary = cluster_photos(photos, out, ClusterConfig(device="cpu"), progress=False)
    rows = read_rows(out / "clusters.csv")
    largest = [r for r in rows if r["face"] == "0"]
    labels = np.asarray([int(r["cluster"][-3:]) if r["cluster"] != "singleton" else -1
                         for r in largest])
    p, _ = bcubed([truth[r["photo"]] for r in largest], labels)
    assert p >= 0.9 and summary.clusters >= 2
    # rename the clusters as a user would, then enroll them
    for k, folder in enumerate(sorted((out / "people").iterdir())):
        folder.rename(folder.with_name(f"person {k}"))
    s = enroll(out / "people", tmp_path / "gallery", progress=False)
    assert s.identities == summary.clusters
    assert set(Gallery.load(tmp_path / "gallery").names) == {
        f"person {k}" for k in range(summary.clusters)}
