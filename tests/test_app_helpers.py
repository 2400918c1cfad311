"""The app's non-UI logic (vae_enhance/app_helpers.py), on the tiny seeded model and synthetic photos."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

import vae_enhance as ve
from vae_enhance import app_helpers as ah
from vae_enhance.image_io import encode_image


def test_describe_image_layouts():
    assert ah.describe_image(np.zeros((4, 6), np.uint16)) == "6x4, gray, 16-bit"
    assert ah.describe_image(np.zeros((4, 6, 4), np.uint8)) == "6x4, RGB with alpha, 8-bit"


def test_check_output_size_refuses_with_advice():
    ah.check_output_size((3000, 4000, 3), 2)  # a 12 MP photo x2 is allowed
    with pytest.raises(ValueError, match="smaller scale"):
        ah.check_output_size((3000, 4000, 3), 4)


def test_fit_and_previews():
    big = np.zeros((400, 1000, 3), np.uint8)
    assert ah.fit(big, 500).shape == (200, 500, 3)
    assert ah.fit(big, 2000) is big
    assert ah.to_display(np.full((2, 2), 65535, np.uint16)).max() == 255
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent: the checkerboard shows
    shown = ah.as_rgb8(rgba)
    assert shown.shape == (16, 16, 3) and set(np.unique(shown)) == {150, 200}


def test_comparison_pair_and_lossless_previews(rng):
    lq, out = photo(rng, 20, 30), photo(rng, 40, 60)
    before, after = ah.comparison_pair(lq, out, min_side=120)
    assert before.shape == after.shape == (80, 120, 3)  # enlarged x2, nearest neighbour
    assert np.array_equal(before[::4, ::4], lq)
    url = ah.png_data_url(after)
    assert url.startswith("data:image/png;base64,")
    assert np.array_equal(ve.read_image(base64.b64decode(url.split(",", 1)[1])), after)  # lossless


def test_examples_ship_with_their_licence():
    notes = (ah.EXAMPLES_DIR / "README.md").read_text()
    assert "CC0" in notes and "public domain" in notes
    for example in ah.EXAMPLES:
        img = ve.read_image(example.read())
        assert img.dtype == np.uint8 and img.ndim == 3 and max(img.shape[:2]) <= 400
        assert f"`{example.file}`" in notes and example.task in ah.TASKS
    assert sum((ah.EXAMPLES_DIR / e.file).stat().st_size for e in ah.EXAMPLES) < 500_000


def test_region_box_stays_inside_and_aligns():
    assert ah.region_box((100, 200), (0.5, 0.5), 40) == (30, 70, 80, 120)
    assert ah.region_box((100, 200), (0.0, 1.0), 40) == (0, 40, 160, 200)
    assert ah.region_box((10, 20), (0.5, 0.5), 64) == (0, 10, 0, 20)  # window larger than the image
    y0, y1, x0, x1 = ah.region_box((101, 203), (0.37, 0.61), 50, multiple=8)
    assert y0 % 8 == 0 and x0 % 8 == 0 and (y1 - y0) == 48 and (x1 - x0) == 48


def test_zoom_pair_shows_the_same_window(rng):
    lq = photo(rng, 40, 50)
    out = np.repeat(np.repeat(lq, 2, axis=0), 2, axis=1)  # a perfect nearest "upscale"
    crop_lq, crop_out = ah.zoom_pair(lq, out, 2, (0.5, 0.5), 32)
    assert crop_lq.shape == crop_out.shape == (32, 32, 3)
    assert np.array_equal(crop_lq, crop_out)


def test_region_limits_output_size(rng):
    img = photo(rng, 300, 500)
    window = ah.region(img, 2, (0.5, 0.5), side=256)
    assert window.shape == (128, 128, 3)
    assert ah.region(img[:40, :48], 4, (0.5, 0.5)).shape == (40, 48, 3)


def test_colorize_uses_the_colour_map():
    values = np.array([[0.0, 0.5, 1.0, 7.0]])
    rgb = ah.colorize(values, "gray", 0.0, 1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 2].tolist() == [255, 255, 255]
    assert np.array_equal(rgb[0, 3], rgb[0, 2])  # clipped
    std = np.zeros((20, 20), np.float32)
    std[:10] = 0.1
    std[0, 0] = 5.0  # one outlier does not set the scale
    heat, top = ah.uncertainty_heatmap(std)
    assert top == pytest.approx(0.1) and heat.shape == (20, 20, 3)
    assert np.array_equal(heat[5, 5], heat[0, 0]) and not np.array_equal(heat[5, 5], heat[15, 15])


def test_latent_maps_match_the_prior(tiny_model, rng):
    img = photo(rng, 32, 48)
    maps = ah.latent_maps(tiny_model, img, 2)
    c, stride = tiny_model.config.latent_channels, tiny_model.config.latent_stride
    assert maps.mean.shape == maps.std.shape == (c, 64 // stride, 96 // stride)  # output 64x96
    lq = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.inference_mode():
        dist = tiny_model.encode(lq, 2).dist
    assert np.allclose(maps.mean, dist.mean[0].numpy(), atol=1e-5) and np.all(maps.std > 0)
    grid = ah.channel_grid(maps.std, "viridis", symmetric=False, cell=96 // stride, gap=4)
    assert grid.shape == (64 // stride, c * 96 // stride + (c - 1) * 4, 3)  # enlarged x1: cells already that big


def test_channel_grid_scales_each_channel():
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    maps = np.stack([ramp, 100 + 0.01 * ramp])  # the same pattern at very different offsets and spans
    grid = ah.channel_grid(maps, "gray", symmetric=False, cell=8, gap=2)
    assert np.array_equal(grid[:, :8], grid[:, 10:])  # each on its own scale: identical tiles
    assert grid[:, :8].min() == 0 and grid[:, :8].max() == 255
    centred = ah.channel_grid(maps, "gray", symmetric=True, cell=8, gap=2)
    assert abs(centred[:, :8].mean() - 127.5) < 3  # a symmetric ramp around its median: mid-gray on average


def test_simulate_follows_the_protocol(rng):
    img = np.full((200, 264, 3), 128, np.uint8)  # flat gray: what is left after the noise is the noise
    sim = ah.simulate(img, 25, 1, side=1024)
    assert np.allclose(sim.hq, 128 / 255) and sim.lq.dtype == np.float32
    noise = (sim.lq - sim.hq) * 255
    assert abs(noise.mean()) < 0.3 and abs(noise.std() - 25) < 0.3  # Gaussian, sigma 25 on the 0-255 scale
    assert np.array_equal(ah.simulate(img, 25, 1).lq, sim.lq)  # seeded: the same photo, the same input
    bright = ah.simulate(np.full((64, 64, 3), 250, np.uint8), 25, 1)
    assert bright.lq.max() > 1.0  # not clipped, as the benchmark inputs
    clean = photo(rng, 50, 66)
    sr = ah.simulate(clean, 0, 4)
    assert sr.hq.shape == (48, 64, 3) and sr.lq.shape == (12, 16, 3)
    # The SR input is the antialiased bicubic downscale (PIL's BICUBIC, a = -0.5) of the clean crop.
    crop = Image.fromarray(np.rint(sr.hq * 255).astype(np.uint8))
    expected = np.asarray(crop.resize((16, 12), Image.Resampling.BICUBIC), np.float32) / 255
    assert np.abs(sr.lq - expected).max() <= 0.5 / 255 + 1e-6
    crop = ah.simulate(photo(rng, 100, 200), 10, 2, side=64)
    assert crop.hq.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="nothing to restore"):
        ah.simulate(clean, 0, 1)


def test_simulate_gray_and_alpha_become_rgb(rng):
    rgba = np.dstack([photo(rng, 32, 32), np.zeros((32, 32), np.uint8)])
    assert ah.simulate(rgba, 15, 1).hq.shape == (32, 32, 3)
    assert ah.simulate(rgba[..., 0], 15, 2).lq.shape == (16, 16, 3)


def test_scores_follow_the_protocol(rng):
    hq = photo(rng, 48, 64).astype(np.float32) / 255
    off = np.clip(hq + 0.01, 0, 1)  # every value 0.01 off (where not clipped)
    mse = np.mean((off - hq) ** 2)
    value, structure = ah.score(off, hq, 1)  # RGB PSNR over the whole image
    assert value == pytest.approx(10 * np.log10(1 / mse), abs=1e-3) and 0.9 < structure < 1.0
    y_off = off.copy()
    y_off[:2] = 0  # damage within the 2-pixel border only: Y-PSNR at x2 crops it away
    ignored, _ = ah.score(y_off, hq, 2)
    unharmed, _ = ah.score(off, hq, 2)
    assert ignored == pytest.approx(unharmed, abs=1e-6)
    perfect, same = ah.score(hq, hq, 2)
    assert perfect > 100 and same == pytest.approx(1.0)


def test_score_rows_rank_a_real_restoration(rng):
    y, x = np.mgrid[:48, :64] / 64
    img = np.rint(np.stack([x, y, 0.5 + 0.4 * np.sin(4 * (x + y))], axis=2) * 255).astype(np.uint8)  # smooth
    den = ah.simulate(img, 25, 1)
    found = ah.baselines(den)
    assert list(found) == ["OpenCV non-local means"]
    # A restoration that removed most of the noise: the clean photo plus a tenth of it.
    restored = den.hq + 0.1 * (den.lq - den.hq)
    rows = ah.score_rows(den, restored, found)
    assert [r["method"] for r in rows] == ["Degraded input", "OpenCV non-local means", "vae-enhance"]
    noisy_db, nlm_db, ours_db = (r["PSNR (RGB, dB)"] for r in rows)
    assert noisy_db == pytest.approx(20.2, abs=0.5)  # sigma 25: 20 log10(255 / 25), a little more from clipping
    assert ours_db == pytest.approx(noisy_db + 20, abs=0.5)  # a tenth of the noise: +20 dB
    assert nlm_db > noisy_db + 2  # NL-means removes noise
    assert rows[2]["SSIM"] > rows[0]["SSIM"]
    sr = ah.simulate(img, 15, 2)
    assert list(ah.baselines(sr)) == ["Bicubic", "OpenCV non-local means + bicubic"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_downloads_decode(fmt):
    img = np.full((8, 10, 4), 200, np.uint8)
    data = encode_image(img, fmt, 80)
    back = Image.open(io.BytesIO(data))
    assert back.size == (10, 8) and back.format == fmt
    assert ("alpha dropped" in ah.download_note(img, fmt)) == (fmt == "JPEG")


def test_png_download_keeps_16_bit():
    img = np.full((4, 4, 3), 1000, np.uint16)
    assert np.array_equal(ve.read_image(encode_image(img, "PNG")), img)
    assert "16-bit" in ah.download_note(img, "PNG")
