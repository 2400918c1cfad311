"""Training degradations: seeded reproducibility, no input mutation, PIL-matching bicubic, noise levels."""

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from vae_enhance.degrade import SIGMA_MAX, add_noise, degrade, downscale, gaussian_blur, jpeg, sample_sigma


def _batch(seed=0, shape=(3, 3, 64, 64)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# Every random degradation as a function of (hq, generator).
RANDOM_OPS = {
    "degrade_x1": lambda x, g: degrade(x, 1, g),
    "degrade_x2_blur_jpeg": lambda x, g: degrade(x, 2, g, blur_max=2.0, jpeg_fraction=0.5),
    "degrade_x4": lambda x, g: degrade(x, 4, g),
    "add_noise": lambda x, g: add_noise(x, torch.full((x.shape[0],), 0.1), g),
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
}


@pytest.mark.parametrize("op", ALL_OPS.values(), ids=ALL_OPS.keys())
def test_inputs_are_not_mutated(op):
    hq = _batch()
    before = hq.clone()
    out = op(hq, _gen(0))
    assert torch.equal(hq, before)
    assert out.data_ptr() != hq.data_ptr()


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_degrade_shape(scale):
    assert degrade(_batch(), scale, _gen(0)).shape == (3, 3, 64 // scale, 64 // scale)


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
