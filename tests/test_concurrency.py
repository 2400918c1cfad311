"""One model serving many threads gives the serial results; the job queue bounds the work; the app serves
several real browser sessions at once (a running server, not AppTest, which is not made for threads)."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import vae_enhance as ve
from vae_enhance.jobs import JobQueue, server_queue

ROOT = Path(__file__).resolve().parent.parent


def _image(shape, dtype, seed):
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return x if dtype == np.float32 else np.rint(x * np.iinfo(dtype).max).astype(dtype)


# Mixed work: every layout and dtype, both functions, SR, tiled and untiled, with and without noise.
JOBS = [
    ("enhance", (40, 36, 3), np.uint8, {"scale": 2, "tile": 16}),
    ("enhance", (33, 47), np.uint16, {"scale": 1}),
    ("enhance", (24, 30, 4), np.float32, {"scale": 4, "tile": 8}),
    ("enhance", (50, 20, 3), np.uint8, {"scale": 1, "temperature": 0.8, "seed": 5, "tile": 16}),
    ("variations", (28, 28, 3), np.uint8, {"n": 3, "scale": 2, "seed": 1, "tile": 16}),
    ("variations", (31, 17), np.float32, {"n": 2, "scale": 1, "seed": 2}),
    ("variations", (20, 26, 4), np.uint16, {"n": 4, "scale": 1, "seed": 3, "tile": 8}),
    ("enhance", (64, 64, 3), np.uint8, {"scale": 1, "tile": 24}),
]


def _work(model, i):
    kind, shape, dtype, kwargs = JOBS[i % len(JOBS)]
    img = _image(shape, dtype, seed=i)
    if kind == "enhance":
        return (ve.enhance(model, img, **kwargs),)
    return ve.variations(model, img, **kwargs)


def test_one_model_many_threads_equals_serial(tiny_model):
    count = 3 * len(JOBS)
    serial = [_work(tiny_model, i) for i in range(count)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        threaded = list(pool.map(lambda i: _work(tiny_model, i), range(count)))
    for i, (a, b) in enumerate(zip(serial, threaded, strict=True)):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape, i
            np.testing.assert_array_equal(x, y, err_msg=f"job {i}")


def test_threads_leave_the_model_untouched(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: _work(tiny_model, i), range(len(JOBS))))
    after = tiny_model.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert not tiny_model.training


def _until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _queued_jobs(queue: JobQueue, count: int):
    """count threads that each hold a slot until `gate` is set, started one by one (arrival order 0..count-1).

    Returns (threads, gate, order in which jobs started, {job: jobs ahead when first told}, peak running).
    """
    gate = threading.Event()
    lock = threading.Lock()
    order, seen, state = [], {}, {"running": 0, "peak": 0}

    def job(i: int) -> None:
        with queue.slot(on_wait=lambda ahead: seen.setdefault(i, ahead), poll=0.05):
            with lock:
                state["running"] += 1
                state["peak"] = max(state["peak"], state["running"])
                order.append(i)
            gate.wait(30)
            with lock:
                state["running"] -= 1

    threads = []
    for i in range(count):
        threads.append(threading.Thread(target=job, args=(i,)))
        threads[-1].start()
        _until(lambda i=i: queue.ahead() >= i + 1)
    return threads, gate, order, seen, state


def test_queue_bounds_running_jobs_and_says_how_many_are_ahead():
    queue = JobQueue(2)
    threads, gate, _, seen, state = _queued_jobs(queue, 6)
    _until(lambda: len(seen) == 4)
    assert queue.running() == 2 and queue.ahead() == 6
    assert seen == {2: 2, 3: 3, 4: 4, 5: 5}  # each waiting job was told the jobs ahead of it
    gate.set()
    for thread in threads:
        thread.join(30)
    assert state["peak"] == 2
    assert queue.running() == 0 and queue.ahead() == 0


def test_queue_serves_in_arrival_order():
    queue = JobQueue(1)
    threads, gate, order, _, _ = _queued_jobs(queue, 5)
    gate.set()
    for thread in threads:
        thread.join(30)
    assert order == list(range(5))


def test_an_interrupted_wait_gives_its_place_back():
    """Streamlit stops a waiting session by raising from on_wait: the place in the queue is freed."""
    queue = JobQueue(1)
    with queue.slot():

        def give_up(ahead: int) -> None:
            raise KeyboardInterrupt  # stands for Streamlit's StopException, also a BaseException

        with pytest.raises(KeyboardInterrupt):
            with queue.slot(on_wait=give_up):
                pass
        assert queue.ahead() == 1  # only the running job
    with queue.slot() as waited:  # the slot is free again, at once
        assert waited < 1


def test_a_failing_job_frees_its_slot():
    queue = JobQueue(1)
    with pytest.raises(ValueError):
        with queue.slot():
            raise ValueError("bad photo")
    assert queue.running() == 0


def test_server_queue_is_one_per_process():
    first = server_queue(3)
    assert server_queue(3) is first
    assert server_queue(1) is first and first.limit == 1  # a changed setting applies to the same queue
    with pytest.raises(ValueError, match="at least 1"):
        JobQueue(0)


@pytest.fixture(scope="module")
def load_test():
    """scripts/load_test.py: the app server and real browser sessions (Debian's chromium, Playwright)."""
    if shutil.which("chromium") is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.async_api", reason="Playwright's Python package is not installed")
    sys.path.insert(0, str(ROOT / "scripts"))
    import load_test

    return load_test


def test_app_serves_several_sessions_at_once(load_test, tmp_path):
    """Three browser sessions enhance three photos of their own sizes at once, on a server that runs one job
    at a time: every session finishes, with its own photo's result."""
    sizes = [(56, 40), (72, 48), (40, 64)]
    photos = [load_test.make_photo(tmp_path / f"photo{i}.jpg", w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    with load_test.serve({"VAE_ENHANCE_MAX_JOBS": "1", "OMP_NUM_THREADS": "1"}, tmp_path) as server:
        results = load_test.run_sessions(server.url, photos, timeout=240)
    assert all(r.ok for r in results), [(r.index, r.message) for r in results]
    assert [r.size_in for r in results] == sizes and [r.size_out for r in results] == sizes
