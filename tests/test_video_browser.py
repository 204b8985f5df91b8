"""The service's video page in Chromium (Debian's, driven by Playwright; see
test_serve_browser.py): a short clip is uploaded, its timeline appears under the playing video
and clicking an appearance seeks to it. Stand-in models (colour blobs) keep it fast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from celebface.streaming.synthetic import write_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]

from serve_helpers import ARGS, CHROMIUM, browser_or_skip  # noqa: E402

sync_api = browser_or_skip()

from serve_helpers import running  # noqa: E402
from test_serve_browser import shot  # noqa: E402
from test_stream import BlobDetector, MeanColourEmbedder, colour_gallery, colour_sprite  # noqa: E402


@contextmanager
def video_page(gallery: Path) -> Iterator[tuple[Any, str, list[str]]]:
    """A service on ``gallery`` (colour embedder, blob detector) and a Chromium page on it:
    ``(page, url, errors the page raised)``."""
    from celebface.serve import ServeConfig, create_app

    app = create_app(ServeConfig(gallery=gallery, device="cpu"),
                     models=(MeanColourEmbedder(), BlobDetector()))
    with running(app) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, url, errors
        finally:
            browser.close()


def test_video_page_shows_the_timeline_and_seeks(tmp_path: Path, rng: np.random.Generator
                                                 ) -> None:
    colour_gallery().save(tmp_path / "g")
    frames = []
    for i in range(40):  # 2 s at 20 fps: red and a stranger, then a cut to blue at 1 s
        img = np.full((240, 320, 3), 128 if i < 20 else 50, np.uint8)
        if i < 20:
            img[90:150, 40 + i:90 + i] = colour_sprite("red", rng)
            img[90:150, 200:250] = (200, 60, 200)
        else:
            img[60:120, 120:170] = colour_sprite("blue", rng)
        frames.append(img)
    clip = write_video(frames, tmp_path / "clip.webm", fps=20)
    with video_page(tmp_path / "g") as (page, url, errors):
        page.goto(url + "/")
        page.click("#video-link")
        page.wait_for_selector("#video-file", state="attached")
        page.set_input_files("#video-file", str(clip))
        page.wait_for_selector(".timeline .span", timeout=60_000)
        assert page.eval_on_selector_all(".timeline .who", "els => els.map(e => e.textContent)"
                                         ) == ["Red", "unknown-1", "Blue"]  # as shown
        assert "3 appearance(s) in 40 frames" in page.inner_text("#status")
        # the thumbnails load (through the API)
        page.wait_for_function("() => [...document.querySelectorAll('#appearances img')]"
                               ".every(i => i.naturalWidth > 0)", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
        blue = page.query_selector(".timeline .span[data-track='3']")
        assert float(blue.get_attribute("data-start")) == pytest.approx(1.0)
        blue.click()
        page.wait_for_function("() => Math.abs(document.querySelector('#player')"
                               ".currentTime - 1.0) < 0.06", timeout=10_000)
        assert "active" in blue.get_attribute("class")
        page.screenshot(path=shot(tmp_path, "video_page.png"), full_page=True)
        assert not errors, errors


def test_video_page_plays_an_mp4_celebface_wrote_and_seeks(tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    """An MP4 written by celebface's own video writer (H.264 when this OpenCV has the encoder,
    else MPEG-4 part 2, which browsers do not play: the page then plays the job's WebM copy)
    is dropped on the page; it plays, and clicking the timeline seeks."""
    import cv2

    from celebface.streaming.output import VideoOut

    colour_gallery().save(tmp_path / "g")
    out = VideoOut(tmp_path / "annotated.mp4", 20)
    for i in range(40):  # red for 1 s, then a cut to blue
        img = np.full((240, 320, 3), 128 if i < 20 else 50, np.uint8)
        if i < 20:
            img[90:150, 40 + i:90 + i] = colour_sprite("red", rng)
        else:
            img[60:120, 120:170] = colour_sprite("blue", rng)
        out.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out.close()
    clip = out.path.read_bytes()
    with video_page(tmp_path / "g") as (page, url, errors):
        page.goto(url + "/video")
        # drop the file on the page's drop zone (a DataTransfer built in the page)
        page.evaluate("""([bytes, name]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, {type: "video/mp4"}));
            document.querySelector(".drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", [list(clip), "annotated.mp4"])
        page.wait_for_selector(".timeline .span", timeout=60_000)
        assert page.eval_on_selector_all(".timeline .who", "els => els.map(e => e.textContent)"
                                         ) == ["Red", "Blue"]  # shown names
        # it plays: frames decoded, no media error (the WebM copy when not H.264)
        page.wait_for_function("() => document.querySelector('#player').readyState >= 2",
                               timeout=30_000)
        assert page.evaluate("() => document.querySelector('#player').error") is None
        source = page.evaluate("() => document.querySelector('#player').dataset.source")
        assert source == ("upload" if out.codec == "avc1" else "copy")
        page.evaluate("() => document.querySelector('#player').play()")
        page.wait_for_function("() => document.querySelector('#player').currentTime > 0.1",
                               timeout=10_000)
        page.evaluate("() => document.querySelector('#player').pause()")
        blue = page.query_selector(".timeline .span[data-track='2']")
        assert float(blue.get_attribute("data-start")) == pytest.approx(1.0)
        blue.click()
        page.wait_for_function("() => Math.abs(document.querySelector('#player')"
                               ".currentTime - 1.0) < 0.06", timeout=10_000)
        assert not errors, errors
