"""The Streamlit page, driven headless by AppTest on the bundled weights."""

import io

import numpy as np
import pytest
from PIL import Image

import vae_enhance as ve

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


def png_bytes(h: int = 40, w: int = 56, channels: int = 3, dtype=np.uint8) -> bytes:
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    img = rng.integers(0, top + 1, (h, w, channels), dtype=dtype)
    return ve.image_io.encode_image(img, "PNG")


def jpeg_bytes(h: int = 48, w: int = 64) -> bytes:
    y, x = np.mgrid[:h, :w]
    buf = io.BytesIO()
    Image.fromarray(np.stack([x * 4, y * 5, x + y], axis=2).astype(np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def app():
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    assert not at.exception
    return at


def captions(at) -> list[str]:
    return [img.proto.imgs[0].caption for img in at.get("image")]


def upload(at, name: str, data: bytes, mime: str = "image/png"):
    at.file_uploader(key="upload").set_value((name, data, mime)).run()
    assert not at.exception and not at.error
    return at


def test_upload_enhance_variations_download(app):
    upload(app, "photo.png", png_bytes())
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error
    assert "56x40 -> 56x40" in app.success[0].value
    download = app.get("download_button")
    assert download and "Download PNG (56x40)" in download[0].proto.label
    app.button(key="variations").click().run()
    assert not app.exception and not app.error
    shown = captions(app)
    assert sum(c.startswith("sample ") for c in shown) == 4 and any("Uncertainty" in c for c in shown)
    assert len(app.get("download_button")) == 1 + 4  # the result and every sample
    assert any("Latent mean" in c for c in shown) and any("Latent standard deviation" in c for c in shown)


def test_upscale_keeps_16_bit_and_alpha(app):
    upload(app, "deep.png", png_bytes(24, 32, channels=4, dtype=np.uint16))
    assert any("32x24, RGB with alpha, 16-bit" in c.value for c in app.caption)
    app.sidebar.radio(key="task").set_value("Upscale x2").run()
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error
    assert "32x24 -> 64x48" in app.success[0].value
    assert any("PNG keeps 16-bit and alpha" in c.value for c in app.caption)
    app.get("button_group")[0].set_value("JPEG").run()  # the format control
    assert any("alpha dropped" in c.value for c in app.caption)


def test_non_image_upload_shows_error(app):
    app.file_uploader(key="upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not app.exception
    assert app.error and "not an image" in app.error[0].value
    assert not app.get("download_button")


def test_simulate_mode_shows_scores(app):
    app.sidebar.radio(key="mode").set_value("Simulate on a clean photo").run()
    app.sidebar.slider(key="sigma").set_value(15).run()
    upload(app, "clean.jpg", jpeg_bytes(), "image/jpeg")
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["method"]) == ["Degraded input", "OpenCV non-local means", "vae-enhance"]
    assert np.isfinite(table["PSNR (RGB, dB)"]).all() and table["SSIM"].between(-1, 1).all()


def test_simulate_needs_a_degradation(app):
    app.sidebar.radio(key="mode").set_value("Simulate on a clean photo").run()
    app.sidebar.slider(key="sigma").set_value(0).run()
    upload(app, "clean.jpg", jpeg_bytes(), "image/jpeg")
    app.button(key="enhance").click().run()
    assert not app.exception
    assert app.error and "nothing to restore" in app.error[0].value


def test_bad_model_source_shows_error(app, tmp_path):
    app.sidebar.text_input(key="model_source").set_value(str(tmp_path / "missing")).run()
    assert not app.exception
    assert app.error and "could not be loaded" in app.error[0].value


def test_new_seed_changes_the_seed(app):
    upload(app, "photo.png", png_bytes())
    before = app.number_input(key="seed").value
    app.button(key="new_seed").click().run()
    assert not app.exception and app.number_input(key="seed").value != before


def test_survives_a_package_reload(app, monkeypatch):
    """Streamlit evicts the project's modules when a source file changes (an edit, a git pull on Cloud):
    the cached model must not outlive its class, or enhance() would refuse it."""
    import sys

    upload(app, "photo.png", png_bytes())
    app.button(key="enhance").click().run()
    assert not app.error
    for name in [m for m in sys.modules if m == "vae_enhance" or m.startswith("vae_enhance.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test, for the other tests' sake
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
