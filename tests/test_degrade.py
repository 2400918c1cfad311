"""Training degradations: seeded reproducibility, no input mutation, PIL-matching bicubic, noise levels,
and the real-photo noise (camera pipeline, correlated, 8-bit, JPEG)."""

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from vae_enhance.degrade import (
    SIGMA_MAX,
    Degradation,
    add_noise,
    camera_noise,
    camera_noise_reduction,
    correlated_noise,
    damp_chroma,
    degrade,
    downscale,
    gaussian_blur,
    grey_grain,
    jpeg,
    sample_sigma,
    spare_edges,
    unbias,
    zoom_in,
)

REAL = Degradation(camera_fraction=0.4, correlated_fraction=0.3, jpeg_fraction=0.5, blur_max=1.0)
GREY = Degradation(camera_fraction=0.5, correlated_fraction=0.5, luma_fraction=0.5)


def _batch(seed=0, shape=(3, 3, 64, 64)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# Every random degradation as a function of (hq, generator).
RANDOM_OPS = {
    "degrade_x1": lambda x, g: degrade(x, 1, g)[0],
    "degrade_x1_real": lambda x, g: degrade(x, 1, g, REAL)[0],
    "degrade_x2_real": lambda x, g: degrade(x, 2, g, REAL)[0],
    "degrade_x1_grey": lambda x, g: degrade(x, 1, g, GREY)[0],
    "degrade_x1_grey_white": lambda x, g: degrade(x, 1, g, Degradation(grey_fraction=1.0))[0],
    "degrade_x1_zero_mean": lambda x, g: degrade(x, 1, g, Degradation(camera_fraction=1.0, zero_mean=True))[0],
    "degrade_x1_edges": lambda x, g: degrade(x, 1, g, Degradation(camera_fraction=1.0, edge_fraction=1.0))[0],
    "spare_edges": lambda x, g: spare_edges(0.02 * torch.randn(x.shape, generator=g), x, g),
    "degrade_x4": lambda x, g: degrade(x, 4, g)[0],
    "add_noise": lambda x, g: add_noise(x, torch.full((x.shape[0],), 0.1), g),
    "camera_noise": lambda x, g: camera_noise(x, g),
    "correlated_noise": lambda x, g: correlated_noise(x, torch.full((x.shape[0],), 0.1), g),
    "grey_grain": lambda x, g: grey_grain(x, g)[0],
    "zoom_in": lambda x, g: zoom_in(x, g, fraction=1.0),
}


@pytest.mark.parametrize("op", RANDOM_OPS.values(), ids=RANDOM_OPS.keys())
def test_random_ops_reproducible_per_seed_and_differ_across_seeds(op):
    hq = _batch()
    a, b, c = op(hq, _gen(1)), op(hq, _gen(1)), op(hq, _gen(2))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


ALL_OPS = {
    **RANDOM_OPS,
    "downscale": lambda x, g: downscale(x, 2),
    "downscale_x1": lambda x, g: downscale(x, 1),
    "blur": lambda x, g: gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0])),
    "jpeg": lambda x, g: jpeg(x, torch.tensor([30.0, 60.0, 90.0])),
    "degrade_x2_blur": lambda x, g: degrade(x, 2, g, Degradation(blur_max=2.0))[0],
}


@pytest.mark.parametrize("op", ALL_OPS.values(), ids=ALL_OPS.keys())
def test_inputs_are_not_mutated(op):
    hq = _batch()
    before = hq.clone()
    out = op(hq, _gen(0))
    assert torch.equal(hq, before)
    assert out.data_ptr() != hq.data_ptr()


@pytest.mark.parametrize("mix", [Degradation(), REAL], ids=["gaussian", "real"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_degrade_shape_and_level(scale, mix):
    hq = _batch(shape=(6, 3, 64, 64))
    lq, level = degrade(hq, scale, _gen(0), mix)
    assert lq.shape == (6, 3, 64 // scale, 64 // scale) and level.shape == (6,)
    assert (level >= 0).all() and torch.isfinite(lq).all()
    if mix.blur_max == 0:  # the level is the RMS of what was added after the downscale
        expected = (lq - downscale(hq, scale)).square().mean(dim=(1, 2, 3)).sqrt()
        torch.testing.assert_close(level, expected)


def test_white_gaussian_level_is_its_sigma():
    hq = torch.full((400, 3, 32, 32), 0.5)
    lq, level = degrade(hq, 1, _gen(0), Degradation(clean_fraction=0.0))
    sigma = (lq - hq).flatten(1).std(dim=1)
    torch.testing.assert_close(level, sigma, atol=0.01, rtol=0.02)
    assert level.max() <= SIGMA_MAX * 1.1 and level.min() < 0.1 * SIGMA_MAX  # covers the range


def test_sr_noise_respects_clean_fraction_and_ceiling():
    hq = _batch(shape=(200, 3, 32, 32))
    mix = Degradation(sr_clean_fraction=0.7, sr_sigma_max=10 / 255)
    _, level = degrade(hq, 2, _gen(0), mix)
    assert 0.6 < (level == 0).float().mean() < 0.8
    assert level.max() <= 11 / 255


def test_camera_noise_depends_on_the_signal_and_is_correlated():
    """Real sensor noise grows with the signal in raw, and demosaicing correlates neighbours and channels."""
    gen = _gen(0)
    dark, bright = torch.full((64, 3, 32, 32), 0.05), torch.full((64, 3, 32, 32), 0.6)
    state = gen.get_state()
    n_dark = camera_noise(dark, gen)
    gen.set_state(state)
    n_bright = camera_noise(bright, gen)
    # Same cameras: in sRGB the tone curve lifts the shadows' noise, but it is not the same level.
    assert not torch.allclose(n_dark.std(), n_bright.std(), rtol=0.1)
    x = n_bright
    horizontal = (x[..., :, 1:] * x[..., :, :-1]).mean() / x.var()
    across = (x[:, 0] * x[:, 1]).mean() / (x[:, 0].std() * x[:, 1].std())
    assert horizontal > 0.2  # white noise: about 0
    assert across.abs() > 0.1


def test_camera_noise_reduction_leaves_grain_correlated_across_channels_and_pixels():
    """Chroma is damped harder than luma, as in-camera noise reduction does: what is left is mostly luma."""
    white = torch.randn((16, 3, 64, 64), generator=_gen(0))
    out = camera_noise_reduction(white, _gen(1))
    centred = out - out.mean(dim=(2, 3), keepdim=True)
    across = (centred[:, 0] * centred[:, 1]).mean() / (centred[:, 0].std() * centred[:, 1].std())
    horizontal = (centred[..., 1:] * centred[..., :-1]).mean() / centred.var()
    assert across > 0.5  # white noise: about 0
    assert horizontal > 0.3
    assert out.std() < white.std()


def test_camera_noise_takes_crops_smaller_than_its_blur_kernels():
    """Tiny configs train on 8 px inputs; the noise reduction's widest blur spans more than that."""
    noise = camera_noise(_batch(shape=(16, 3, 8, 8)), _gen(0))
    assert noise.shape == (16, 3, 8, 8) and torch.isfinite(noise).all()


def test_camera_noise_needs_even_sides():
    with pytest.raises(ValueError, match="even"):
        camera_noise(_batch(shape=(1, 3, 31, 32)), _gen(0))


def test_correlated_noise_has_the_requested_std_and_is_correlated():
    noise = correlated_noise(torch.zeros(4, 3, 64, 64), torch.tensor([0.02, 0.05, 0.1, 0.2]), _gen(0))
    torch.testing.assert_close(noise.flatten(1).square().mean(1).sqrt(), torch.tensor([0.02, 0.05, 0.1, 0.2]))
    assert ((noise[..., 1:, :] * noise[..., :-1, :]).mean() / noise.var()) > 0.3


def _chroma_ratio(noise):
    """The noise's chroma energy over its luma energy (BT.601 Cb, Cr against Y)."""
    ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    e = torch.einsum("ij,bjhw->bihw", ycc, noise).square().mean(dim=(2, 3))
    return e[:, 1:].sum(1) / e[:, 0]


def test_damp_chroma_keeps_luma_and_scales_chroma():
    white = torch.randn((2, 3, 16, 16), generator=_gen(0))
    grey = damp_chroma(white, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(grey[1], white[1])
    torch.testing.assert_close(grey[0, 0], grey[0, 1])  # no chroma: R = G = B = Y
    luma = torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(torch.einsum("c,chw->hw", luma, grey[0]), torch.einsum("c,chw->hw", luma, white[0]))


@pytest.mark.parametrize("kind", ["camera", "correlated"])
def test_luma_heavy_noise_is_nearly_grey_where_asked(kind):
    """Default JPEG settings leave grey grain: the same draw keeps at most 20 % of its chroma (4 % of the
    energy) where asked, and is left as it is elsewhere."""
    hq = torch.full((8, 3, 32, 32), 0.4)
    luma = torch.tensor([True, False] * 4)

    def draw(luma_mask):
        if kind == "camera":
            return camera_noise(hq, _gen(3), luma=luma_mask)
        return correlated_noise(hq, torch.full((8,), 0.05), _gen(3), luma=luma_mask)

    grey, plain = _chroma_ratio(draw(luma)), _chroma_ratio(draw(None))
    assert (grey[luma] <= 0.04 * plain[luma] * 1.01).all()
    torch.testing.assert_close(grey[~luma], plain[~luma])


def test_grey_white_noise_keeps_its_level_and_little_chroma():
    hq = torch.full((16, 3, 32, 32), 0.5)
    lq, level = degrade(hq, 1, _gen(4), Degradation(clean_fraction=0.0, grey_fraction=0.5))
    plain, _ = degrade(hq, 1, _gen(4), Degradation(clean_fraction=0.0))
    ratio, plain_ratio = _chroma_ratio(lq - hq), _chroma_ratio(plain - hq)
    grey = ratio < 0.1 * plain_ratio.median()
    assert 2 <= grey.sum() <= 14  # about half, the rest coloured as before
    # Every input keeps the level it reports: the RMS of what was added.
    torch.testing.assert_close(level, (lq - hq).square().mean(dim=(1, 2, 3)).sqrt())


def test_luma_fraction_is_validated():
    with pytest.raises(ValueError, match="luma_fraction"):
        Degradation(luma_fraction=1.5)


def test_unbias_removes_the_mean_at_each_brightness_and_keeps_the_grain():
    clean = _batch(shape=(2, 3, 64, 64))
    grain = 0.02 * torch.randn(clean.shape, generator=_gen(1))
    biased = grain + 0.02 * (clean - 0.5)  # a bias that depends on the pixel's brightness
    out = unbias(biased, clean)
    dark, bright = clean < 0.2, clean > 0.8
    assert abs(biased[bright].mean()) > 0.003 and abs(biased[dark].mean()) > 0.003
    assert abs(out[bright].mean()) < 0.001 and abs(out[dark].mean()) < 0.001
    assert abs(out.std() / grain.std() - 1) < 0.05


def test_zero_mean_camera_noise_keeps_the_photo_tone():
    """The tone curve makes camera noise darken a mid-grey photo; zero_mean leaves the grain and not the shift."""
    hq = 0.2 + 0.6 * torch.nn.functional.avg_pool2d(_batch(shape=(8, 3, 64, 64)), 9, 1, 4, count_include_pad=False)
    plain = camera_noise(hq, _gen(0))
    even = camera_noise(hq, _gen(0), zero_mean=True)
    assert plain.mean() * 255 < -0.2 and abs(even.mean() * 255) < 0.05
    assert abs(even.std() / plain.std() - 1) < 0.05


def test_spare_edges_leaves_flat_areas_quieter_than_texture():
    """Edge-aware noise reduction: the flat half keeps a floor of 0.3-1 of its noise, the textured half nearly all."""
    hq = torch.full((8, 3, 64, 64), 0.5)
    hq[..., 32:] = _batch(shape=(8, 3, 64, 32))  # right half: dense texture
    noise = 0.02 * torch.randn(hq.shape, generator=_gen(0))
    out = spare_edges(noise, hq, _gen(1))
    inner = (slice(None), slice(None), slice(4, -4))  # away from the border between the halves
    flat = out[..., :28][inner].flatten(1).std(dim=1) / noise[..., :28][inner].flatten(1).std(dim=1)
    texture = out[..., 36:][inner].flatten(1).std(dim=1) / noise[..., 36:][inner].flatten(1).std(dim=1)
    assert (flat > 0.29).all() and (flat < 1.0).all() and (texture > 0.95).all()
    assert flat.mean() < 0.8 and flat.max() - flat.min() > 0.2  # the floor differs per image
    mixed = camera_noise(hq, _gen(2), edge_fraction=0.0)
    spared = camera_noise(hq, _gen(2), edge_fraction=1.0)
    assert spared[..., :28].std() < mixed[..., :28].std()  # the camera's NR, now edge-aware, quiets flat areas


def test_grey_grain_is_the_same_on_every_channel_and_its_level_is_its_rms():
    hq = 0.25 + 0.5 * _batch(shape=(8, 3, 64, 64))  # away from 0 and 1: no clipping
    lq, level = grey_grain(hq, _gen(0), clean_fraction=0.25, jpeg_fraction=0.0)
    assert torch.equal(lq, torch.round(lq * 255) / 255)  # 8-bit, as a saved photo
    torch.testing.assert_close(level, (lq - hq).square().mean(dim=(1, 2, 3)).sqrt())
    noise = lq - hq
    for i in torch.nonzero(level > 3 / 255).flatten():
        r, g, b = noise[i].flatten(1)  # one grain on R, G and B, up to the rounding of each
        assert torch.corrcoef(torch.stack([r, g, b])).min() > 0.9
    clean = grey_grain(hq, _gen(0), clean_fraction=1.0, jpeg_fraction=0.0)[1]
    assert (clean < 1 / 255).all()  # only the rounding to 8 bits


def test_grey_grain_from_the_camera_is_grey_and_follows_the_brightness():
    # Left half dark, right half bright: the camera's grain differs between them, the white grain does not.
    hq = torch.cat([torch.full((8, 3, 128, 64), 0.15), torch.full((8, 3, 128, 64), 0.75)], dim=-1)
    ratios = {}
    for fraction in (0.0, 1.0):
        lq, level = grey_grain(hq, _gen(0), clean_fraction=0.0, jpeg_fraction=0.0, camera_fraction=fraction)
        noise = lq - hq
        torch.testing.assert_close(level, noise.square().mean(dim=(1, 2, 3)).sqrt())
        assert torch.equal(noise[:, 0], noise[:, 1]) and torch.equal(noise[:, 0], noise[:, 2])  # grey
        dark, bright = noise[..., :64].std(dim=(1, 2, 3)), noise[..., 64:].std(dim=(1, 2, 3))
        ratios[fraction] = (dark / bright).log().abs()
    assert ratios[0.0].max() < 0.12  # 0.05 at most, measured: sampling error of the std
    assert ratios[1.0].min() > 0.15  # 0.26-0.54, measured: the shadows are noisier


def test_grey_grain_spared_on_edges_is_quieter_on_flat_parts_at_the_same_level():
    hq = torch.full((8, 3, 64, 64), 0.5)
    hq[..., 32:] = 0.25 + 0.5 * _batch(shape=(8, 3, 64, 32))  # right half: dense texture
    plain_lq, plain = grey_grain(hq, _gen(0), clean_fraction=0.0, jpeg_fraction=0.0)
    spared_lq, spared = grey_grain(hq, _gen(0), clean_fraction=0.0, jpeg_fraction=0.0, edge_fraction=1.0)
    torch.testing.assert_close(spared, plain, atol=0.3 / 255, rtol=0.02)  # brought back to the drawn RMS
    flat, texture = (
        (spared_lq - hq)[..., 4:-4, 4:28].std(dim=(1, 2, 3)),
        (spared_lq - hq)[..., 4:-4, 36:60].std(dim=(1, 2, 3)),
    )
    plain_flat = (plain_lq - hq)[..., 4:-4, 4:28].std(dim=(1, 2, 3))
    # 0.77 and 0.86 on average (measured), each photo by its own floor: a reading of the flat parts alone
    # falls short of the level
    assert (flat / texture).mean() < 0.85 and (flat / plain_flat).mean() < 0.92
    assert (flat / texture).max() - (flat / texture).min() > 0.3


def test_zoom_in_enlarges_the_centre_of_the_chosen_crops():
    hq = _batch(shape=(4, 3, 64, 64))
    assert torch.equal(zoom_in(hq, _gen(0), fraction=0.0), hq)
    zoomed = zoom_in(hq, _gen(0), fraction=1.0)
    assert zoomed.shape == hq.shape and zoomed.min() >= 0 and zoomed.max() <= 1

    def fine(x):  # the energy of neighbouring-pixel differences
        return (x[..., 1:] - x[..., :-1]).square().mean(dim=(1, 2, 3))

    assert (fine(zoomed) < fine(hq)).all()


def test_real_mix_gives_8_bit_inputs_where_noise_is_camera_like():
    hq = _batch(shape=(32, 3, 32, 32))
    lq, _ = degrade(hq, 1, _gen(0), Degradation(camera_fraction=0.5, correlated_fraction=0.5))
    assert torch.equal(lq, torch.round(lq * 255) / 255) and lq.min() >= 0 and lq.max() <= 1


def test_jpeg_takes_any_size():
    img = torch.from_numpy(photo(np.random.default_rng(0), 24, 40).transpose(2, 0, 1)).float()[None] / 255
    img = img.repeat(2, 1, 1, 1)
    out = jpeg(img, torch.tensor([50.0, 95.0]))
    assert out.shape == img.shape
    errors = (out - img).abs().flatten(1).mean(dim=1)
    assert 0 < errors[1] < errors[0] < 0.1  # lossy, and less so at a higher quality


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"camera_fraction": 1.5}, "camera_fraction"),
        ({"camera_fraction": 0.6, "correlated_fraction": 0.6}, "at most 1"),
        ({"sr_sigma_max": 1.0}, "sr_sigma_max"),
        ({"blur_max": -1.0}, "blur_max"),
        ({"edge_fraction": -0.1}, "edge_fraction"),
    ],
)
def test_degradation_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        Degradation(**changes)


@pytest.mark.parametrize("scale", [2, 4])
def test_downscale_matches_pil_bicubic(scale):
    img = photo(np.random.default_rng(scale), 48, 64)
    ref = np.asarray(Image.fromarray(img).resize((64 // scale, 48 // scale), Image.Resampling.BICUBIC)) / 255.0
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].float() / 255.0
    out = downscale(t, scale)[0].permute(1, 2, 0).numpy()
    assert out.shape == ref.shape
    diff = np.abs(np.clip(out, 0, 1) - ref)
    assert diff.mean() < 1 / 255
    assert diff.max() < 2 / 255


def test_downscale_needs_multiple_of_scale():
    with pytest.raises(ValueError, match="multiple"):
        downscale(_batch(shape=(1, 3, 30, 32)), 4)


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_add_noise_has_requested_std(sigma):
    clean = torch.full((2, 3, 96, 96), 0.5)
    noisy = add_noise(clean, torch.tensor([sigma, 2 * sigma]), _gen(0))
    for i, expected in enumerate((sigma, 2 * sigma)):
        residual = noisy[i] - clean[i]
        assert abs(residual.std().item() - expected) < 0.03 * expected
        assert abs(residual.mean().item()) < 0.03 * expected


def test_add_noise_is_not_clipped():
    noisy = add_noise(torch.zeros(1, 3, 32, 32), torch.tensor([0.2]), _gen(0))
    assert noisy.min() < 0


def test_sigma_zero_gives_input_back():
    hq = _batch()
    assert torch.equal(add_noise(hq, torch.zeros(3), _gen(0)), hq)
    assert torch.equal(gaussian_blur(hq, torch.zeros(3)), hq)


def test_blur_smooths_only_where_sigma_is_positive():
    hq = _batch()
    out = gaussian_blur(hq, torch.tensor([0.0, 2.0, 0.0]))
    assert torch.equal(out[0], hq[0]) and torch.equal(out[2], hq[2])
    assert out[1].std() < 0.6 * hq[1].std()


def test_sample_sigma_range_and_zero_fraction():
    like = torch.zeros(1)
    sigma = sample_sigma(2000, _gen(0), like, zero_fraction=0.25)
    assert sigma.min() >= 0 and sigma.max() <= SIGMA_MAX
    assert 0.2 < (sigma == 0).float().mean().item() < 0.3
    assert (sample_sigma(50, _gen(0), like, zero_fraction=1.0) == 0).all()
