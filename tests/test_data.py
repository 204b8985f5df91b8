"""The data layer opens every kind of dataset folder, routed by its stage manifest; the one
embedding engine's cache serves embed, enroll and calibrate alike. Tiny images, a stand-in
embedder (no models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.data import DatasetError, open_dataset
from celebface.data.stage import STAGE_FILE, read_stage
from celebface.gallery import EnrollConfig, Gallery, enroll
from celebface.recognition import embed_dataset, load_embeddings
from celebface.recognition.engine import EmbedConfig, EmbeddingEngine
from celebface.synth import SynthConfig, synthesize
from faultkit import ColourEmbedder, write_people


def _splits_csv(root: Path, rows: list[tuple[str, str, str]]) -> None:
    lines = ["split,identity,filename", *(",".join(r) for r in rows)]
    (root / "splits.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_an_embeddings_folder_opens_with_its_vectors_and_source_splits(tmp_path: Path) -> None:
    data = write_people(tmp_path / "data", ["amy", "bob"], n=3)
    _splits_csv(data, [("val", "amy", "0.png"), ("train", "amy", "1.png"),
                       ("val", "bob", "2.png")])
    (data / "splits.csv").rename(tmp_path / "later.csv")  # embedded without splits
    out = tmp_path / "emb"
    made = embed_dataset(data, out, embedder=ColourEmbedder(), faces="whole", progress=False)
    assert made.splits is None and not (out / "splits.txt").exists()
    (tmp_path / "later.csv").rename(data / "splits.csv")  # the source's splits.csv applies

    ds = open_dataset(out)
    assert ds.kind == "embeddings" and read_stage(out)["kind"] == "embeddings"
    assert ds.names == ["amy", "bob"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(ds.vectors_of(ds.items), made.embeddings)
    assert [it.split for it in ds.items] == ["val", "train", None, None, None, "val"]
    assert [it.path for it in ds.split("val").items] == [made.paths[0], made.paths[5]]
    filled = ds.with_splits()
    assert [it.split for it in filled.items] == ["val", "train", "train", "train", "train",
                                                 "val"]
    assert load_embeddings(out).splits == [it.split for it in ds.items]

    (out / STAGE_FILE).unlink()  # a folder written before the stage manifest: its marker files
    assert open_dataset(out).kind == "embeddings"
    with pytest.raises(DatasetError, match="already embeddings"):
        embed_dataset(out, tmp_path / "again", embedder=ColourEmbedder(), progress=False)


def test_a_synth_output_opens_as_a_box_dataset_and_photos_do_not(tmp_path: Path) -> None:
    data = write_people(tmp_path / "data", ["amy", "bob"], n=2, size=40)
    dst = tmp_path / "synth"
    synthesize(data, dst, SynthConfig(size=64), progress=False)
    assert read_stage(dst)["kind"] == "synth"

    boxes = open_dataset(dst, boxes=True)
    plain = open_dataset(dst)  # the composites, each with its true face box
    assert boxes.kind == plain.kind == "synth" and len(boxes) == len(plain) == 4
    for it in boxes.items:
        assert it.size == (64, 64) and it.box is not None
        x1, y1, x2, y2 = it.box
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    assert {(Path(it.path).name, it.box) for it in plain.items} == {
        (Path(it.path).name, it.box) for it in boxes.items}
    with pytest.raises(DatasetError, match="not a box dataset"):
        open_dataset(data, boxes=True)


def test_enrolment_reuses_the_vectors_embed_cached(tmp_path: Path) -> None:
    data = write_people(tmp_path / "data", ["amy", "bob"], n=3)
    emb = ColourEmbedder()
    made = embed_dataset(data, tmp_path / "emb", embedder=emb, progress=False)
    assert made.meta["computed"] == 6 and emb.calls == 6

    cfg = EnrollConfig(embedder="colour", detector="none", cache_dir=str(tmp_path / "emb/.cache"))
    s = enroll(data, tmp_path / "g1", config=cfg, models=(emb, None), progress=False)
    assert s.added == 6 and emb.calls == 6  # nothing computed again
    g = Gallery.load(tmp_path / "g1")
    order = {p: i for i, p in enumerate(made.paths)}
    rows = [order[str(Path(p))] for p in g.sources]
    np.testing.assert_allclose(g.embeddings, made.embeddings[rows], atol=1e-6)

    # without a cache_dir a gallery caches in its own folder: a second enrolment of the
    # same photos into another folder computes them once, a third nothing
    own = EnrollConfig(embedder="colour", detector="none")
    enroll(data, tmp_path / "g2", config=own, models=(emb, None), progress=False)
    assert emb.calls == 12 and (tmp_path / "g2" / ".cache").is_dir()
    enroll(None, tmp_path / "g2", remove=["amy"], config=own, progress=False)
    s = enroll(data, tmp_path / "g2", config=own, models=(emb, None), progress=False)
    assert s.added == 3 and emb.calls == 12


def test_cache_keys_follow_what_changes_the_chip(tmp_path: Path) -> None:
    root = tmp_path / "data" / "amy"
    root.mkdir(parents=True)
    Image.new("RGB", (120, 90), (200, 40, 40)).save(root / "big.png")
    ds = open_dataset(tmp_path / "data")
    item = ds.items[0]

    def key(**kwargs: object) -> str:
        faces = kwargs.pop("faces", "auto")
        engine = EmbeddingEngine(ColourEmbedder(), None, EmbedConfig(faces=faces), **kwargs)
        return engine.key(ds, item)

    assert key() == key(max_side=200)  # not shrunk: the same chip
    assert key(max_side=60) != key()  # shrunk before detection: another chip
    assert key(faces="whole") != key()

    class Hog:
        name = "hog"

    assert key(detector=Hog()) != key()
