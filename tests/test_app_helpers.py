"""The app's non-UI logic (vae_enhance/app_helpers.py), on the tiny seeded model and synthetic photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

import vae_enhance as ve
from vae_enhance import app_helpers as ah
from vae_enhance.baselines import noisy


def test_model_label_names_the_source():
    assert "bundled" in ah.model_label(None, None)
    assert ah.model_label("user/name", "abc123") == "user/name @ abc123"
    assert ah.model_label("runs/mine", None) == "runs/mine"


def test_describe_image_layouts():
    assert ah.describe_image(np.zeros((4, 6), np.uint16)) == "6x4, gray, 16-bit"
    assert ah.describe_image(np.zeros((4, 6, 4), np.uint8)) == "6x4, RGB with alpha, 8-bit"


def test_check_output_size_refuses_with_advice():
    ah.check_output_size((3000, 4000, 3), 2)  # a 12 MP photo x2 is allowed
    with pytest.raises(ValueError, match="smaller scale"):
        ah.check_output_size((3000, 4000, 3), 4)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_enhance_tiled_matches_enhance(tiny_model, rng, scale):
    img = photo(rng, 72, 40)
    fractions = []
    tiled = ah.enhance_tiled(tiny_model, img, scale, progress=fractions.append, tile_output=16 * scale)
    same_tiles = ve.enhance(tiny_model, img, scale, tile=16)
    assert tiled.dtype == np.uint8 and np.array_equal(tiled, same_tiles)  # the core's tiles, pixel for pixel
    whole = ve.enhance(tiny_model, img, scale, tile=0)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # no seams
    assert len(fractions) == 5 * 3 and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_enhance_tiled_keeps_16_bit_gray_and_alpha(tiny_model, rng):
    gray16 = photo(rng, 32, 24)[..., 0].astype(np.uint16) * 257
    out = ah.enhance_tiled(tiny_model, gray16, 2, tile_output=32)
    assert out.dtype == np.uint16 and np.array_equal(out, ve.enhance(tiny_model, gray16, 2, tile=16))
    rgba = np.dstack([photo(rng, 32, 24), np.full((32, 24), 128, np.uint8)])
    out = ah.enhance_tiled(tiny_model, rgba, 2, tile_output=32)
    assert out.shape == (64, 48, 4) and np.all(np.abs(out[..., 3].astype(int) - 128) <= 1)


def test_fit_and_previews():
    big = np.zeros((400, 1000, 3), np.uint8)
    assert ah.fit(big, 500).shape == (200, 500, 3)
    assert ah.fit(big, 2000) is big
    assert ah.to_display(np.full((2, 2), 65535, np.uint16)).max() == 255
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent: the checkerboard shows
    shown = ah.as_rgb8(rgba)
    assert shown.shape == (16, 16, 3) and set(np.unique(shown)) == {150, 200}


def test_comparison_pair_and_split_view(rng):
    lq, out = photo(rng, 20, 30), photo(rng, 40, 60)
    before, after = ah.comparison_pair(lq, out, min_side=120)
    assert before.shape == after.shape == (80, 120, 3)  # enlarged x2, nearest neighbour
    assert np.array_equal(before[::4, ::4], lq)
    view = ah.split_view(before, after, 0.25, line=2)
    assert np.array_equal(view[:, :29], before[:, :29]) and np.array_equal(view[:, 31:], after[:, 31:])
    assert np.all(view[:, 29:31] == 255)
    assert np.array_equal(ah.split_view(before, after, 1.5, line=0), before)
    with pytest.raises(ValueError, match="same shape"):
        ah.split_view(before, after[:10], 0.5)


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
    c = tiny_model.config.latent_channels
    assert maps.mean.shape == maps.std.shape == (c, 8, 12)  # output 64x96, latent at 1/8
    lq = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.inference_mode():
        dist = tiny_model.encode(lq, 2).dist
    assert np.allclose(maps.mean, dist.mean[0].numpy(), atol=1e-5) and np.all(maps.std > 0)
    grid = ah.channel_grid(maps.std, "viridis", symmetric=False, cell=24, gap=4)
    assert grid.shape == (16, c * 24 + (c - 1) * 4, 3)


def test_channel_grid_scales_each_channel():
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    maps = np.stack([ramp, 100 + 0.01 * ramp])  # the same pattern at very different offsets and spans
    grid = ah.channel_grid(maps, "gray", symmetric=False, cell=8, gap=2)
    assert np.array_equal(grid[:, :8], grid[:, 10:])  # each on its own scale: identical tiles
    assert grid[:, :8].min() == 0 and grid[:, :8].max() == 255
    centred = ah.channel_grid(maps, "gray", symmetric=True, cell=8, gap=2)
    assert abs(centred[:, :8].mean() - 127.5) < 3  # a symmetric ramp around its median: mid-gray on average


def test_simulate_follows_the_protocol(rng):
    img = photo(rng, 50, 66)
    sim = ah.simulate(img, 25, 1, side=1024)
    hq = img.astype(np.float32) / 255
    assert np.allclose(sim.hq, hq) and np.array_equal(sim.lq, noisy(hq, 25))
    sr = ah.simulate(img, 0, 4)
    assert sr.hq.shape == (48, 64, 3) and sr.lq.shape == (12, 16, 3)
    crop = ah.simulate(photo(rng, 100, 200), 10, 2, side=64)
    assert crop.hq.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="nothing to restore"):
        ah.simulate(img, 0, 1)


def test_simulate_gray_and_alpha_become_rgb(rng):
    rgba = np.dstack([photo(rng, 32, 32), np.zeros((32, 32), np.uint8)])
    assert ah.simulate(rgba, 15, 1).hq.shape == (32, 32, 3)
    assert ah.simulate(rgba[..., 0], 15, 2).lq.shape == (16, 16, 3)


def test_baselines_and_scores(rng):
    img = photo(rng, 48, 64)
    den = ah.simulate(img, 25, 1)
    found = ah.baselines(den)
    assert list(found) == ["OpenCV non-local means"]
    rows = ah.score_rows(den, np.clip(den.lq, 0, 1), found)
    assert [r["method"] for r in rows] == ["Degraded input", "OpenCV non-local means", "vae-enhance"]
    assert rows[0]["PSNR (RGB, dB)"] == rows[2]["PSNR (RGB, dB)"]  # the same picture scores the same
    assert rows[1]["PSNR (RGB, dB)"] > rows[0]["PSNR (RGB, dB)"]  # NL-means removes noise
    sr = ah.simulate(img, 15, 2)
    assert list(ah.baselines(sr)) == ["Bicubic", "OpenCV non-local means + bicubic"]
    perfect, structure = ah.score(sr.hq, sr.hq, 2)
    assert perfect > 100 and structure == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_downloads_decode(fmt):
    img = np.full((8, 10, 4), 200, np.uint8)
    data = ah.encode_download(img, fmt, 80)
    back = Image.open(io.BytesIO(data))
    assert back.size == (10, 8) and back.format == fmt
    assert ("alpha dropped" in ah.download_note(img, fmt)) == (fmt == "JPEG")


def test_png_download_keeps_16_bit():
    img = np.full((4, 4, 3), 1000, np.uint16)
    assert np.array_equal(ve.read_image(ah.encode_download(img, "PNG")), img)
    assert "16-bit" in ah.download_note(img, "PNG")
