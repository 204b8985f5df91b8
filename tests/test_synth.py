"""The compositor records the true box of each pasted face; box datasets load from synth and
crop outputs; box metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.data import open_dataset
from celebface.data.boxes import is_box_dataset
from celebface.synth import SynthConfig, synthesize
from celebface.synth.boxeval import box_metrics
from celebface.synth.compose import gradient_background, noise_background, paste_face


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("angle", [0.0, 6.5, -11.0, 15.0, 40.0])
def test_paste_face_box_matches_pixels(angle: float) -> None:
    canvas = np.zeros((180, 220, 3), np.uint8)
    canvas[..., 2] = 200  # blue background
    face = np.zeros((60, 45, 3), np.uint8)
    face[..., 0] = 255  # red patch
    out, box = paste_face(canvas, face, (97.3, 81.8), (41, 55), angle)
    assert out.shape == canvas.shape and out.dtype == np.uint8
    red = out[..., 0] > 127
    assert red.any() and not red[0].any()
    found = mask_bbox(red)
    # pixel-level bbox vs the recorded continuous box: within one pixel per side
    assert np.allclose(found, box, atol=1.2), (found, box)
    # the box is where red is: the box's centre pixel is red, the area outside it is not
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert red[int(cy), int(cx)]
    x1, y1, x2, y2 = (int(np.floor(box[0])), int(np.floor(box[1])),
                      int(np.ceil(box[2])), int(np.ceil(box[3])))
    outside = red.copy()
    outside[y1:y2, x1:x2] = False
    assert not outside.any()


def test_backgrounds_have_size_and_vary() -> None:
    rng = np.random.default_rng(3)
    g = gradient_background(rng, 64, 48)
    n = noise_background(rng, 64, 48)
    for bg in (g, n):
        assert bg.shape == (48, 64, 3) and bg.dtype == np.uint8
        assert bg.std() > 3


def _face_set(root: Path, identities: int = 2, per_identity: int = 3) -> Path:
    """White face photos of varied sizes, a splits.csv, and a black background folder."""
    data = root / "faces"
    rows = []
    for i in range(identities):
        folder = data / f"person {i}"
        folder.mkdir(parents=True)
        for j in range(per_identity):
            size = (40 + 10 * j, 50 + 7 * i)
            Image.new("RGB", size, (255, 255, 255)).save(folder / f"p{j}.jpg", quality=95)
            rows.append(("val" if j == 0 else "train", folder.name, f"p{j}.jpg"))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    rows.append(("train", folder.name, "broken.jpg"))
    with open(data / "splits.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("split", "identity", "filename"), *rows])
    bg = root / "backgrounds"
    bg.mkdir()
    Image.new("RGB", (100, 80), (0, 0, 0)).save(bg / "black.png")
    return data


def _read_manifest(dst: Path) -> list[dict[str, str]]:
    with open(dst / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_synthesize_records_true_boxes_and_splits(tmp_path: Path) -> None:
    data = _face_set(tmp_path)
    dst = tmp_path / "synth"
    config = SynthConfig(size=96, copies=2, background_dir=str(tmp_path / "backgrounds"),
                         backgrounds=("photo",), seed=7)
    summary = synthesize(data, dst, config, progress=False)
    assert summary.written == 12 and len(summary.failed) == 1
    assert "broken.jpg" in summary.failed[0]
    rows = _read_manifest(dst)
    assert len(rows) == 12
    for col in ("source", "output", "identity", "x1", "y1", "x2", "y2", "src_width",
                "src_height"):
        assert col in rows[0]
    for row in rows:
        img = np.asarray(Image.open(dst / row["output"]).convert("RGB"))
        assert img.shape == (96, 96, 3)
        found = mask_bbox(img.mean(axis=2) > 127)
        box = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
        assert np.allclose(found, box, atol=1.6), (row["output"], found, box)
        assert 0 <= box[0] < box[2] <= 96 and 0 <= box[1] < box[3] <= 96
        src = Image.open(data / row["source"])
        assert src.size == (int(row["src_width"]), int(row["src_height"]))
    with open(dst / "splits.csv", newline="") as fh:
        splits = {(r["identity"], r["filename"]): r["split"] for r in csv.DictReader(fh)}
    assert splits[("person 0", "p0_s1.jpg")] == "val"
    assert splits[("person 1", "p2_s0.jpg")] == "train"
    assert not (dst / ".synth_journal.csv").exists()


def test_synthesize_is_reproducible_and_resumes(tmp_path: Path) -> None:
    data = _face_set(tmp_path)
    config = SynthConfig(size=64, seed=3)
    a, b = tmp_path / "a", tmp_path / "b"
    synthesize(data, a, config, progress=False)
    synthesize(data, b, SynthConfig(size=64, seed=3, workers=3), progress=False)
    outputs = [r["output"] for r in _read_manifest(a)]
    for out in outputs:
        assert (a / out).read_bytes() == (b / out).read_bytes()
    # an interrupted run: one composite missing -> only it is made again, identically
    victim = a / outputs[2]
    before = victim.read_bytes()
    victim.unlink()
    summary = synthesize(data, a, config, progress=False)
    assert summary.written == 1 and summary.resumed == len(outputs) - 1
    assert victim.read_bytes() == before
    assert _read_manifest(a) == _read_manifest(b)
    # another seed gives other composites; other settings in the same folder are refused
    synthesize(data, tmp_path / "c", SynthConfig(size=64, seed=4), progress=False)
    assert (tmp_path / "c" / outputs[0]).read_bytes() != (a / outputs[0]).read_bytes()
    with pytest.raises(ValueError, match="other settings"):
        synthesize(data, a, SynthConfig(size=64, seed=4), progress=False)


def test_box_dataset_from_synth(tmp_path: Path) -> None:
    data = _face_set(tmp_path)
    dst = tmp_path / "synth"
    synthesize(data, dst, SynthConfig(size=64), progress=False)
    assert is_box_dataset(dst) and not is_box_dataset(data)
    ds = open_dataset(dst, boxes=True)
    assert ds.kind == "synth" and len(ds) == 6
    assert ds.names == ["person 0", "person 1"]
    assert len(ds.split("val")) == 2 and len(ds.split("train")) == 4
    assert all(Path(it.path).is_file() and it.size == (64, 64) for it in ds.items)


def test_box_dataset_from_crop_output(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    for name in ("ann", "bob"):
        (src / name).mkdir(parents=True)
    Image.new("RGB", (120, 90)).save(src / "ann" / "one.jpg")
    Image.new("RGB", (120, 90)).save(src / "bob" / "two.jpg")
    Image.new("RGB", (120, 90)).save(src / "bob" / "group.jpg")
    crop = tmp_path / "crops"
    crop.mkdir()
    (crop / "crop.json").write_text(json.dumps({"source": str(src), "settings": {}}))
    cols = ["source", "output", "identity", "x1", "y1", "x2", "y2", "score", "face_index",
            "src_width", "src_height"]
    rows = [
        ["ann/one.jpg", "ann/one.jpg", "ann", 10, 12, 50, 60, 0.99, 0, 120, 90],
        ["bob/two.jpg", "bob/two.jpg", "bob", 20, 5, 70, 66, 0.98, 0, 120, 90],
        ["bob/group.jpg", "bob/group_0.jpg", "bob", 1, 1, 30, 30, 0.99, 0, 120, 90],
        ["bob/group.jpg", "bob/group_1.jpg", "bob", 60, 1, 90, 30, 0.97, 1, 120, 90],
    ]
    with open(crop / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([cols, *rows])
    (crop / "splits.csv").write_text("split,identity,filename\nval,bob,two.jpg\n")
    (src / "splits.csv").write_text("split,identity,filename\ntrain,ann,one.jpg\n")
    ds = open_dataset(crop, boxes=True)
    assert ds.kind == "crops"
    assert [it.split for it in ds.items] == ["train", "val"]
    assert [(Path(it.path), it.box) for it in ds.items] == [
        (src / "ann" / "one.jpg", (10.0, 12.0, 50.0, 60.0)),
        (src / "bob" / "two.jpg", (20.0, 5.0, 70.0, 66.0)),
    ]
    assert len(open_dataset(crop, boxes=True, one_face_only=False)) == 3
    with pytest.raises(ValueError, match="not a box dataset"):
        open_dataset(src, boxes=True)


def test_box_metrics_values() -> None:
    true = [(0, 0, 10, 10)] * 4
    pred = [(0, 0, 10, 10), (0, 0, 10, 5), (5, 5, 15, 15), None]
    m = box_metrics(pred, true, correct=[True, False, True, True])
    assert m["count"] == 4 and m["missed"] == 1
    ious = [1.0, 0.5, 25 / 175, 0.0]
    assert m["mean_iou"] == pytest.approx(np.mean(ious))
    assert m["iou_ge_0.5"] == pytest.approx(0.5)
    assert m["iou_ge_0.75"] == pytest.approx(0.25)
    assert m["accuracy_given_iou_ge_0.5"] == pytest.approx(0.5)
    assert m["accuracy_given_iou_lt_0.5"] == pytest.approx(1.0)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _face_set(tmp_path)
    code = main(["-q", "synth", str(data), str(tmp_path / "out"), "--size", "64",
                 "--max-identities", "1", "--splits", "train"])
    assert code == 0
    rows = _read_manifest(tmp_path / "out")
    assert {r["identity"] for r in rows} == {"person 0"}
    assert {r["split"] for r in rows} == {"train"} and len(rows) == 2
    assert "2 composites" in capsys.readouterr().out
    assert main(["-q", "synth", str(data), str(tmp_path / "bad"), "--backgrounds", "x"]) == 2


@pytest.mark.integration
def test_synth_on_pins(pins: Path, tmp_path: Path) -> None:
    dst = tmp_path / "pins"
    summary = synthesize(pins, dst, SynthConfig(size=128, max_identities=2,
                                                max_per_identity=4), progress=False)
    assert summary.written == 8 and not summary.failed
    ds = open_dataset(dst, boxes=True)
    assert len(ds.names) == 2
    assert {it.split for it in ds.items} <= {"train", "val"}


@pytest.mark.integration
def test_crop_output_is_a_box_dataset(five_celeb: Path, tmp_path: Path) -> None:
    import shutil

    from celebface.cropping import CropConfig, crop_dataset

    src = tmp_path / "raw"
    for name in ("ben_afflek", "madonna"):
        (src / name).mkdir(parents=True)
        for photo in sorted((five_celeb / name).glob("*.jpg"))[:2]:
            shutil.copy(photo, src / name / photo.name)
    crop_dataset(src, tmp_path / "crops", CropConfig(size=64, device="cpu", progress=False))
    ds = open_dataset(tmp_path / "crops", boxes=True)
    assert ds.kind == "crops" and ds.names == ["ben_afflek", "madonna"]
    assert len(ds) >= 3
    for it in ds.items:
        w, h = Image.open(it.path).size
        assert it.size == (w, h)
        assert 0 <= it.box[0] < it.box[2] <= w + 1 and 0 <= it.box[1] < it.box[3] <= h + 1
