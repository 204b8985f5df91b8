"""Decoding any image a user may have into an upright 8-bit RGB array, or a clear error."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from celebface.errors import CelebfaceError

_ORIENTATION = 0x0112


class ImageReadError(CelebfaceError):
    """An image that cannot be used; ``str()`` is one line naming the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    """Pixels of a decoded image. ``scale`` maps them back: ``source = pixels * scale``."""

    path: str
    rgb: np.ndarray  # H x W x 3 uint8
    scale: float
    source_size: tuple[int, int]  # (width, height) of the upright source


#: Rows of a 16/32-bit or float image rescaled to 8 bits at a time (bounds the float copy).
_ROWS = 256


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha composited on white; 16/32-bit and float rescaled to 8 bits,
    into 8-bit grey ("L", the one mode not RGB this returns: the caller may shrink it before
    making three channels of it). The rescale works a band of rows at a time: a 16-bit
    9000 x 9000 PNG no longer needs gigabytes of float64 copies."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        top = float(arr.max()) if arr.size else 0.0
        hi = 65535.0 if mode.startswith("I;16") else max(top, 1.0)
        if mode == "I" and top <= 255:
            hi = 255.0
        arr8 = np.empty(arr.shape, np.uint8)
        for r in range(0, arr.shape[0], _ROWS):
            band = arr[r:r + _ROWS].astype(np.float32) * np.float32(255.0 / hi) + 0.5
            arr8[r:r + _ROWS] = np.clip(band, 0, 255)
        return Image.fromarray(arr8, "L")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img


def read_image(path: str | Path, max_side: int | None = None) -> LoadedImage:
    """Decode ``path``: EXIF orientation applied, any mode to RGB, optionally shrunk so its
    longer side is at most ``max_side`` (JPEG draft mode makes that cheap for huge photos).

    Raises :class:`ImageReadError` for empty, truncated, corrupt, non-image or oversized files:
    more pixels than Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 M by default; raise it to
    accept bigger photos) is refused before decoding, as a decompression-bomb guard.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc.strerror or exc}") from None
    return _decode(path, str(path), size, max_side)


def read_image_bytes(data: bytes, name: str = "<bytes>", max_side: int | None = None
                     ) -> LoadedImage:
    """:func:`read_image` for an image held in memory (an upload); ``name`` only labels errors.

    The format is found from the bytes alone (never from a file name or content type).
    """
    return _decode(io.BytesIO(data), name, len(data), max_side)


def _decode(source: Path | io.BytesIO, label: str, size: int, max_side: int | None
            ) -> LoadedImage:
    if size == 0:
        raise ImageReadError(label, "empty file (0 bytes)")
    try:
        # Pillow only warns between its limit and twice it; the size check below refuses those
        # (warning filters are not thread-safe; at worst a stray warning is printed)
        with (
            warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning),
            Image.open(source) as img,
        ):
            w, h = img.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and w * h > limit:
                raise ImageReadError(label, f"too large ({w}x{h} pixels > {int(limit):,})")
            if max_side and max(w, h) > max_side and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            img.load()
            rotated = img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
            src_size = (h, w) if rotated else (w, h)
            upright = _to_rgb(ImageOps.exif_transpose(img))
            if max_side and max(upright.size) > max_side:
                upright.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            if upright.mode != "RGB":  # grey: shrunk first
                upright = upright.convert("RGB")
            rgb = np.asarray(upright, dtype=np.uint8)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(label, f"too large (decompression bomb guard): {exc}") from None
    except UnidentifiedImageError:
        raise ImageReadError(label, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(label, f"corrupt or truncated image: {reason}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
        raise ImageReadError(label, f"unexpected decoded shape {rgb.shape}")
    scale = src_size[0] / rgb.shape[1]
    return LoadedImage(label, np.ascontiguousarray(rgb), float(scale), src_size)


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """An RGB uint8 array as JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class ImageInputError(CelebfaceError, ValueError):
    """An image argument that is neither a readable file, a PIL image nor an RGB array."""


def as_rgb(image: Any, max_side: int | None = 1024) -> np.ndarray:
    """A path, PIL image or array as an H x W x 3 uint8 RGB array (a path is read with
    :func:`celebface.io.read_image`, EXIF orientation applied, shrunk to ``max_side``)."""
    if isinstance(image, str | Path):
        return read_image(image, max_side).rgb
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(_to_rgb(image))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) == 0:
        raise ImageInputError(f"image of shape {arr.shape}: expected H x W x 3 RGB")
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and float(arr.max()) <= 1.0:
            arr = arr * 255.0
        elif arr.dtype.kind in "iu" and arr.size and int(arr.max()) > 255:
            arr = arr * (255.0 / np.iinfo(arr.dtype).max)  # 16-bit (or wider) pixels
        elif arr.dtype.kind not in "fiub":
            raise ImageInputError(f"image of dtype {arr.dtype}: expected numbers")
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)
