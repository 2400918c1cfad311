"""The app in a real browser: `streamlit run app.py` on 127.0.0.1, driven by Playwright through Debian's Chromium.

Skipped, with the reason, where Chromium or Playwright's Python package is missing (CI installs both).
Screenshots land in $VAE_ENHANCE_SCREENSHOTS (default: pytest's tmp_path) so they can be looked at.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
sys.path.insert(0, str(ROOT / "scripts"))
import load_test  # noqa: E402  (scripts/load_test.py: the server launcher and browser helpers)


@pytest.fixture
def server(tmp_path):
    with load_test.serve({"OMP_NUM_THREADS": "1"}, tmp_path) as running:
        yield running.url


@pytest.fixture
def page(server):
    """A Chromium page on the app; page.sent lists every message it sends the server over the websocket."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=load_test.CHROMIUM, args=load_test.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.sent = []
            page.on("websocket", lambda ws: ws.on("framesent", lambda payload: page.sent.append(payload)))
            page.goto(server, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_example_enhance_and_slider_in_chromium(page, tmp_path):
    shots = Path(os.environ.get("VAE_ENHANCE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.get_by_role("button", name="Noisy cat (denoise)").click(timeout=60_000)
    page.get_by_text("cat_noisy.png: 360x240").wait_for(timeout=60_000)
    page.get_by_role("button", name="Enhance (denoise)").click()
    page.locator('[data-testid="stAlertContentSuccess"]').wait_for(timeout=120_000)  # "... in 1.2 s on cpu"
    page.get_by_role("button", name="Download PNG").wait_for(timeout=30_000)

    slider = page.locator(".compare")  # the browser-side component (open shadow root: Playwright pierces it)
    slider.wait_for(timeout=30_000)
    for img in ("img.before", "img.after"):  # both previews decoded, as lossless PNG data URLs
        handle = slider.locator(img)
        assert handle.get_attribute("src").startswith("data:image/png;base64,")
        page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=handle.element_handle())
    assert slider.get_attribute("aria-valuenow") == "50"

    page.wait_for_timeout(1000)
    slider.scroll_into_view_if_needed()
    sent_before = len(page.sent)  # dragging must send nothing: a rerun of the script starts with a message
    box = slider.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    assert int(slider.get_attribute("aria-valuenow")) == pytest.approx(20, abs=2)
    clip = slider.locator("img.before").evaluate("el => getComputedStyle(el).clipPath")
    assert "inset" in clip
    slider.focus()
    page.keyboard.press("ArrowRight")
    assert int(slider.get_attribute("aria-valuenow")) == pytest.approx(25, abs=2)
    page.wait_for_timeout(1000)  # also lets the images finish painting before the screenshot
    assert len(page.sent) == sent_before and sent_before > 0
    page.screenshot(path=str(shots / "browser.png"), full_page=False)
    no_errors(page)
    assert (shots / "browser.png").stat().st_size > 10_000


def test_upload_enhance_in_chromium(page, tmp_path):
    photo = load_test.make_photo(tmp_path / "noisy.jpg", 320, 240)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(photo)
    enhance = page.get_by_role("button", name="Enhance (denoise)")
    enhance.wait_for(timeout=60_000)
    enhance.click()
    success = page.locator('[data-testid="stAlertContentSuccess"]')
    success.wait_for(timeout=120_000)
    assert "320x240" in success.inner_text()
    page.get_by_role("button", name="Download PNG").wait_for(timeout=30_000)
    no_errors(page)
    assert page.locator('[data-testid="stImage"] img').count() >= 2  # both zoom crops
