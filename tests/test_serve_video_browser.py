"""The video page on a phone and naming an unknown track from it, in Chromium (Debian's,
driven by Playwright; stand-in models: colour blobs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

from serve_helpers import browser_or_skip  # noqa: E402

browser_or_skip()

from test_serve_browser import serious_violations, shot  # noqa: E402
from test_serve_video import clip  # noqa: E402
from test_stream import colour_gallery  # noqa: E402
from test_video_browser import video_page  # noqa: E402

PHONE = {"width": 390, "height": 844}
WIDTH = "() => document.scrollingElement.scrollWidth"


def test_video_page_fits_a_phone_and_names_an_unknown_track(tmp_path: Path,
                                                            rng: np.random.Generator) -> None:
    colour_gallery().save(tmp_path / "g")
    video = clip(tmp_path / "clip.webm", rng)
    with video_page(tmp_path / "g") as (page, url, errors):
        page.set_viewport_size(PHONE)
        page.goto(url + "/video")
        assert page.evaluate(WIDTH) <= PHONE["width"]  # no sideways scrolling, empty
        page.set_input_files("#video-file", str(video))
        page.wait_for_selector(".timeline .span", timeout=60_000)
        page.wait_for_function("() => [...document.querySelectorAll('#appearances img')]"
                               ".every(i => i.naturalWidth > 0)", timeout=30_000)
        assert page.evaluate(WIDTH) <= PHONE["width"]  # nor with the video and timeline
        page.screenshot(path=str(shot(tmp_path, "video_page_phone.png")), full_page=True)
        # the unknown track's form, in the timeline: its face is enrolled under the name
        forms = page.query_selector_all(".timeline form.name-track")
        assert len(forms) == 1
        assert serious_violations(page) == []  # the form and the table's scroll region
        page.fill(".timeline form.name-track input", "magenta_man")
        page.click(".timeline form.name-track button")
        page.wait_for_function("() => [...document.querySelectorAll('.timeline .who')]"
                               ".some(e => e.textContent === 'Magenta Man')", timeout=30_000)
        assert page.eval_on_selector_all(".timeline .who", "els => els.map(e => e.textContent)"
                                         ) == ["Red", "Magenta Man", "Blue"]
        assert not page.query_selector_all(".timeline form.name-track")
        assert "enrolled" in page.inner_text("#status")
        assert page.evaluate(WIDTH) <= PHONE["width"]
        people = page.evaluate("async () => (await (await fetch('/v1/people')).json()).people"
                               ".map(p => p.name)")
        assert "magenta_man" in people
        assert not errors, errors
