"""Cropping faces: geometry, policies, the dataset stage, resuming, the CLI."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.cropping import CropConfig, crop_dataset, select_faces
from celebface.cropping.dataset import output_names
from celebface.data import FaceItem, list_dataset
from celebface.data.crops import MANIFEST_COLUMNS
from celebface.geometry import aligned_template, crop_face, similarity_transform, square_box
from celebface.types import Face
from fakes import BrightSquareDetector

# --- geometry ---------------------------------------------------------------------------


def test_square_box_and_margin() -> None:
    face = Face(box=(10, 20, 50, 100))  # 40 x 80
    assert square_box(face, 0.0) == pytest.approx((-10, 20, 70, 100))
    assert square_box(face, 0.25) == pytest.approx((-30, 0, 90, 120))


def test_crop_face_square_with_out_of_image_border() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 200
    crop = crop_face(img, Face(box=(40, 40, 60, 60)), margin=0.0, size=40)
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    assert crop[5:35, 5:35].min() >= 190  # the square is the face
    # a face at the corner: the part outside the image is black border, the rest the face
    img2 = np.full((50, 50, 3), 250, np.uint8)
    crop2 = crop_face(img2, Face(box=(0, 0, 20, 20)), margin=0.5, size=40)
    assert crop2[:8, :8].max() == 0 and crop2[30:, 30:].min() >= 240


def test_crop_face_shrinks_large_faces_without_aliasing() -> None:
    stripes = np.zeros((1000, 1000, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes average to grey when shrunk properly
    crop = crop_face(stripes, Face(box=(100, 100, 900, 900)), margin=0.0, size=50)
    assert abs(float(crop[5:45, 5:45].mean()) - 127.5) < 10
    assert float(crop[5:45, 5:45].std()) < 15


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a = np.deg2rad(20)
    m = 1.7 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ m.T + [5, -3]
    est = similarity_transform(src, dst)
    assert est[:, :2] == pytest.approx(m, abs=1e-6)
    assert est[:, 2] == pytest.approx([5, -3], abs=1e-6)


def test_aligned_crop_puts_landmarks_on_the_template() -> None:
    # draw 5 bright dots on a rotated, scaled "face"; after alignment they sit on the template
    size, margin = 112, 0.2
    tmpl = aligned_template(size, margin)
    a = np.deg2rad(-25)
    rot = 2.5 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = (tmpl - 56) @ rot.T + [200, 180]
    img = np.zeros((400, 400, 3), np.uint8)
    for x, y in pts:
        img[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4] = 255
    face = Face(box=(100, 80, 300, 280), landmarks=pts.astype(np.float32))
    crop = crop_face(img, face, margin=margin, size=size, align=True)
    for x, y in tmpl:
        assert crop[round(y), round(x)].mean() > 150
    with pytest.raises(ValueError, match="landmarks"):
        crop_face(img, Face(box=(0, 0, 10, 10)), align=True)


# --- policies and names ------------------------------------------------------------------


def test_select_faces_policies() -> None:
    faces = [Face(box=(0, 0, 10, 10), score=0.99), Face(box=(100, 0, 150, 50), score=0.95),
             Face(box=(200, 0, 280, 80), score=0.5)]
    assert select_faces(faces, "largest", 0.9)[0].width == 50
    assert [f.score for f in select_faces(faces, "all", 0.9)] == [0.99, 0.95]
    assert [f.width for f in select_faces(faces, "all", 0.0, min_size=20)] == [50, 80]
    chin = Face(box=(110, 30, 140, 60), score=0.97)  # in the head of the 50-px face
    assert [f.score for f in select_faces([*faces, chin], "all", 0.9)] == [0.99, 0.95]
    assert select_faces([], "largest") == []
    with pytest.raises(ValueError, match="policy"):
        select_faces(faces, "biggest")


def test_output_names_disambiguate_same_stem() -> None:
    items = [FaceItem("a", "s/a/x.jpg"), FaceItem("a", "s/a/x.PNG"), FaceItem("b", "s/b/x.jpg")]
    assert output_names(items) == {"s/a/x.jpg": "x_jpg", "s/a/x.PNG": "x_png", "s/b/x.jpg": "x"}
    same = [FaceItem("a", f"s/a/{n}") for n in ("y.JPG", "y.jpg", "y_jpg.png")]
    names = output_names(same)
    assert len({v.lower() for v in names.values()}) == 3, names


# --- the dataset stage, with a fake detector (fast, deterministic) -----------------------


def _picture(h: int, w: int, squares: Sequence[tuple[int, int, int]]) -> np.ndarray:
    img = np.full((h, w, 3), 60, np.uint8)
    for x, y, s in squares:
        img[y : y + s, x : x + s] = (230, 230, 230)
    return img


def _make_dataset(root: Path) -> Path:
    src = root / "src"
    for folder in ("pins_Adriana Lima", "Zoë 名前", "empty"):
        (src / folder).mkdir(parents=True)
    a, z = src / "pins_Adriana Lima", src / "Zoë 名前"
    Image.fromarray(_picture(80, 60, [(2, 20, 25)])).save(a / "one face.jpg", quality=95)
    Image.fromarray(_picture(80, 120, [(5, 10, 20), (70, 10, 40)])).save(a / "two.png")
    Image.fromarray(_picture(50, 50, [])).save(a / "none.jpg")
    Image.fromarray(_picture(64, 64, [(20, 20, 20)])).convert("L").save(z / "grey.png")
    Image.fromarray(_picture(64, 64, [(20, 20, 20)])).convert("RGBA").save(z / "rgba.png")
    Image.fromarray(_picture(64, 64, [(20, 20, 20)])).convert("CMYK").save(z / "cmyk.jpg")
    (z / "zero.jpg").write_bytes(b"")
    (z / "text.png").write_text("not a picture")
    data = (a / "one face.jpg").read_bytes()
    (z / "cut.jpg").write_bytes(data[: len(data) // 3])
    (src / "splits.csv").write_text(
        "split,identity,filename\ntrain,pins_Adriana Lima,one face.jpg\nval,Zoë 名前,grey.png\n",
        encoding="utf-8",
    )
    return src


def _manifest(dst: Path) -> list[dict[str, str]]:
    with open(dst / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_crop_dataset_outputs_and_bad_files(tmp_path: Path) -> None:
    src = _make_dataset(tmp_path)
    dst = tmp_path / "dst"
    config = CropConfig(batch_size=3, size=32, progress=False, preview=4)
    s = crop_dataset(src, dst, config, detector=BrightSquareDetector())
    assert (s.images, s.with_face, s.faces, s.no_face, s.errors) == (9, 5, 5, 1, 3)
    rows = _manifest(dst)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    for row in rows:
        out = dst / row["output"]
        assert out.is_file() and Image.open(out).size == (32, 32)
        assert Image.open(out).mode == "RGB"
    one = next(r for r in rows if r["source"] == "pins_Adriana Lima/one face.jpg")
    assert [float(one[k]) for k in ("x1", "y1", "x2", "y2")] == [2, 20, 27, 45]
    assert (one["src_width"], one["src_height"]) == ("60", "80")
    two = next(r for r in rows if r["source"] == "pins_Adriana Lima/two.png")
    assert float(two["x1"]) == 70  # the largest face
    assert (dst / "no_faces.txt").read_text(encoding="utf-8") == "pins_Adriana Lima/none.jpg\n"
    errors = (dst / "errors.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(e.split("\t")[0] for e in errors) == [
        "Zoë 名前/cut.jpg", "Zoë 名前/text.png", "Zoë 名前/zero.jpg"]
    assert all(len(e.split("\t")) == 2 and e.split("\t")[1] for e in errors)
    splits = (dst / "splits.csv").read_text(encoding="utf-8").splitlines()
    assert sorted(splits) == ["split,identity,filename", "train,pins_Adriana Lima,one face.jpg",
                              "val,Zoë 名前,grey.jpg"]
    assert Image.open(dst / "preview.png").size[0] > 0
    assert json.loads((dst / "crop.json").read_text())["last_run"]["faces"] == 5


def test_all_policy_min_score_min_size(tmp_path: Path) -> None:
    src = _make_dataset(tmp_path)
    dst = tmp_path / "all"
    crop_dataset(src, dst, CropConfig(faces="all", size=16, progress=False),
                 detector=BrightSquareDetector())
    outs = sorted(r["output"] for r in _manifest(dst))
    assert "pins_Adriana Lima/two_1.jpg" in outs and "pins_Adriana Lima/two_2.jpg" in outs
    dst2 = tmp_path / "strict"
    s = crop_dataset(src, dst2, CropConfig(faces="all", min_score=0.97, min_size=25, size=16,
                                            progress=False), detector=BrightSquareDetector())
    # only left-half faces score 0.99; of those only the 25 px one is >= 25 px
    assert [r["source"] for r in _manifest(dst2)] == ["pins_Adriana Lima/one face.jpg"]
    assert s.no_face == 5


def test_interrupted_run_resumes(tmp_path: Path) -> None:
    src = _make_dataset(tmp_path)
    dst = tmp_path / "dst"
    config = CropConfig(batch_size=2, size=16, progress=False)
    with pytest.raises(KeyboardInterrupt):
        crop_dataset(src, dst, config, detector=BrightSquareDetector(crash_after=1))
    first = _manifest(dst)
    assert 1 <= len(first) < 5  # the first batch was kept
    # simulate a kill in the middle of writing a line, and a half-written temp file
    with open(dst / "manifest.csv", "a", encoding="utf-8") as fh:
        fh.write("pins_Adriana Lima/tw")
    (dst / "Zoë 名前" / ".junk.jpg.tmp").write_bytes(b"x")
    det = BrightSquareDetector()
    s = crop_dataset(src, dst, config, detector=det)
    assert s.skipped > 0 and s.processed == s.images - s.skipped
    rows = _manifest(dst)
    assert len(rows) == 5 and len({r["source"] for r in rows}) == 5
    assert rows[: len(first)] == first
    assert not list(dst.rglob("*.tmp"))  # the killed run's temporary file is gone
    # a third run has nothing to do
    s3 = crop_dataset(src, dst, config, detector=BrightSquareDetector())
    # only the 3 unreadable files are tried again (a failure may have been passing), and
    # errors.txt lists them once
    assert (s3.processed, s3.skipped, s3.errors) == (3, 6, 3)
    assert len((dst / "errors.txt").read_text(encoding="utf-8").splitlines()) == 3
    assert len(_manifest(dst)) == 5


def test_changed_settings_are_refused_unless_overwrite(tmp_path: Path) -> None:
    src = _make_dataset(tmp_path)
    dst = tmp_path / "dst"
    crop_dataset(src, dst, CropConfig(size=16, progress=False), detector=BrightSquareDetector())
    with pytest.raises(ValueError, match="size"):
        crop_dataset(src, dst, CropConfig(size=24, progress=False), detector=BrightSquareDetector())
    s = crop_dataset(src, dst, CropConfig(size=24, progress=False, overwrite=True),
                     detector=BrightSquareDetector())
    assert s.skipped == 0 and len(_manifest(dst)) == 5


def test_cli_missing_src(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["crop", str(tmp_path / "absent"), str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "absent" in err and "no such folder" in err and len(err.strip().splitlines()) == 1


# --- real photos --------------------------------------------------------------------------


def _slice(root: Path, tmp: Path, per_identity: int, identities: int) -> Path:
    """Symlinks to a few real photos per identity (nothing is copied)."""
    src = tmp / "slice"
    by_id: dict[str, list[Path]] = {}
    for it in list_dataset(root):
        by_id.setdefault(it.identity, []).append(Path(it.path))
    for identity in sorted(by_id)[:identities]:
        (src / identity).mkdir(parents=True)
        for p in by_id[identity][:per_identity]:
            os.symlink(p, src / identity / p.name)
    return src


@pytest.mark.integration
def test_crop_five_celeb_slice_with_cli(five_celeb: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = _slice(five_celeb, tmp_path, per_identity=2, identities=5)
    dst = tmp_path / "crops"
    assert main(["crop", str(src), str(dst), "--device", "cpu", "--preview", "4",
                 "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "crop summary" in out and "images/s" in out
    rows = _manifest(dst)
    assert len(rows) >= 9  # a face in (nearly) every photo
    for row in rows:
        assert Image.open(dst / row["output"]).size == (224, 224)
        assert float(row["score"]) >= 0.9
        assert float(row["left_eye_x"]) < float(row["right_eye_x"])
    assert (dst / "preview.png").is_file()
    # aligned crops and HOG through the CLI too
    assert main(["crop", str(src), str(tmp_path / "aligned"), "--align", "--size", "112",
                 "--preview", "0", "--no-progress", "--detector", "hog"]) == 0
    assert len(_manifest(tmp_path / "aligned")) >= 8


@pytest.mark.integration
def test_crop_pins_slice(pins: Path, tmp_path: Path) -> None:
    src = _slice(pins, tmp_path, per_identity=4, identities=5)
    s = crop_dataset(src, tmp_path / "crops", CropConfig(device="cpu", progress=False))
    assert s.images == 20 and s.errors == 0
    assert s.no_face <= 2  # tight crops are found thanks to padding


@pytest.mark.integration
def test_exif_rotated_real_face_is_cropped_upright(pins: Path, tmp_path: Path) -> None:
    photo = next(it.path for it in list_dataset(pins) if it.identity.startswith("pins_A"))
    upright = np.asarray(Image.open(photo).convert("RGB"))
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
    exif = stored.getexif()
    exif[0x0112] = 6
    src = tmp_path / "src" / "person"
    src.mkdir(parents=True)
    stored.save(src / "rotated.jpg", exif=exif, quality=95)
    dst = tmp_path / "dst"
    crop_dataset(src.parent, dst, CropConfig(device="cpu", progress=False))
    (row,) = _manifest(dst)
    assert (int(row["src_width"]), int(row["src_height"])) == upright.shape[1::-1]
    # upright face: eyes left-to-right and above the mouth
    assert float(row["left_eye_x"]) < float(row["right_eye_x"])
    assert float(row["left_eye_y"]) < float(row["mouth_left_y"])
