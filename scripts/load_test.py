"""Load test: several browser sessions enhance a photo at once against one local app server; prints the figures.

    python scripts/load_test.py                       # 6 sessions, a 4000 x 3000 (12 MP) photo each, denoise
    python scripts/load_test.py --sessions 3 --size 1152x864 --max-jobs 1

It starts `streamlit run app.py` on 127.0.0.1 (or uses --url, which must be a loopback address), opens one
Chromium context per session (Debian's chromium, driven by Playwright), and in each uploads the photo, presses
Enhance and waits for the result. Bounded: one upload and one job per session, and a deadline for the whole run
(--timeout). It reports each session's time, whether it was shown the queue, and the server's peak resident
memory (VmHWM of its process, which includes start-up), then stops the server it started.

tests/test_concurrency.py and tests/test_browser.py use serve() and run_sessions() from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULT = re.compile(r"(\d+)x(\d+) (?:->|→) (\d+)x(\d+) in ([\d.]+) s")  # Markdown shows -> as an arrow


@dataclass
class Server:
    url: str
    pid: int
    log: Path

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident so far) of the server process, in MB."""
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line
        )
        return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    env: dict[str, str] | None = None, log_dir: Path | None = None, start_timeout: float = 90
) -> Iterator[Server]:
    """`streamlit run app.py` on a free 127.0.0.1 port with `env` added; stopped (and waited for) on exit."""
    port = free_port()
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="vae-enhance-server-"))
    log_path = log_dir / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.3)
            yield Server(url, proc.pid, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def check_loopback(url: str) -> None:
    """This script only ever talks to a server on this machine."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"--url must be a loopback address (127.0.0.1, localhost, [::1]), got {url!r}")


def make_photo(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A noisy colour photo (smooth gradients plus sigma-20 noise) saved as a JPEG of quality 92."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.uint8)
    for c, plane in enumerate((x + 0 * y, y + 0 * x, 0.5 + 0.5 * np.sin(6 * (x + y)))):
        noisy = plane * 220 + 20 + rng.normal(0, 20, (height, width)).astype(np.float32)
        img[..., c] = np.clip(noisy, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=92)
    return path


@dataclass
class SessionResult:
    index: int
    photo: Path
    ok: bool
    seconds: float
    message: str
    saw_queue: bool
    size_in: tuple[int, int] | None = None
    size_out: tuple[int, int] | None = None


async def _session(browser, url: str, index: int, photo: Path, task: str, deadline: float) -> SessionResult:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    start = time.monotonic()
    saw_queue = False
    try:
        await page.goto(url, wait_until="domcontentloaded")
        await page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(photo)
        if task != "Denoise":
            await page.get_by_text(task, exact=True).click()
        button = page.get_by_role("button", name=re.compile(r"^Enhance"))
        await button.wait_for(timeout=max(1, deadline - time.monotonic()) * 1000)
        await page.locator('[data-testid="stCaptionContainer"]', has_text=photo.name).wait_for(
            timeout=max(1, deadline - time.monotonic()) * 1000
        )
        start = time.monotonic()
        await button.click()
        success = page.locator('[data-testid="stAlertContentSuccess"]')
        errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        while time.monotonic() < deadline:
            if await success.count():
                text = await success.first.inner_text()
                match = RESULT.search(text)
                sizes = ((int(match[1]), int(match[2])), (int(match[3]), int(match[4]))) if match else (None, None)
                return SessionResult(index, photo, True, time.monotonic() - start, text, saw_queue, *sizes)
            if await errors.count():
                text = await errors.first.inner_text()
                return SessionResult(index, photo, False, time.monotonic() - start, text, saw_queue)
            if not saw_queue and await page.get_by_text("Queued:").count():
                saw_queue = True
            await asyncio.sleep(0.25)
        return SessionResult(index, photo, False, time.monotonic() - start, "no result before the deadline", saw_queue)
    except Exception as err:  # a session's failure is a result to report, not the end of the others
        return SessionResult(index, photo, False, time.monotonic() - start, f"{type(err).__name__}: {err}", saw_queue)
    finally:
        await context.close()


async def _sessions(url: str, photos: list[Path], task: str, timeout: float) -> list[SessionResult]:
    from playwright.async_api import async_playwright

    deadline = time.monotonic() + timeout
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            runs = [_session(browser, url, i, photo, task, deadline) for i, photo in enumerate(photos)]
            return list(await asyncio.gather(*runs))
        finally:
            await browser.close()


def run_sessions(url: str, photos: list[Path], task: str = "Denoise", timeout: float = 900) -> list[SessionResult]:
    """One browser session per photo, all at once: upload, Enhance, wait for the result (or the deadline)."""
    check_loopback(url)
    if CHROMIUM is None:
        raise RuntimeError("no chromium on PATH (apt-get install chromium)")
    return asyncio.run(_sessions(url, photos, task, timeout))


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6, help="browser sessions at once (1-16, default 6)")
    parser.add_argument("--size", type=_size, default=(4000, 3000), help="photo WIDTHxHEIGHT (default 4000x3000)")
    parser.add_argument("--task", default="Denoise", choices=("Denoise", "Upscale x2", "Upscale x4"))
    parser.add_argument("--max-jobs", type=int, default=None, help="VAE_ENHANCE_MAX_JOBS of the server it starts")
    parser.add_argument("--url", default=None, help="use this running loopback server instead of starting one")
    parser.add_argument("--timeout", type=float, default=900, help="deadline for the whole run, seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 16:
        parser.error("--sessions must be from 1 to 16")
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photo(Path(tmp) / f"load_{args.size[0]}x{args.size[1]}.jpg", *args.size)
        photos = [photo] * args.sessions
        if args.url:
            check_loopback(args.url)
            results, memory, before = run_sessions(args.url, photos, args.task, args.timeout), None, None
        else:
            env = {} if args.max_jobs is None else {"VAE_ENHANCE_MAX_JOBS": str(args.max_jobs)}
            with serve(env, Path(tmp)) as server:
                before = server.memory_mb()[0]
                start = time.monotonic()
                results = run_sessions(server.url, photos, args.task, args.timeout)
                wall = time.monotonic() - start
                memory = server.memory_mb()
    for r in results:
        state, queue = "ok " if r.ok else "FAILED", "yes" if r.saw_queue else "no "
        print(f"session {r.index}: {state} {r.seconds:6.1f} s  queue shown: {queue}  {r.message}")
    done = [r for r in results if r.ok]
    mp = args.size[0] * args.size[1] / 1e6
    print(f"{len(done)} of {len(results)} sessions finished: {args.size[0]}x{args.size[1]} ({mp:.1f} MP), {args.task}")
    if done:
        times = sorted(r.seconds for r in done)
        print(f"time per session from the click: {times[0]:.1f} to {times[-1]:.1f} s")
    if memory is not None:
        jobs = args.max_jobs or "default"
        print(
            f"server: max jobs {jobs}; all sessions in {wall:.0f} s; RSS before the sessions {before:.0f} MB, ", end=""
        )
        print(f"peak RSS {memory[1]:.0f} MB (VmHWM), {memory[0]:.0f} MB at the end")
    return 0 if len(done) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
