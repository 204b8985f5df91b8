"""``preview.png``: a grid of source photos with the kept boxes, landmarks and scores drawn."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

from PIL import Image, ImageDraw

from celebface.data import crops as rec
from celebface.io import ImageReadError, atomic_write_bytes, read_image

log = logging.getLogger(__name__)

CELL = 256
CAPTION = 16
_COLORS = ((0, 220, 0), (255, 160, 0), (0, 160, 255), (255, 0, 200))


def pick_sources(sources: list[str], n: int) -> list[str]:
    """``n`` sources spread evenly over the sorted list (so every identity tends to show)."""
    sources = sorted(sources)
    if len(sources) <= n:
        return sources
    step = len(sources) / n
    return [sources[int(i * step)] for i in range(n)]


def write_preview(src: str | Path, dst: str | Path, n: int = 16, name: str = "preview.png") -> Path:
    """Draw ``n`` processed sources (with and without faces) from ``dst``'s records."""

    src, dst = Path(src), Path(dst)
    faces: dict[str, list] = {}
    for row in rec.read_manifest(dst):
        faces.setdefault(row["source"], []).append(rec.face_from_row(row))
    sources = pick_sources([*faces, *rec.read_lines(dst / rec.NO_FACES)], n)
    cols = max(1, math.ceil(math.sqrt(len(sources))))
    rows = max(1, math.ceil(len(sources) / cols))
    grid = Image.new("RGB", (cols * CELL, rows * (CELL + CAPTION)), (32, 32, 32))
    draw = ImageDraw.Draw(grid)
    for k, source in enumerate(sources):
        x0, y0 = (k % cols) * CELL, (k // cols) * (CELL + CAPTION)
        try:
            loaded = read_image(src / source, max_side=CELL)
        except ImageReadError as exc:
            log.warning("preview: %s", exc)
            continue
        img = Image.fromarray(loaded.rgb)
        img.thumbnail((CELL, CELL))
        f = img.width / loaded.source_size[0]  # source pixels -> cell pixels
        ox, oy = x0 + (CELL - img.width) // 2, y0 + (CELL - img.height) // 2
        grid.paste(img, (ox, oy))
        found = faces.get(source, [])
        for j, face in enumerate(found):
            color = _COLORS[j % len(_COLORS)]
            b = [v * f for v in face.box]
            draw.rectangle([ox + b[0], oy + b[1], ox + b[2], oy + b[3]], outline=color, width=2)
            if face.landmarks is not None:
                for px, py in face.landmarks * f:
                    cx, cy = ox + px, oy + py
                    draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(255, 40, 40))
            draw.text((ox + b[0] + 2, oy + max(b[1] - 12, 0)), f"{face.score:.2f}", fill=color)
        label = Path(source).parent.name[:20] + ("" if found else "  (no face)")
        draw.text((x0 + 3, y0 + CELL + 2), label, fill=(230, 230, 230))
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    out = dst / name
    atomic_write_bytes(out, buf.getvalue())
    return out
