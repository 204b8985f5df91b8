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
    bcubed,
    centre_similarity,
    cluster_photos,
    cluster_vectors,
)


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
    labels = cluster_vectors(vecs, 0.8, method)
    assert labels.max() + 1 == 3  # the lone face is a singleton
    assert labels[-1] == SINGLETON
    assert list(labels[:7]) == [0] * 7  # the largest cluster is cluster 0
    assert bcubed(truth, labels) == (1.0, 1.0)
    merged = cluster_vectors(vecs, -1.0, method)  # everything linked: one cluster
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


class ColourEmbedder:
    name, dim = "colour", 3

    def settings(self) -> dict:
        return {"model": self.name}

    def embed(self, images, faces=None):
        v = np.asarray([img.reshape(-1, 3).mean(0) + 1.0 for img in images])
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_output_folder_with_fake_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import celebface.verification.compare as compare

    monkeypatch.setattr(compare, "default_embedder", lambda *a, **k: ColourEmbedder())
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
    assert "6 faces in 7 photos -> 2 clusters, 1 singletons" in capsys.readouterr().out
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
