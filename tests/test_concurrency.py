"""One model serving several threads at once gives exactly the serial results; the app serves several sessions."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import vae_enhance as ve


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


def _png(h: int, w: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _app_session(i: int) -> np.ndarray:
    """One browser session: upload a photo of its own size, enhance it; returns the enhanced array."""
    app_test = pytest.importorskip("streamlit.testing.v1").AppTest
    at = app_test.from_file("../app.py", default_timeout=180)
    at.run()
    h, w = 24 + 8 * i, 40 - 4 * i
    at.file_uploader(key="upload").set_value((f"photo{i}.png", _png(h, w, i), "image/png")).run()
    at.button(key="enhance").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    out = at.session_state["result"]["out"]
    assert out.shape == (h, w, 3)  # this session's photo, not another's
    return out


def test_app_serves_several_sessions_at_once():
    pytest.importorskip("streamlit.testing.v1")
    serial = [_app_session(i) for i in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(_app_session, range(3)))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)
