"""Synthetic test videos: real face photos pasted on a background, moving (tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SyntheticVideo:
    frames: list[np.ndarray]  # RGB uint8
    boxes: list[list[tuple[float, float, float, float]]]  # per frame, per face


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colour gradient with mild noise (no face-like structure)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1, c2 = rng.uniform(40, 215, size=(3, 3))
    t = (x / width)[..., None]
    s = (y / height)[..., None]
    img = c0 * (1 - t) * (1 - s) + c1 * t + c2 * s * (1 - t)
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _resize(img: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def moving_faces(
    faces: Sequence[np.ndarray | Sequence[np.ndarray]],
    n_frames: int = 30,
    size: tuple[int, int] = (640, 480),
    face_height: int = 140,
    speed: float = 4.0,
    seed: int = 0,
    switch_every: int = 0,
) -> SyntheticVideo:
    """``faces`` (RGB crops) bounce around in their own cell of a ``size`` (w, h) frame. A
    face given as several crops (photos of one person) shows the next one every
    ``switch_every`` frames (0: only the first), as a face in a video changes its pose."""
    rng = np.random.default_rng(seed)
    width, height = size
    bg = background(width, height, rng)
    n = len(faces)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cell_w, cell_h = width / cols, height / rows
    fh = int(min(face_height, cell_h * 0.8))
    views = [[f] if isinstance(f, np.ndarray) else list(f) for f in faces]
    sprites = [[_resize(np.asarray(v, np.uint8), fh)[:, : int(cell_w * 0.8)] for v in vs]
               for vs in views]
    pos, vel, cells = [], [], []
    for i, ss in enumerate(sprites):
        cx, cy = (i % cols) * cell_w, (i // cols) * cell_h
        room_x = cell_w - max(s.shape[1] for s in ss)
        room_y = cell_h - max(s.shape[0] for s in ss)
        cells.append((cx, cy, room_x, room_y))
        pos.append([rng.uniform(0, room_x), rng.uniform(0, room_y)])
        angle = rng.uniform(0, 2 * np.pi)
        vel.append([speed * np.cos(angle), speed * np.sin(angle)])
    frames, boxes = [], []
    for t in range(n_frames):
        frame = bg.copy()
        frame_boxes = []
        for i, ss in enumerate(sprites):
            s = ss[(t // switch_every) % len(ss)] if switch_every else ss[0]
            cx, cy, room_x, room_y = cells[i]
            for d, room in ((0, room_x), (1, room_y)):
                pos[i][d] += vel[i][d]
                if pos[i][d] < 0 or pos[i][d] > room:
                    vel[i][d] = -vel[i][d]
                    pos[i][d] = min(max(pos[i][d], 0), room)
            x, y = round(cx + pos[i][0]), round(cy + pos[i][1])
            h, w = s.shape[:2]
            frame[y : y + h, x : x + w] = s
            frame_boxes.append((float(x), float(y), float(x + w), float(y + h)))
        frames.append(frame)
        boxes.append(frame_boxes)
    return SyntheticVideo(frames, boxes)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 25.0) -> Path:
    """RGB frames to an ``.mp4``/``.avi``/``.webm`` (VP8: browsers play it) file, with the
    codecs of :func:`celebface.streaming.output.open_writer` (test helper)."""
    import cv2

    from celebface.streaming.output import open_writer

    path = Path(path)
    h, w = frames[0].shape[:2]
    writer, _ = open_writer(path, fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
