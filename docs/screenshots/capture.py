"""Retake the README's screenshots: start the app, drive it in Debian's Chromium, save small PNGs here.

    python docs/screenshots/capture.py PHOTO.png [--sigma 25]

PHOTO should be a clean photo (e.g. a Kodak image); the script adds Gaussian noise for the enhance shots
and uses the clean one for simulate mode. PNGs are quantized to 256 colours to stay well under 500 KB.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def save_small(png: bytes, name: str) -> None:
    im = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=0)
    im.save(HERE / name, optimize=True)
    print(f"{name}: {(HERE / name).stat().st_size / 1024:.0f} KB")


def wait_done(page: Page, testid: str = "stAlertContentSuccess") -> None:
    page.locator(f'[data-testid="{testid}"]').first.wait_for(timeout=300_000)
    page.wait_for_timeout(1500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--sigma", type=float, default=25)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    clean = np.asarray(Image.open(args.photo).convert("RGB")).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, args.sigma, clean.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(noisy).save(tmp / "noisy_photo.png")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 940})
            page.goto(url)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(tmp / "noisy_photo.png")
            page.get_by_role("button", name="Enhance").click()
            wait_done(page)
            page.mouse.wheel(0, 330)
            page.wait_for_timeout(800)
            save_small(page.screenshot(), "enhance.png")
            page.mouse.wheel(0, 900)
            page.wait_for_timeout(800)
            save_small(page.screenshot(), "zoom.png")

            page.get_by_role("tab", name="Random variations").click()
            page.get_by_role("button", name="Generate variations").click()
            try:
                page.get_by_text("Uncertainty:").wait_for(timeout=300_000)
            except Exception:
                save_small(page.screenshot(full_page=True), "debug.png")
                raise
            page.get_by_role("button", name="Generate variations").scroll_into_view_if_needed()
            page.mouse.wheel(0, 250)
            page.wait_for_timeout(1500)
            save_small(page.screenshot(), "variations.png")

            page.get_by_role("tab", name="Latent view").click()
            page.get_by_text("Latent standard deviation").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            save_small(page.screenshot(), "latent.png")

            page.get_by_role("tab", name="Before / after").click()
            page.get_by_text("Simulate on a clean photo").click()
            page.get_by_role("button", name="Degrade and restore").wait_for()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(args.photo)
            page.get_by_text(f"{Path(args.photo).name}:").wait_for()
            page.get_by_role("button", name="Degrade and restore").click()
            try:
                wait_done(page)
            except Exception:
                save_small(page.screenshot(), "debug.png")
                raise
            page.get_by_text("Scores against the original").scroll_into_view_if_needed()
            page.mouse.wheel(0, 120)
            page.wait_for_timeout(1000)
            save_small(page.screenshot(), "simulate.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
