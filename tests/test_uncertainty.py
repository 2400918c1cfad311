"""variation_stats: the variations check of the release (spread, worst sample, std-error correlation)."""

import pytest
from conftest import listening, photo

import vae_enhance as ve
from vae_enhance.baselines import bicubic
from vae_enhance.uncertainty import variation_stats


def test_temperature_zero_draws_the_same_picture(tiny_model, rng):
    stats = variation_stats(tiny_model, [photo(rng, 32, 48)], scale=4, n=3, temperature=0.0)
    assert stats["mean_std_255"] == 0.0
    assert stats["max_drop_db"] == pytest.approx(0.0, abs=1e-6)


def test_spread_and_worst_sample_match_the_variations(tiny_model, rng):
    hq8 = photo(rng, 32, 48)
    stats = variation_stats(tiny_model, [hq8], scale=4, n=4, noise_level=10.0)
    lq8 = bicubic(hq8, (12, 8))
    _, std = ve.variations(tiny_model, lq8, n=4, scale=4, noise_level=10.0)
    assert stats["mean_std_255"] == pytest.approx(float(std.mean()) * 255, rel=1e-6)
    assert stats["mean_std_255"] > 0.1  # a random tiny model's latent really varies the samples
    assert stats["max_drop_db"] > 0.0
    assert -1.0 <= stats["std_error_correlation"] <= 1.0


def test_the_noise_level_reaches_the_model(tiny_model, rng):
    model, images = listening(tiny_model), [photo(rng, 32, 48)]
    told_clean = variation_stats(model, images, scale=4, n=3, noise_level=0.0)
    told_noisy = variation_stats(model, images, scale=4, n=3, noise_level=50.0)
    assert told_clean["mean_std_255"] != pytest.approx(told_noisy["mean_std_255"], rel=1e-4)


def test_sides_must_divide_by_the_scale(tiny_model, rng):
    with pytest.raises(ValueError, match="multiples of 4"):
        variation_stats(tiny_model, [photo(rng, 30, 48)], scale=4)
