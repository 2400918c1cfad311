"""The Streamlit page, driven headless by AppTest on the bundled weights."""

import base64
import io
import json
import math
import threading
import time

import numpy as np
import pytest
from PIL import Image

import vae_enhance as ve
from vae_enhance import app_helpers as ah
from vae_enhance.hub import save_model
from vae_enhance.jobs import server_queue

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SETTINGS = ("VAE_ENHANCE_MODEL", "VAE_ENHANCE_MODELS", "VAE_ENHANCE_ALLOW_ANY_MODEL", "VAE_ENHANCE_MAX_JOBS")


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


@pytest.fixture(autouse=True)
def operator_settings(monkeypatch):
    """Each test starts from a server with no settings; a test sets what it needs before the first run."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def start() -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app():
    return start()


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
    assert [e.key for e in app.get("bidi_component")] == ["compare"]  # the browser-side slider
    download = app.get("download_button")
    assert download and "Download PNG (56x40)" in download[0].proto.label
    app.button(key="variations").click().run()
    assert not app.exception and not app.error
    shown = captions(app)
    assert sum(c.startswith("sample ") for c in shown) == 4 and any("Uncertainty" in c for c in shown)
    assert len(app.get("download_button")) == 1 + 4  # the result and every sample
    assert any("Latent mean" in c for c in shown) and any("Latent standard deviation" in c for c in shown)
    scale = ve.load_model(device="cpu").config.prior_scale  # the bundled weights, which the app opens with
    assert (f"at {scale:g} of its trained width" in app.slider(key="temperature").help) == (scale != 1.0)


def test_slider_gets_lossless_previews_of_input_and_result(app):
    upload(app, "photo.png", png_bytes())
    app.button(key="enhance").click().run()
    (slider,) = app.get("bidi_component")
    data = json.loads(slider.proto.json)
    result = app.session_state["result"]
    before = ve.read_image(base64.b64decode(data["before"].split(",", 1)[1]))
    after = ve.read_image(base64.b64decode(data["after"].split(",", 1)[1]))
    expected_before, expected_after = ah.comparison_pair(result["lq"], result["out"])
    np.testing.assert_array_equal(before, expected_before)  # PNG: exactly the preview pixels
    np.testing.assert_array_equal(after, expected_after)
    assert data["pixels"] is True  # 56x40 is enlarged for display, so it is drawn pixelated


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


def test_start_page_offers_examples(app):
    assert app.info and "Upload a photo to start" in app.info[0].value
    labels = [b.label for b in app.button]
    assert labels == [e.label for e in ah.EXAMPLES]


@pytest.mark.parametrize("example", ah.EXAMPLES, ids=lambda e: e.file)
def test_each_example_opens_with_its_settings(app, example):
    app.button(key=f"example_{example.file}").click().run()
    assert not app.exception and not app.error
    img = ve.read_image(example.read())
    assert any(f"**{example.file}**: {img.shape[1]}x{img.shape[0]}" in c.value for c in app.caption)
    assert app.sidebar.radio(key="task").value == example.task
    expected_mode = "Simulate on a clean photo" if example.simulate else "Enhance a photo"
    assert app.sidebar.radio(key="mode").value == expected_mode
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    scale = ah.TASKS[example.task]
    out = app.session_state["result"]["out"]
    if not example.simulate:
        assert out.shape == (img.shape[0] * scale, img.shape[1] * scale, 3)


def test_an_upload_replaces_the_example(app):
    app.button(key=f"example_{ah.EXAMPLES[0].file}").click().run()
    upload(app, "photo.png", png_bytes())
    assert any("**photo.png**: 56x40" in c.value for c in app.caption)


def test_model_choice_is_closed_by_default(app):
    assert app.sidebar.selectbox(key="model_choice").options == ["bundled weights"]
    assert not [t for t in app.sidebar.text_input if t.key == "model_source"]  # no free text for strangers


def test_operator_lists_models(operator_settings, tmp_path, tiny_model):
    folder = save_model(tiny_model, tmp_path / "tiny")
    operator_settings.setenv("VAE_ENHANCE_MODELS", f"{folder}, user/other@{'a' * 40}")
    at = start()
    box = at.sidebar.selectbox(key="model_choice")
    assert box.options == ["bundled weights", str(folder), f"user/other@{'a' * 40}"]
    box.set_value(str(folder)).run()
    assert not at.exception and not at.error
    assert any(f"folder {folder}" in c.value for c in at.sidebar.caption)
    assert not [t for t in at.sidebar.text_input if t.key == "model_source"]


def test_free_text_model_only_when_allowed(operator_settings, tmp_path):
    operator_settings.setenv("VAE_ENHANCE_ALLOW_ANY_MODEL", "1")
    at = start()
    at.sidebar.text_input(key="model_source").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert at.error and "could not be loaded" in at.error[0].value


def test_bad_setting_is_a_message_not_a_traceback(operator_settings):
    operator_settings.setenv("VAE_ENHANCE_MAX_JOBS", "lots")
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    assert not at.exception
    assert at.error and "VAE_ENHANCE_MAX_JOBS must be a whole number" in at.error[0].value


def test_a_job_waits_for_a_free_slot(operator_settings, app):
    """With the one slot taken, Enhance waits in the queue and then runs; the result says how long it waited."""
    operator_settings.setenv("VAE_ENHANCE_MAX_JOBS", "1")
    upload(app, "photo.png", png_bytes())
    queue = server_queue(1)
    held = queue.slot()
    held.__enter__()

    def release_once_queued():
        deadline = time.monotonic() + 60
        while queue.ahead() - queue.running() < 1 and time.monotonic() < deadline:  # the app's job waits
            time.sleep(0.05)
        time.sleep(1.5)
        held.__exit__(None, None, None)

    releaser = threading.Thread(target=release_once_queued)
    releaser.start()
    try:
        app.button(key="enhance").click().run()
    finally:
        releaser.join(timeout=60)
    assert not app.exception and not app.error
    assert "s in the queue" in app.success[0].value
    assert queue.running() == 0 and queue.ahead() == 0


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


def test_noise_level_control_for_models_that_take_one(operator_settings, tmp_path, monkeypatch):
    import dataclasses

    import torch

    from vae_enhance.config import PRESETS

    torch.manual_seed(0)
    plain = dataclasses.replace(PRESETS["tiny"], noise_input=False, noise_estimator=False)
    plain_folder = save_model(ve.VAEEnhancer(plain).eval(), tmp_path / "plain")
    levelled = ve.VAEEnhancer(dataclasses.replace(PRESETS["tiny"], sr_estimators=True)).eval()
    with torch.no_grad():  # the x2 estimator reads 40 in any photo (every position reads log(255 level + 0.5))
        levelled.sr_estimators["2"].body[-1].weight.zero_()
        levelled.sr_estimators["2"].body[-1].bias.fill_(math.log(40.5))
    folder = save_model(levelled, tmp_path / "levelled")  # input and estimators
    operator_settings.setenv("VAE_ENHANCE_MODELS", f"{plain_folder},{folder}")
    at = start()
    at.sidebar.selectbox(key="model_choice").set_value(str(plain_folder)).run()
    assert not [c for c in at.sidebar.checkbox if c.key == "noise_auto"]  # this model judges noise itself
    at.sidebar.selectbox(key="model_choice").set_value(str(folder)).run()
    assert at.sidebar.checkbox(key="noise_auto").value and at.sidebar.slider(key="noise_level").disabled
    calls = []
    real_enhance = ve.enhance
    monkeypatch.setattr(ve, "enhance", lambda *a, **kw: calls.append(kw.get("noise_level")) or real_enhance(*a, **kw))
    upload(at, "photo.png", png_bytes())
    at.button(key="enhance").click().run()
    measured = calls[0]  # automatic: the photo is measured once, and that level is both used and shown
    assert measured is not None and f"noise level {measured:.1f} (measured)" in at.success[0].value
    assert at.sidebar.slider(key="noise_level").value == round(measured)  # shown at once, still disabled
    at.sidebar.checkbox(key="noise_auto").uncheck().run()
    assert at.sidebar.slider(key="noise_level").value == round(measured)  # the slider starts where auto was
    at.sidebar.slider(key="noise_level").set_value(30).run()
    at.button(key="enhance").click().run()
    assert "noise level 30 (set)" in at.success[0].value
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert calls == [measured, 30.0]  # automatic, then the level chosen
    # Upscaling is measured by the estimator for that scale.
    at.sidebar.checkbox(key="noise_auto").check().run()
    at.sidebar.radio(key="task").set_value("Upscale x2").run()
    at.button(key="enhance").click().run()
    assert calls[-1] == pytest.approx(40.0, abs=1e-3) and "noise level 40.0 (measured)" in at.success[0].value
    assert at.sidebar.slider(key="noise_level").value == 40  # auto's level shows on the disabled slider at once
    assert calls[-1] == pytest.approx(40.0, abs=1e-3) and len(calls) == 3  # the redraw restored nothing again


def test_best_quality_self_ensembles_and_keeps_the_variations(app, monkeypatch):
    calls = []
    real_enhance = ve.enhance
    monkeypatch.setattr(ve, "enhance", lambda *a, **kw: calls.append(kw.get("self_ensemble")) or real_enhance(*a, **kw))
    upload(app, "photo.png", png_bytes())
    app.button(key="enhance").click().run()
    app.button(key="variations").click().run()
    drawn = app.session_state["variations_result"]["samples"]
    assert not app.sidebar.checkbox(key="self_ensemble").value and "best quality" not in app.success[0].value
    app.sidebar.checkbox(key="self_ensemble").check().run()
    assert not app.success  # the result was made without it, so it is no longer shown as this setting's
    app.button(key="enhance").click().run()
    assert not app.exception and not app.error
    assert calls == [False, True] and "best quality (8 passes)" in app.success[0].value
    img = ve.read_image(png_bytes())
    expected = real_enhance(ve.load_model(device="cpu"), img, self_ensemble=True)
    np.testing.assert_array_equal(app.session_state["result"]["out"], expected)
    # The quality setting is the result's alone: the variations drawn before it are still shown.
    np.testing.assert_array_equal(app.session_state["variations_result"]["samples"], drawn)
    assert sum(c.startswith("sample ") for c in captions(app)) == 4
