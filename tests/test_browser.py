"""The app in a real browser: `streamlit run app.py` on 127.0.0.1, driven by Playwright through Debian's Chromium.

Skipped, with the reason, where Chromium or Playwright's Python package is missing (CI installs both).
The screenshot lands in $VAE_ENHANCE_SCREENSHOTS (default: pytest's tmp_path) so it can be looked at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo(path: Path, h: int = 240, w: int = 320) -> Path:
    """A smooth colour gradient with noise: something that looks like a noisy photo to the model."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    clean = np.stack([xx, yy, 1 - xx * yy], axis=2) * 255
    Image.fromarray(np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def server(tmp_path):
    """A streamlit server on a free local port; always terminated, its log printed on failure."""
    port = free_port()
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
        ],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_upload_enhance_in_chromium(server, tmp_path):
    shots = Path(os.environ.get("VAE_ENHANCE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(photo(tmp_path / "noisy.png"))
            enhance = page.get_by_role("button", name="Enhance")
            enhance.wait_for(timeout=60_000)
            enhance.click()
            page.locator('[data-testid="stAlertContentSuccess"]').wait_for(timeout=120_000)  # "... in 1.2 s on cpu"
            page.get_by_role("button", name="Download PNG").wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # let the images finish painting before the screenshot
            page.screenshot(path=str(shots / "browser.png"), full_page=False)
            assert page.locator('[data-testid="stException"]').count() == 0
            errors = page.locator('[data-testid="stAlertContentError"]')
            assert errors.count() == 0, errors.all_inner_texts()
            assert page.locator('[data-testid="stImage"] img').count() >= 3  # comparison and both zoom crops
        finally:
            browser.close()
    assert (shots / "browser.png").stat().st_size > 10_000
