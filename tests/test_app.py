"""The Streamlit page, driven headless by AppTest on the bundled weights."""

import io

import numpy as np
import pytest
from PIL import Image

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


def png_bytes(h: int = 40, w: int = 56) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app():
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_upload_enhance_variations_download(app):
    app.file_uploader(key="upload").set_value(("photo.png", png_bytes(), "image/png")).run()
    assert not app.exception and not app.error
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error
    downloads = app.get("download_button")
    assert downloads, "no download offered after enhancing"
    app.button(key="variations").click().run()
    assert not app.exception and not app.error
    captions = [img.proto.imgs[0].caption for img in app.get("image")]
    assert any("sample 0" in c for c in captions) and any("Uncertainty" in c for c in captions)


def test_non_image_upload_shows_error(app):
    app.file_uploader(key="upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not app.exception
    assert app.error and "not an image" in app.error[0].value
