"""Face geometry: a square box with margin, a 5-point similarity alignment, the crop of a face
and the mapping of a face into it (pure functions of boxes, points and pixels)."""

from __future__ import annotations

import numpy as np

from celebface.errors import InputError
from celebface.types import Face

#: ArcFace's 5-point template for a 112 x 112 crop (left eye, right eye, nose, mouth l/r).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def square_box(face: Face, margin: float = 0.2) -> tuple[float, float, float, float]:
    """The square around ``face.box``: side = longer box side x (1 + 2 x margin), same centre."""
    cx, cy = face.center
    half = max(face.width, face.height) * (1 + 2 * margin) / 2
    return (cx - half, cy - half, cx + half, cy + half)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``src`` points onto
    ``dst`` (Umeyama, no reflection), as a 2 x 3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


def aligned_template(size: int, margin: float = 0.2) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` crop, shrunk about the centre by
    ``1 / (1 + 2 x margin)`` so a margin of 0 gives ArcFace's own framing."""
    return (ARCFACE_TEMPLATE - 56.0) * (size / 112.0) / (1 + 2 * margin) + size / 2.0


def crop_matrix(
    face: Face, margin: float = 0.2, size: int = 224, align: bool = False
) -> np.ndarray:
    """The 2 x 3 affine taking ``face``'s image to its ``size`` crop (see :func:`crop_face`).
    Scale-equivariant: the same face in source or decoded pixels gives the same crop."""
    if align:
        if face.landmarks is None:
            raise InputError("align=True needs a face with 5 landmarks")
        return similarity_transform(face.landmarks, aligned_template(size, margin))
    x1, y1, x2, _ = square_box(face, margin)
    s = size / (x2 - x1)
    return np.array([[s, 0.0, -x1 * s], [0.0, s, -y1 * s]])


def map_face(face: Face, m: np.ndarray) -> Face:
    """``face`` (box and landmarks) carried through the 2 x 3 affine ``m``; the box becomes the
    bounding box of its mapped corners."""
    m = np.asarray(m, dtype=np.float64)
    x1, y1, x2, y2 = face.box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]]) @ m.T
    box = (*corners.min(0), *corners.max(0))
    lm = None
    if face.landmarks is not None:
        pts = np.asarray(face.landmarks, np.float64)
        lm = (np.c_[pts, np.ones(len(pts))] @ m.T).astype(np.float32)
    return face.with_(box=tuple(float(v) for v in box), landmarks=lm)


def crop_face(
    image: np.ndarray,
    face: Face,
    margin: float = 0.2,
    size: int = 224,
    align: bool = False,
    border_value: int = 0,
) -> np.ndarray:
    """A ``size`` x ``size`` RGB uint8 crop of ``face`` from ``image`` (H x W x 3 uint8).

    Default: the square of :func:`square_box`; parts outside the image are filled with
    ``border_value``. ``align=True`` (needs landmarks): the 5-point similarity alignment onto
    :func:`aligned_template`.
    """
    return warp(image, crop_matrix(face, margin, size, align), size, border_value)


def warp(image: np.ndarray, m: np.ndarray, size: int, border_value: int = 0) -> np.ndarray:
    """``image`` warped by the 2 x 3 affine ``m`` into a ``size`` square. When it shrinks by
    more than 2x, the source region is first reduced with area averaging (no aliasing)."""
    import cv2

    m = np.asarray(m, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        # Source region that maps into the output square (plus a little slack), area-resized.
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float)
        pts = corners @ inv.T
        h, w = image.shape[:2]
        x0 = int(np.clip(np.floor(pts[:, 0].min()) - 2, 0, w))
        y0 = int(np.clip(np.floor(pts[:, 1].min()) - 2, 0, h))
        x1 = int(np.clip(np.ceil(pts[:, 0].max()) + 2, 0, w))
        y1 = int(np.clip(np.ceil(pts[:, 1].max()) + 2, 0, h))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            f = scale * 2  # keep 2x the output resolution, then warp bilinearly
            region = image[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # new pixel = (old - origin) * f  =>  m' = m o (that map)^-1
            back = np.array([[1 / fx, 0, x0], [0, 1 / fy, y0], [0, 0, 1]])
            m = m @ back
            image = region
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value,) * 3,
    )
    return out
