"""variation_stats: the variations check of the release (spread, worst sample, std-error correlation)."""

from dataclasses import replace

import pytest
from conftest import listening, photo

import vae_enhance as ve
from vae_enhance.baselines import bicubic
from vae_enhance.uncertainty import calibrate_prior_scale, variation_stats


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


def test_one_drop_per_image_and_the_worst_is_their_maximum(tiny_model, rng):
    images = [photo(rng, 32, 48), photo(rng, 16, 16), photo(rng, 24, 32)]
    stats = variation_stats(tiny_model, images, scale=4, n=3, noise_level=10.0)
    assert len(stats["drops_db"]) == 3
    assert stats["max_drop_db"] == max(stats["drops_db"])
    alone = variation_stats(tiny_model, images[1:2], scale=4, n=3, noise_level=10.0)
    assert stats["drops_db"][1] == pytest.approx(alone["max_drop_db"], abs=1e-6)


def test_the_calibrated_prior_scale_is_what_temperature_one_draws(tiny_model, rng):
    calibrated = ve.VAEEnhancer(replace(tiny_model.config, prior_scale=0.4)).eval()
    calibrated.load_state_dict(tiny_model.state_dict())
    images = [photo(rng, 32, 48)]
    at_one = variation_stats(calibrated, images, scale=4, n=3, noise_level=10.0)
    reduced = variation_stats(tiny_model, images, scale=4, n=3, temperature=0.4, noise_level=10.0)
    full = variation_stats(tiny_model, images, scale=4, n=3, noise_level=10.0)
    assert at_one["mean_std_255"] == pytest.approx(reduced["mean_std_255"], rel=1e-5)
    assert at_one["mean_std_255"] < full["mean_std_255"]


def test_the_noise_level_reaches_the_model(tiny_model, rng):
    model, images = listening(tiny_model), [photo(rng, 32, 48)]
    told_clean = variation_stats(model, images, scale=4, n=3, noise_level=0.0)
    told_noisy = variation_stats(model, images, scale=4, n=3, noise_level=50.0)
    assert told_clean["mean_std_255"] != pytest.approx(told_noisy["mean_std_255"], rel=1e-4)


def test_sides_must_divide_by_the_scale(tiny_model, rng):
    with pytest.raises(ValueError, match="multiples of 4"):
        variation_stats(tiny_model, [photo(rng, 30, 48)], scale=4)


def test_calibration_picks_the_smallest_scale_that_reaches_the_spread(tiny_model, rng):
    images = [photo(rng, 32, 48)]
    args = {"scale": 4, "n": 3, "noise_level": 10.0}
    full = variation_stats(tiny_model, images, **args)["mean_std_255"]
    chosen, sweep = calibrate_prior_scale(tiny_model, images, 0.5 * full, candidates=(1.0, 0.2, 0.6, 0.8), **args)
    assert [s for s, _ in sweep] == sorted(s for s, _ in sweep) and sweep[-1][0] == chosen
    assert sweep[-1][1]["mean_std_255"] >= 0.5 * full
    assert all(stats["mean_std_255"] < 0.5 * full for _, stats in sweep[:-1])
    assert chosen < 1.0  # half the spread needs less than the full prior


def test_calibration_refuses_a_prior_too_narrow(tiny_model, rng):
    images = [photo(rng, 32, 48)]
    full = variation_stats(tiny_model, images, scale=4, n=3, noise_level=10.0)["mean_std_255"]
    with pytest.raises(ValueError, match="narrower than wanted"):
        calibrate_prior_scale(tiny_model, images, 2 * full, candidates=(0.5, 1.0), scale=4, n=3, noise_level=10.0)
