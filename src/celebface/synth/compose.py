"""Pure compositing functions: backgrounds and pasting a face photo with its exact box.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``,
so a box ``(x1, y1, x2, y2)`` of a full ``W x H`` image is ``(0, 0, W, H)``, as the crop
manifest uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from celebface.errors import InputError


def rotated_box(
    width: float, height: float, center: tuple[float, float], angle: float
) -> tuple[float, float, float, float]:
    """Bounding box of a ``width x height`` rectangle centred at ``center`` and rotated by
    ``angle`` degrees (counter-clockwise as seen in the image)."""
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    bw, bh = width * c + height * s, width * s + height * c
    cx, cy = center
    return (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)


def paste_face(
    canvas: np.ndarray,
    face: np.ndarray,
    center: tuple[float, float],
    size: tuple[int, int],
    angle: float = 0.0,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Resize ``face`` (RGB uint8) to ``size`` = (width, height), rotate it by ``angle`` degrees
    about its centre, and blend it onto a copy of ``canvas`` with its centre at ``center``.

    Returns the composite and the pasted region's bounding box in canvas pixels (the rotated
    rectangle's bounds; anti-aliased edges blend into the background).
    """
    import cv2

    fw, fh = int(size[0]), int(size[1])
    if fw < 1 or fh < 1:
        raise InputError(f"face size must be positive, got {size}")
    interp = cv2.INTER_AREA if fw < face.shape[1] else cv2.INTER_LINEAR
    resized = cv2.resize(face, (fw, fh), interpolation=interp)
    # Affine map in continuous coordinates: canvas = R @ (face - face_centre) + center.
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    rot = np.array([[cos, sin], [-sin, cos]])  # counter-clockwise on screen (y points down)
    t = np.asarray(center) - rot @ np.array([fw / 2, fh / 2])
    # cv2 addresses pixel centres at integers: idx = cont - 0.5.
    t_idx = t - 0.5 + rot @ np.array([0.5, 0.5])
    matrix = np.hstack([rot, t_idx[:, None]]).astype(np.float64)
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(
        resized, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    # The mask is warped with a one-pixel padding so that its edge is anti-aliased.
    ones = np.ones((fh, fw), np.float32)
    mask = cv2.warpAffine(
        ones, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )[..., None]
    out = canvas.astype(np.float32) * (1.0 - mask) + warped.astype(np.float32) * mask
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), rotated_box(fw, fh, center, angle)


def gradient_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear gradient between two random colours in a random direction, with light grain."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    proj = xx * math.cos(theta) + yy * math.sin(theta)
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def noise_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth coloured noise (a small random grid upsampled) plus fine grain."""
    import cv2

    cells = int(rng.integers(3, 17))
    grid = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    img = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    img += np.asarray(rng.normal(0, rng.uniform(3, 15), img.shape), np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_background(
    rng: np.random.Generator, photo: np.ndarray, width: int, height: int, shuffle: bool = True
) -> np.ndarray:
    """A random crop of ``photo`` resized to the canvas. With ``shuffle`` (for photos that show
    faces, like a set of face crops) the crop is cut into a grid of tiles that are shuffled and
    blurred, so no face remains but the colours and textures of real photos do."""
    import cv2

    ph, pw = photo.shape[:2]
    frac = rng.uniform(0.5, 1.0)
    cw, ch = max(2, int(pw * frac)), max(2, int(ph * frac))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (width, height),
                      interpolation=cv2.INTER_LINEAR)
    if not shuffle:
        return crop
    n = int(rng.integers(4, 8))
    xs = np.linspace(0, width, n + 1).astype(int)
    ys = np.linspace(0, height, n + 1).astype(int)
    tiles = [crop[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] for i in range(n) for j in range(n)]
    order = rng.permutation(len(tiles))
    out = np.empty_like(crop)
    for k, idx in enumerate(order):
        i, j = divmod(k, n)
        tile = tiles[idx]
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        th, tw = ys[i + 1] - ys[i], xs[j + 1] - xs[j]
        out[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = cv2.resize(tile, (tw, th))
    sigma = float(rng.uniform(2.0, 6.0)) * width / 256
    return cv2.GaussianBlur(out, (0, 0), sigma)


def jitter_colors(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """Random brightness and contrast change of up to ``strength`` (0 = none)."""
    if strength <= 0:
        return image
    gain = 1.0 + rng.uniform(-strength, strength)
    bias = rng.uniform(-strength, strength) * 64
    mean = image.mean()
    out = (image.astype(np.float32) - mean) * gain + mean + bias
    return np.clip(out, 0, 255).astype(np.uint8)


BackgroundFn = Callable[[np.random.Generator, int, int], np.ndarray]
BACKGROUNDS: dict[str, BackgroundFn] = {
    "gradient": gradient_background,
    "noise": noise_background,
}
