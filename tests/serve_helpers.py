"""Shared by the serve tests: real five_celeb photos, one test gallery built once per session,
models loaded once, a fake-camera clip and a uvicorn server in a thread."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from celebface.io import read_splits

#: Enrolled in the test gallery (3 train photos each); the others are strangers.
PEOPLE = ("ben_afflek", "jerry_seinfeld", "madonna")
STRANGERS = ("elton_john", "mindy_kaling")
#: Held-out (val) photos, by index in the person's sorted val rows, that the test gallery names
#: right at its default threshold (checked once on this data; most others are named too).
HELD_OUT = {"ben_afflek": 0, "jerry_seinfeld": 0, "madonna": 2}

_cache: dict[str, Any] = {}


def photos(root: Path, person: str, split: str, n: int, start: int = 0) -> list[Path]:
    splits = read_splits(root / "splits.csv")
    names = sorted(f for (i, f), s in splits.items() if i == person and s == split)
    return [root / person / f for f in names[start : start + n]]


def held_out(root: Path, person: str) -> Path:
    return photos(root, person, "val", 1, HELD_OUT.get(person, 0))[0]


def models() -> tuple[Any, Any]:
    """The dlib embedder and MTCNN detector on the CPU, loaded once per session."""
    if "models" not in _cache:
        from celebface.detection import get_detector
        from celebface.recognition import EmbedderSpec

        _cache["models"] = (EmbedderSpec("dlib").build("cpu"),
                            get_detector("mtcnn", device="cpu"))
    return _cache["models"]


def gallery_copy(root: Path, tmp: Path) -> Path:
    """A fresh copy of the test gallery (built once: 3 train photos of each of PEOPLE)."""
    if "gallery" not in _cache:
        from celebface.gallery import EnrollConfig, enroll

        base = tmp / "base"
        for person in PEOPLE:
            (base / "data" / person).mkdir(parents=True)
            for p in photos(root, person, "train", 3):
                (base / "data" / person / p.name).symlink_to(p)
        enroll(base / "data", base / "gallery",
               config=EnrollConfig(embedder="dlib", max_side=640),
               models=models(), progress=False)
        _cache["gallery"] = base / "gallery"
    out = tmp / f"gallery-{len(list(tmp.iterdir()))}"
    shutil.copytree(_cache["gallery"], out)
    return out


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 10, size: tuple[int, int] = (640, 480)
              ) -> Path:
    """A YUV4MPEG2 clip (I420) of ``rgb`` centred on grey: Chromium's fake camera plays it."""
    w, h = size
    canvas = np.full((h, w, 3), 128, np.uint8)
    ih, iw = rgb.shape[:2]
    f = min(w / iw, h / ih)
    nw, nh = int(iw * f) // 2 * 2, int(ih * f) // 2 * 2
    ys, xs = (np.arange(nh) / f).astype(int), (np.arange(nw) / f).astype(int)
    x0, y0 = (w - nw) // 2 // 2 * 2, (h - nh) // 2 // 2 * 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = rgb[ys][:, xs]
    r, g, b = (canvas[..., i].astype(np.float32) for i in range(3))
    y = 0.257 * r + 0.504 * g + 0.098 * b + 16
    u = -0.148 * r - 0.291 * g + 0.439 * b + 128
    v = 0.439 * r - 0.368 * g - 0.071 * b + 128
    planes = [y] + [c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for c in (u, v)]
    frame = b"".join(np.clip(p + 0.5, 0, 255).astype(np.uint8).tobytes() for p in planes)
    header = f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + (b"FRAME\n" + frame) * frames)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: Any) -> Iterator[tuple[str, Any]]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread: ``(base_url, server)``;
    stopped (gracefully) on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(60)


#: Debian's chromium: Playwright drives it (its own browser download is unreachable here).
CHROMIUM = Path("/usr/bin/chromium")
#: Chromium's flags for the browser tests (headless, no network services, a fake camera).
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def browser_or_skip() -> Any:
    """``playwright.sync_api``, or the calling test module skipped when Chromium, Playwright
    or FastAPI is missing."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium; .ci/run does)",
                    allow_module_level=True)
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright missing (pip install -r requirements-dev.txt)")
    pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
    return sync_api
