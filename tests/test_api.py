"""The public enhance()/variations() API: every layout and dtype, alpha, determinism, seeds, the noise
level (strength control), bad arguments."""

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import listening

import vae_enhance as ve
from vae_enhance.config import PRESETS

DTYPES = [np.uint8, np.uint16, np.float32]
SHAPES = [(13, 29), (13, 29, 3), (13, 29, 4), (1, 1), (1, 40, 3), (40, 1, 4)]


def _image(shape, dtype, seed=0):
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    if dtype == np.float32:
        return x
    return np.rint(x * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_enhance_keeps_layout_and_dtype(tiny_model, shape, dtype, scale):
    out = ve.enhance(tiny_model, _image(shape, dtype), scale)
    assert out.dtype == dtype
    assert out.shape == (shape[0] * scale, shape[1] * scale, *shape[2:])
    if dtype == np.float32:
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_is_identical_at_scale_1_and_bypasses_the_network(tiny_model, dtype):
    rgba = _image((21, 18, 4), dtype)
    out = ve.enhance(tiny_model, rgba, 1)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], ve.enhance(tiny_model, rgba[..., :3], 1))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_is_resized_for_sr(tiny_model, dtype, scale):
    rgba = _image((12, 15, 4), dtype)
    rgba[..., 3] = rgba[0, 0, 3]  # constant alpha stays constant
    out = ve.enhance(tiny_model, rgba, scale)
    assert (out[..., 3] == rgba[0, 0, 3]).all()
    # A left-to-right alpha ramp stays a ramp (constant down each column) at the new size.
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    ramp = np.linspace(0, 1, 15)[None, :].repeat(12, axis=0) * top
    rgba[..., 3] = ramp if dtype == np.float32 else np.rint(ramp)
    alpha = ve.enhance(tiny_model, rgba, scale)[..., 3] / top
    assert alpha.shape == (12 * scale, 15 * scale)
    assert np.ptp(alpha, axis=0).max() <= 1 / 255
    assert alpha[0, -1] > alpha[0, alpha.shape[1] // 2] > alpha[0, 0]


def test_gray_stays_gray_and_is_the_mean_of_rgb(tiny_model):
    gray = _image((17, 19), np.float32) * 0.6 + 0.2
    out = ve.enhance(tiny_model, gray, 2)
    assert out.shape == (34, 38)
    rgb = ve.enhance(tiny_model, np.repeat(gray[..., None], 3, axis=2), 2)
    inside = ((rgb > 0) & (rgb < 1)).all(axis=-1)  # where no channel was clipped the two agree
    assert inside.mean() > 0.5
    np.testing.assert_allclose(out[inside], rgb.mean(axis=-1)[inside], atol=1e-6)


def test_16_bit_output_uses_16_bit_precision(tiny_model):
    out = ve.enhance(tiny_model, _image((20, 20, 3), np.uint16), 1)
    assert (out % 257 != 0).mean() > 0.5  # not 8-bit values scaled up


def test_float_input_is_not_clipped_before_the_network(tiny_model):
    x = _image((20, 24, 3), np.float32) * 1.6 - 0.3
    assert x.min() < 0 and x.max() > 1
    out = ve.enhance(tiny_model, x)
    assert np.abs(out - ve.enhance(tiny_model, np.clip(x, 0, 1))).max() > 1e-3
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_temperature_zero_is_deterministic(tiny_model):
    img = _image((24, 20, 3), np.uint8)
    a, b = ve.enhance(tiny_model, img, 2), ve.enhance(tiny_model, img, 2, seed=123)
    np.testing.assert_array_equal(a, b)


def test_enhance_with_temperature_is_seeded_and_matches_variations(tiny_model):
    img = _image((24, 20, 3), np.float32)
    a = ve.enhance(tiny_model, img, temperature=1.0, seed=3)
    np.testing.assert_array_equal(a, ve.enhance(tiny_model, img, temperature=1.0, seed=3))
    assert np.abs(a - ve.enhance(tiny_model, img, temperature=1.0, seed=4)).max() > 1e-3
    assert np.abs(a - ve.enhance(tiny_model, img)).max() > 1e-3
    samples, _ = ve.variations(tiny_model, img, n=1, temperature=1.0, seed=3)
    np.testing.assert_array_equal(samples[0], a)


@pytest.mark.parametrize(
    ("shape", "dtype"), [((16, 22, 3), np.uint8), ((16, 22), np.uint16), ((16, 22, 4), np.float32)]
)
@pytest.mark.parametrize("scale", [1, 2])
def test_variations_shape_dtype_and_seed(tiny_model, shape, dtype, scale):
    img = _image(shape, dtype)
    samples, std = ve.variations(tiny_model, img, n=3, scale=scale, seed=7)
    size = (16 * scale, 22 * scale)
    assert samples.dtype == dtype and samples.shape == (3, *size, *shape[2:])
    assert std.dtype == np.float32 and std.shape == size
    again, again_std = ve.variations(tiny_model, img, n=3, scale=scale, seed=7)
    np.testing.assert_array_equal(samples, again)
    np.testing.assert_array_equal(std, again_std)
    other, _ = ve.variations(tiny_model, img, n=3, scale=scale, seed=8)
    assert not np.array_equal(samples, other)
    assert std.max() > 0.01 and std.min() >= 0
    assert not np.array_equal(samples[0], samples[1])


def test_variations_std_is_the_spread_of_the_samples(tiny_model):
    samples, std = ve.variations(tiny_model, _image((16, 16, 3), np.float32), n=4, temperature=1.0, seed=1)
    np.testing.assert_allclose(std, samples.std(axis=0).mean(axis=-1), atol=1e-6)


def test_variations_at_temperature_zero_are_identical(tiny_model):
    samples, std = ve.variations(tiny_model, _image((16, 16, 3), np.uint8), n=3, temperature=0.0)
    assert (std == 0).all()
    np.testing.assert_array_equal(samples[0], samples[2])
    np.testing.assert_array_equal(samples[0], ve.enhance(tiny_model, _image((16, 16, 3), np.uint8)))


def test_progress_is_reported(tiny_model):
    calls = []
    ve.enhance(
        tiny_model, _image((40, 40, 3), np.uint8), tile=16, progress=lambda done, total: calls.append((done, total))
    )
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1


def test_one_model_serves_several_threads(tiny_model):
    imgs = [_image((24, 24, 3), np.uint8, seed=s) for s in range(4)]
    expected = [ve.enhance(tiny_model, im, 2) for im in imgs]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda im: ve.enhance(tiny_model, im, 2), imgs))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 3}, "scale"),
        ({"scale": 0}, "scale"),
        ({"scale": True}, "scale"),
        ({"tile": -1}, "tile"),
        ({"tile": 2.5}, "tile"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"noise_level": -1}, "noise_level"),
        ({"noise_level": 256}, "noise_level"),
        ({"noise_level": float("nan")}, "noise_level"),
        ({"noise_level": "5"}, "noise_level"),
        ({"noise_level": True}, "noise_level"),
    ],
)
def test_bad_arguments(tiny_model, kwargs, message):
    img = _image((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        ve.enhance(tiny_model, img, **kwargs)
    with pytest.raises(ValueError, match=message):
        ve.variations(tiny_model, img, n=2, **kwargs)


@pytest.mark.parametrize("n", [0, -1, 65, 2.0, True])
def test_bad_sample_count(tiny_model, n):
    with pytest.raises(ValueError, match="n must be"):
        ve.variations(tiny_model, _image((8, 8, 3), np.uint8), n=n)


@pytest.mark.parametrize(
    ("img", "message"),
    [
        (np.zeros((8, 8, 3), np.int32), "dtype"),
        (np.zeros((8, 8, 3), np.float64), "dtype"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
        (np.zeros((1, 8, 8, 3), np.uint8), "shape"),
        (np.zeros(8, np.uint8), "shape"),
        (np.zeros((0, 8), np.uint8), "empty"),
        ([[0, 1], [1, 0]], "numpy array"),
        ("photo.jpg", "read_image"),
    ],
)
def test_bad_images(tiny_model, img, message):
    with pytest.raises(ve.ImageError, match=message):
        ve.enhance(tiny_model, img)
    with pytest.raises(ve.ImageError, match=message):
        ve.variations(tiny_model, img, n=2)


def test_model_must_be_a_model():
    with pytest.raises(ValueError, match="load_model"):
        ve.enhance(object(), _image((8, 8, 3), np.uint8))


def test_scale_must_be_one_the_model_was_built_for():
    model = ve.VAEEnhancer(
        ve.ModelConfig(widths=(4, 4, 4), blocks=(0, 0, 0), latent_channels=1, posterior_width=4, scales=(1,))
    )
    with pytest.raises(ValueError, match="scale"):
        ve.enhance(model.eval(), _image((8, 8, 3), np.uint8), 2)


def test_noise_level_is_the_strength_control(tiny_model):
    model = listening(tiny_model)
    img = _image((24, 40, 3), np.uint8)
    auto = ve.enhance(model, img)
    np.testing.assert_array_equal(auto, ve.enhance(model, img, noise_level=None))
    weak, strong = ve.enhance(model, img, noise_level=0), ve.enhance(model, img, noise_level=50)
    assert not np.array_equal(weak, strong)
    assert not np.array_equal(auto, weak) and not np.array_equal(auto, strong)
    samples, _ = ve.variations(model, img, n=2, temperature=0.0, noise_level=50)
    np.testing.assert_array_equal(samples[0], strong)
    # Tiled: the level is the photo's, not each tile's.
    np.testing.assert_allclose(ve.enhance(model, img, noise_level=50, tile=16), strong, atol=1)


def test_a_new_noise_level_input_changes_nothing(tiny_model):
    img = _image((16, 16, 3), np.uint8)
    np.testing.assert_array_equal(ve.enhance(tiny_model, img, noise_level=30), ve.enhance(tiny_model, img))


def test_noise_level_needs_a_model_with_that_input():
    model = ve.VAEEnhancer(replace(PRESETS["tiny"], noise_input=False, noise_estimator=False)).eval()
    img = _image((16, 16, 3), np.uint8)
    ve.enhance(model, img)  # automatic is always fine
    with pytest.raises(ValueError, match="no noise-level input"):
        ve.enhance(model, img, noise_level=10)


def test_automatic_level_is_measured_once_per_photo(tiny_model):
    model = listening(tiny_model)
    img = _image((40, 56, 3), np.uint8)
    level = ve.estimate_noise(model, img)
    assert isinstance(level, float) and 0 <= level <= 255
    auto = ve.enhance(model, img)
    np.testing.assert_allclose(auto, ve.enhance(model, img, noise_level=level), atol=1)
    # Tiles are told the photo's level, not their own: tiled stays within 1/255 of untiled.
    np.testing.assert_allclose(ve.enhance(model, img, tile=16), auto, atol=1)
    samples, _ = ve.variations(model, img, n=2, temperature=0.0)
    np.testing.assert_array_equal(samples[0], auto)


def test_upscaling_reads_the_noise_with_its_own_estimator():
    torch.manual_seed(0)
    model = listening(ve.VAEEnhancer(replace(PRESETS["tiny"], sr_estimators=True)).eval().requires_grad_(False))
    head = model.sr_estimators["2"].body[-1]  # every position reads log(255 * level + 0.5): make x2 read 40
    head.weight.zero_()
    head.bias.fill_(math.log(40.5))
    img = _image((24, 32, 3), np.uint8)
    assert ve.estimate_noise(model, img, scale=2) == pytest.approx(40.0, abs=1e-3)
    photo = ve.estimate_noise(model, img)  # scale 1: the denoising estimator, untouched
    assert photo == pytest.approx(
        255 * float(model.noise_estimator(torch.from_numpy(img / 255).permute(2, 0, 1)[None].float())), abs=1e-3
    )
    assert abs(photo - 40) > 1
    # enhance at x2 is told what the x2 estimator reads; at x4, what the x4 one reads.
    np.testing.assert_allclose(ve.enhance(model, img, 2), ve.enhance(model, img, 2, noise_level=40), atol=1)
    assert np.abs(ve.enhance(model, img, 2).astype(int) - ve.enhance(model, img, 2, noise_level=photo)).max() > 1
    x4 = ve.estimate_noise(model, img, scale=4)
    np.testing.assert_allclose(ve.enhance(model, img, 4), ve.enhance(model, img, 4, noise_level=x4), atol=1)
    with pytest.raises(ValueError, match="scale must be one of"):
        ve.estimate_noise(model, img, scale=3)


def test_estimate_reads_the_centre_of_a_large_photo(tiny_model):
    from vae_enhance.inference import ESTIMATE_SIDE

    big = _image((ESTIMATE_SIDE + 40, ESTIMATE_SIDE + 100, 3), np.uint8, seed=3)
    centre = big[20 : 20 + ESTIMATE_SIDE, 50 : 50 + ESTIMATE_SIDE]
    assert ve.estimate_noise(tiny_model, big) == pytest.approx(ve.estimate_noise(tiny_model, centre), abs=1e-6)


def test_estimate_noise_without_an_estimator_is_none():
    model = ve.VAEEnhancer(replace(PRESETS["tiny"], noise_estimator=False)).eval()
    assert ve.estimate_noise(model, _image((16, 16), np.uint16)) is None
    with pytest.raises(ve.ImageError):
        ve.estimate_noise(model, np.zeros((4, 4, 2), np.uint8))


def _turned(img: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(img[:, ::-1] if mirror else img, turns))


def _turned_back(out: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    back = np.rot90(out, -turns)
    return np.ascontiguousarray(back[:, ::-1] if mirror else back)


@pytest.mark.parametrize("scale", [1, 2])
def test_self_ensemble_is_the_mean_of_the_eight_turned_passes(tiny_model, scale):
    img = _image((16, 24, 3), np.float32)

    def network(x: np.ndarray) -> np.ndarray:  # one pass at temperature 0, unclipped
        with torch.no_grad():
            t = torch.from_numpy(x).permute(2, 0, 1)[None]
            prior = tiny_model.encode(t, scale, 10 / 255)
            return tiny_model.decode(prior, prior.dist.mean)[0].permute(1, 2, 0).numpy()

    passes = [_turned_back(network(_turned(img, t, m)), t, m) for m in (False, True) for t in range(4)]
    ensembled = ve.enhance(tiny_model, img, scale, noise_level=10, tile=0, self_ensemble=True)
    np.testing.assert_allclose(ensembled, np.clip(np.mean(passes, axis=0), 0, 1), atol=1e-5)
    assert np.abs(passes[1] - passes[0]).max() > 1e-3  # the network alone depends on how the photo is turned


def test_self_ensemble_does_not_depend_on_how_the_photo_is_turned(tiny_model):
    img = _image((24, 40, 3), np.float32)
    out = ve.enhance(tiny_model, img, 2, self_ensemble=True)
    for turns, mirror in [(1, False), (2, True), (3, True)]:
        seen = ve.enhance(tiny_model, _turned(img, turns, mirror), 2, self_ensemble=True)
        np.testing.assert_allclose(_turned_back(seen, turns, mirror), out, atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 56), (40, 56, 4)])
def test_self_ensemble_keeps_layout_alpha_and_tiles_without_seams(tiny_model, shape):
    img = _image(shape, np.uint8)
    out = ve.enhance(tiny_model, img, self_ensemble=True)
    assert out.shape == img.shape and out.dtype == np.uint8
    if len(shape) == 3:
        np.testing.assert_array_equal(out[..., 3], img[..., 3])
    tiled = ve.enhance(tiny_model, img, self_ensemble=True, tile=16)
    assert np.abs(tiled.astype(int) - out.astype(int)).max() <= 1


@pytest.mark.parametrize(("kwargs", "message"), [({"temperature": 0.5}, "temperature 0"), ({}, "True or False")])
def test_self_ensemble_bad_arguments(tiny_model, kwargs, message):
    flag = True if kwargs else "yes"
    with pytest.raises(ValueError, match=message):
        ve.enhance(tiny_model, _image((8, 8, 3), np.uint8), self_ensemble=flag, **kwargs)
