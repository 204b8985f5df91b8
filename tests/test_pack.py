"""`celebface pack`: arrays, labels, splits, bad files, atomic output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.data import open_dataset
from celebface.data.splits import stratified_splits
from celebface.packing import PackConfig, fit_square, pack_dataset


def _make_dataset(root: Path, rng: np.random.Generator, per_id: int = 5) -> Path:
    for k, identity in enumerate(("pins_Anna B", "pins_Carl D", "pins_Eve F")):
        folder = root / identity
        folder.mkdir(parents=True)
        for i in range(per_id):
            h, w = 40 + 7 * i, 30 + 5 * k  # not square, sizes differ
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"img{i}.png")
    return root


def test_pack_writes_arrays_labels_and_splits(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _make_dataset(tmp_path / "data", rng)
    (data / "pins_Eve F" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    summary = pack_dataset(data, tmp_path / "packed", size=32, progress=False)
    assert summary.count == 15
    assert len(summary.skipped) == 1 and "broken.jpg" in summary.skipped[0]

    packed = open_dataset(tmp_path / "packed")
    assert packed.kind == "pack" and isinstance(packed.images, np.memmap)
    assert packed.images.shape == (15, 32, 32, 3) and packed.images.dtype == np.uint8
    assert packed.labels.dtype == np.int64
    assert packed.names == ["pins_Anna B", "pins_Carl D", "pins_Eve F"]
    assert np.bincount(packed.labels).tolist() == [5, 5, 5]
    paths = [it.path for it in packed.items]
    assert [Path(p).parent.name for p in paths] == [packed.names[i] for i in packed.labels]
    # images are the source images resized, in path order
    src = np.asarray(Image.open(paths[3]).convert("RGB"))
    np.testing.assert_array_equal(packed.images[3], fit_square(src, 32))
    assert packed.items[3].row == 3
    np.testing.assert_array_equal(packed.load(packed.items[3]), packed.images[3])
    # compatibility copy of the mapping
    assert np.load(tmp_path / "packed" / "label_mapping.npy").tolist() == packed.names
    mapping = json.loads((tmp_path / "packed" / "label_mapping.json").read_text())
    assert mapping == {"0": "pins_Anna B", "1": "pins_Carl D", "2": "pins_Eve F"}
    assert {it.split for it in packed.items} <= {"train", "val", "test"}
    assert "broken.jpg" in (tmp_path / "packed" / "errors.txt").read_text()
    assert not list((tmp_path / "packed").glob("*.tmp")) and not list(
        (tmp_path / "packed").glob(".*tmp"))


def test_pack_takes_splits_csv_from_data(tmp_path: Path, rng: np.random.Generator) -> None:
    data = _make_dataset(tmp_path / "data", rng, per_id=3)
    rows = [("val" if i == 0 else "train", ident, f"img{i}.png")
            for ident in ("pins_Anna B", "pins_Carl D", "pins_Eve F") for i in range(3)]
    with open(data / "splits.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("split", "identity", "filename"), *rows])
    pack_dataset(data, tmp_path / "packed", size=16, progress=False)
    packed = open_dataset(tmp_path / "packed")
    got = {it.key: it.split for it in packed.items}
    assert got == {(ident, name): split for split, ident, name in rows}
    assert [it.row for it in packed.split("val").items] == [0, 3, 6]


def test_pack_fills_splits_as_every_stage_does(tmp_path: Path, rng: np.random.Generator
                                               ) -> None:
    """One split-fill policy: listed rows win, an unlisted image trains (pack used to give it
    a computed split that depended on the rest of the folder)."""
    data = _make_dataset(tmp_path / "data", rng, per_id=4)
    rows = [("val", ident, "img0.png") for ident in ("pins_Anna B", "pins_Carl D")]
    with open(data / "splits.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("split", "identity", "filename"), *rows])
    pack_dataset(data, tmp_path / "packed", size=16, val_fraction=0.5, test_fraction=0.25,
                 progress=False)
    packed = {it.key: it.split for it in open_dataset(tmp_path / "packed").items}
    embedded = {it.key: it.split for it in open_dataset(data).with_splits().items}
    assert packed == embedded
    assert sorted(k for k, s in packed.items() if s != "train") == sorted(
        (ident, name) for _, ident, name in rows)


def test_stratified_splits_are_seeded_and_keep_train() -> None:
    items = [c for c in "abc" for _ in range(20)] + ["d"]
    a = stratified_splits(items, 0.2, 0.1, seed=1)
    assert a == stratified_splits(items, 0.2, 0.1, seed=1)
    assert a != stratified_splits(items, 0.2, 0.1, seed=2)
    for c in "abc":
        got = [s for s, it in zip(a, items, strict=True) if it == c]
        assert (got.count("train"), got.count("val"), got.count("test")) == (14, 4, 2)
    assert a[-1] == "train"  # a lone image stays in train


def test_fit_modes() -> None:
    img = np.full((20, 10, 3), 200, np.uint8)
    assert fit_square(img, 8, "stretch").min() == 200
    padded = fit_square(img, 20, "pad")
    assert padded[:, 0].max() == 0 and padded[10, 10].min() == 200
    assert fit_square(img, 8, "crop").shape == (8, 8, 3)
    with pytest.raises(ValueError, match="fit"):
        PackConfig(fit="squash")


def test_repack_replaces_atomically_and_cli(tmp_path: Path, rng: np.random.Generator,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = _make_dataset(tmp_path / "data", rng, per_id=2)
    dst = tmp_path / "packed"
    pack_dataset(data, dst, size=16, progress=False)
    assert main(["-q", "pack", str(data), str(dst), "--size", "24", "--val", "0.5",
                 "--test", "0"]) == 0
    assert "packed 6 images of 3 identities" in capsys.readouterr().out
    packed = open_dataset(dst)
    assert packed.images.shape == (6, 24, 24, 3)
    assert len(packed.split("val")) == 3
    assert main(["pack", str(tmp_path / "nothing"), str(dst)]) == 2
    # a re-pack that dies half-way leaves no pack.json: loading refuses the mixed folder
    import celebface.packing.pack as pack_mod

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(pack_mod, "_write_small_files", crash)
        with pytest.raises(KeyboardInterrupt):
            pack_dataset(data, dst, size=16, progress=False)
    with pytest.raises(FileNotFoundError, match=r"pack\.json"):
        open_dataset(dst)
    pack_dataset(data, dst, size=16, progress=False)
    assert open_dataset(dst).images.shape == (6, 16, 16, 3)
