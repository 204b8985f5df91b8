"""Reading every kind of image a user may have, and refusing bad ones with a clear reason."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.data import list_dataset
from celebface.io import ImageReadError, read_image


def _photo(h: int = 60, w: int = 40) -> np.ndarray:
    """An asymmetric test picture: red top-left quadrant on grey."""
    arr = np.full((h, w, 3), 100, np.uint8)
    arr[: h // 2, : w // 2] = (220, 20, 20)
    return arr


def test_rgb_jpeg_and_shrink(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(_photo(400, 300)).save(path, quality=95)
    img = read_image(path)
    assert img.rgb.shape == (400, 300, 3) and img.rgb.dtype == np.uint8
    assert img.scale == 1.0 and img.source_size == (300, 400)
    small = read_image(path, max_side=100)
    assert max(small.rgb.shape[:2]) <= 100
    assert small.source_size == (300, 400)
    assert small.scale == pytest.approx(300 / small.rgb.shape[1])


@pytest.mark.parametrize(
    ("mode", "ext"),
    [("L", ".png"), ("RGBA", ".png"), ("P", ".png"), ("CMYK", ".jpg"), ("LA", ".png"),
     ("RGB", ".bmp"), ("RGB", ".webp"), ("RGB", ".tif")],
)
def test_modes_and_formats_become_rgb(tmp_path: Path, mode: str, ext: str) -> None:
    path = tmp_path / f"x{ext}"
    Image.fromarray(_photo()).convert(mode).save(path)
    img = read_image(path)
    assert img.rgb.shape == (60, 40, 3) and img.rgb.dtype == np.uint8
    # the red quadrant stays distinguishable from the grey background (greyscale: brighter/darker)
    assert np.abs(img.rgb[5, 5].astype(int) - img.rgb[50, 35].astype(int)).sum() > 20


def test_rgba_transparent_becomes_white(tmp_path: Path) -> None:
    arr = np.zeros((10, 10, 4), np.uint8)
    path = tmp_path / "t.png"
    Image.fromarray(arr, "RGBA").save(path)
    assert (read_image(path).rgb == 255).all()


def test_16bit_png_is_rescaled(tmp_path: Path) -> None:
    arr = np.zeros((20, 20), np.uint16)
    arr[:10] = 65535
    arr[10:] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = read_image(path).rgb
    assert rgb[0, 0, 0] == 255
    assert 120 <= rgb[15, 0, 0] <= 135


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    upright = _photo(60, 40)
    stored = np.rot90(upright, k=1)  # what the camera stored, rotated 90 degrees left
    img = Image.fromarray(np.ascontiguousarray(stored))
    exif = img.getexif()
    exif[0x0112] = 6  # display needs a 90-degree clockwise turn
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.rgb.shape == (60, 40, 3)
    assert out.source_size == (40, 60)
    assert out.rgb[5, 5, 0] > 180 and out.rgb[50, 35, 0] < 140  # red quadrant top-left again


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all\n" * 10, "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "(not an image|corrupt)"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert re.search(reason, str(exc.value))
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="cannot open"):
        read_image(tmp_path / "nope.jpg")


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that claims to be w x h but holds almost no data (a decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b""))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _png_header_only(path, 40_000, 40_000)  # 1.6 G pixels claimed
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path)


def test_bomb_between_pillows_warning_and_error_limits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _png_header_only(path, 10_000, 9_500)  # 95 M pixels: Pillow only warns about these
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path)


def test_max_pixels_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.fromarray(_photo(100, 100)).save(path)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path)


def test_dataset_names_empty_folders_and_extensions(tmp_path: Path) -> None:
    for folder in ("pins_Adriana Lima", "Zoë Ünïcode 名前", "empty one"):
        (tmp_path / folder).mkdir()
    Image.fromarray(_photo()).save(tmp_path / "pins_Adriana Lima" / "a b.JPG")
    Image.fromarray(_photo()).save(tmp_path / "Zoë Ünïcode 名前" / "é.png")
    (tmp_path / "Zoë Ünïcode 名前" / "notes.txt").write_text("x")
    (tmp_path / "Zoë Ünïcode 名前" / ".hidden.jpg").write_bytes(b"x")
    items = list_dataset(tmp_path)
    assert [(i.identity, Path(i.path).name) for i in items] == [
        ("Zoë Ünïcode 名前", "é.png"),
        ("pins_Adriana Lima", "a b.JPG"),
    ] or [(i.identity, Path(i.path).name) for i in items] == [
        ("pins_Adriana Lima", "a b.JPG"),
        ("Zoë Ünïcode 名前", "é.png"),
    ]
    for item in items:
        assert read_image(item.path).rgb.shape == (60, 40, 3)


def test_missing_dataset_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_dataset(tmp_path / "absent")
