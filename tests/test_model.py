"""The network and its config: shapes, KL of the latent Gaussians, determinism and validation."""

import json
import math
from dataclasses import replace

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae_enhance.config import PRESETS, ModelConfig
from vae_enhance.hub import load_model, save_model
from vae_enhance.model import LOGVAR_RANGE, LUMA_WEIGHTS, DiagonalGaussian, VAEEnhancer


def _gaussian(gen, shape, spread=3.0):
    return DiagonalGaussian(torch.randn(shape, generator=gen) * spread, torch.randn(shape, generator=gen) * spread)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_kl_of_posterior_against_prior_is_finite_and_non_negative(tiny_model, scale):
    gen = torch.Generator().manual_seed(scale)
    lq = torch.rand((2, 3, 32 // scale, 48 // scale), generator=gen)
    hq = torch.rand((2, 3, 32, 48), generator=gen)
    with torch.no_grad():
        prior = tiny_model.encode(lq, scale)
        kl = tiny_model.posterior(prior, hq).kl(prior.dist)
    s = tiny_model.latent_stride
    assert kl.shape == (2, tiny_model.config.latent_channels, 32 // s, 48 // s)
    assert torch.isfinite(kl).all()
    assert kl.min() > -1e-5


def test_kl_matches_torch_and_is_zero_against_itself():
    gen = torch.Generator().manual_seed(0)
    p, q = _gaussian(gen, (3, 4, 5, 6)), _gaussian(gen, (3, 4, 5, 6))
    kl = p.kl(q)
    assert torch.isfinite(kl).all() and kl.min() > -1e-5
    expected = kl_divergence(Normal(p.mean, p.std), Normal(q.mean, q.std))
    torch.testing.assert_close(kl, expected, rtol=1e-4, atol=1e-4)
    assert p.kl(p).abs().max() < 1e-5


def test_logvar_is_softly_bounded_so_std_stays_finite_and_gradients_flow():
    low, high = LOGVAR_RANGE
    raw = torch.tensor([-1e4, -20.0, low, -1.0, 0.0, 1.0, high, 20.0, 1e4], requires_grad=True)
    g = DiagonalGaussian(torch.zeros(9), raw)
    assert g.logvar.min() >= low - 1e-4 and g.logvar.max() <= high + 1e-4
    torch.testing.assert_close(g.logvar[[0, 8]], torch.tensor([low, high]))
    torch.testing.assert_close(g.logvar[3:6], raw[3:6], atol=0.01, rtol=0)  # well inside: unchanged
    g.logvar[1:8].sum().backward()
    assert (raw.grad[1:8] > 0).all()  # a hard clamp gives no gradient at -20 and 20
    assert torch.isfinite(g.std).all() and (g.std > 0).all()
    assert torch.isfinite(g.kl(DiagonalGaussian(torch.ones(9), torch.zeros(9)))).all()


def test_sample_is_mean_plus_scaled_noise():
    gen = torch.Generator().manual_seed(1)
    g = _gaussian(gen, (2, 3), spread=1.0)
    eps = torch.randn((2, 3), generator=gen)
    torch.testing.assert_close(g.sample(eps, temperature=0.0), g.mean)
    torch.testing.assert_close(g.sample(eps, temperature=0.5), g.mean + 0.5 * g.std * eps)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(13, 29), (1, 1), (8, 8)])
def test_forward_shape_any_size(tiny_model, scale, size):
    lq = torch.rand((2, 3, *size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = tiny_model(lq, scale)
    assert out.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


def test_forward_temperature_zero_is_deterministic_and_eps_is_used(tiny_model):
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand((1, 3, 16, 24), generator=gen)
    with torch.no_grad():
        a, b = tiny_model(lq, 1), tiny_model(lq, 1)
        prior = tiny_model.encode(lq, 1)
        eps = torch.randn(prior.dist.mean.shape, generator=gen)
        sampled = tiny_model(lq, 1, temperature=1.0, eps=eps)
        expected = tiny_model.decode(prior, prior.dist.mean + prior.dist.std * eps)
    assert torch.equal(a, b)
    torch.testing.assert_close(sampled, expected)
    assert (sampled - a).abs().max() > 1e-4


def test_prior_scale_shrinks_every_sample_towards_the_mean(tiny_model):
    lq = torch.rand((1, 3, 16, 24), generator=torch.Generator().manual_seed(5))
    calibrated = VAEEnhancer(replace(tiny_model.config, prior_scale=0.4)).eval()
    calibrated.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        prior = tiny_model.encode(lq, 1)
        eps = torch.randn(prior.dist.mean.shape, generator=torch.Generator().manual_seed(6))
        scaled = calibrated(lq, 1, temperature=1.5, eps=eps)
        expected = tiny_model(lq, 1, temperature=0.6, eps=eps)
        best = calibrated(lq, 1)
    torch.testing.assert_close(scaled, expected)
    torch.testing.assert_close(best, tiny_model(lq, 1))  # temperature 0 does not depend on it
    assert (scaled - best).abs().max() > 1e-4


def test_a_config_without_prior_scale_samples_the_prior_as_trained():
    old = {k: v for k, v in PRESETS["tiny"].to_dict().items() if k != "prior_scale"}
    assert ModelConfig.from_dict(old).prior_scale == 1.0


def test_batch_items_are_independent(tiny_model):
    lq = torch.rand((3, 3, 16, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        together = tiny_model(lq, 2)
        alone = tiny_model(lq[1:2], 2)
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


def test_decode_repeats_prior_for_several_samples(tiny_model):
    lq = torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        prior = tiny_model.encode(lq, 1)
        z = torch.randn((3, *prior.dist.mean.shape[1:]), generator=torch.Generator().manual_seed(4))
        many = tiny_model.decode(prior, z)
        one = tiny_model.decode(prior, z[2:3])
    assert many.shape == (3, 3, 16, 16)
    torch.testing.assert_close(many[2:3], one, rtol=1e-5, atol=1e-5)


def test_check_scale():
    model = VAEEnhancer(
        ModelConfig(widths=(4, 4, 4), blocks=(0, 0, 0), latent_channels=1, posterior_width=4, scales=(1, 2))
    )
    assert model.check_scale(2) == 2
    for bad in (3, 4):
        with pytest.raises(ValueError, match="scale must be one of"):
            model.check_scale(bad)


def test_config_json_round_trip_gives_equal_hashable_config():
    cfg = PRESETS["tiny"]
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and hash(back) == hash(cfg)
    assert isinstance(back.widths, tuple)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 999}, "format_version 999"),
        ({"widths": (8, 8)}, "widths"),
        ({"widths": (8, 0, 8)}, "widths"),
        ({"blocks": (0, -1, 0)}, "blocks"),
        ({"latent_channels": 0}, "latent_channels"),
        ({"scales": (1, 3)}, "scales"),
        ({"scales": ()}, "scales"),
        ({"noise_estimator": False, "sr_estimators": True}, "sr_estimators needs noise_estimator"),
        ({"sr_estimators": 1}, "sr_estimators must be true or false"),
        ({"noise_estimator": False, "luma_estimator": True}, "luma_estimator needs noise_estimator"),
        ({"luma_estimator": 1}, "luma_estimator must be true or false"),
        ({"prior_scale": 0.0}, "prior_scale"),
        ({"prior_scale": -0.5}, "prior_scale"),
        ({"prior_scale": float("nan")}, "prior_scale"),
        ({"prior_scale": True}, "prior_scale"),
        ({"prior_scale": "0.5"}, "prior_scale"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**PRESETS["tiny"].to_dict(), **changes})


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "attention": True})


def test_model_accepts_config_dict():
    assert VAEEnhancer(PRESETS["tiny"].to_dict()).config == PRESETS["tiny"]


def _read_as(head: torch.nn.Conv2d, level: float) -> None:
    """Make an estimator's last layer read `level` (0-255) at every position."""
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, math.log(level + 0.5))


def test_luma_reader_sees_only_luma_and_the_estimator_reports_the_larger_reading(tmp_path):
    model = VAEEnhancer(replace(PRESETS["tiny"], sr_estimators=False, luma_estimator=True)).eval()
    estimator, luma = model.noise_estimator, model.noise_estimator.luma
    lq = 0.3 + 0.4 * torch.rand((2, 3, 40, 48), generator=torch.Generator().manual_seed(0))
    # Colour that leaves the luma as it is changes nothing the reader sees.
    r, g, _ = LUMA_WEIGHTS
    tint = torch.tensor([g, -r, 0.0]).view(1, 3, 1, 1) * 0.1 * torch.randn((2, 1, 40, 48))
    with torch.no_grad():
        torch.testing.assert_close(luma.log_levels(lq + tint), luma.log_levels(lq), atol=1e-5, rtol=0)
        grain = luma.log_levels(lq + 0.05 * torch.randn((2, 1, 40, 48)))
        assert not torch.allclose(grain, luma.log_levels(lq), atol=1e-3)
        _read_as(estimator.body[-1], 10.0)
        _read_as(luma.body[-1], 40.0)
        torch.testing.assert_close(255 * estimator(lq), torch.full((2,), 40.0))
        _read_as(luma.body[-1], 2.0)
        torch.testing.assert_close(255 * estimator(lq), torch.full((2,), 10.0))
        _read_as(estimator.body[-1], 20.0)  # above the most grain the reader was trained on (16): not asked
        _read_as(luma.body[-1], 40.0)
        torch.testing.assert_close(255 * estimator(lq), torch.full((2,), 20.0))
        colour = estimator.log_levels  # a batch with one photo each side of the ceiling: only one is asked
        estimator.log_levels = lambda x: torch.log(torch.tensor([[20.5], [10.5]]))
        torch.testing.assert_close(255 * estimator(lq), torch.tensor([20.0, 40.0]))
        estimator.log_levels = colour
        _read_as(estimator.body[-1], 10.0)
    save_model(model, tmp_path)  # the reader travels with the weights
    back = load_model(tmp_path)
    assert back.config.luma_estimator and back.noise_estimator.luma is not None
    with torch.no_grad():
        torch.testing.assert_close(back.noise_estimator(lq), estimator(lq))
    for dtype in (torch.bfloat16, torch.float16):  # load_model's opt-ins: torch.quantile takes neither
        half = load_model(tmp_path, device="cpu", dtype=dtype)
        with torch.no_grad():
            reading = half.noise_estimator(lq.to(dtype))
        assert reading.dtype == dtype
        torch.testing.assert_close(reading.float(), estimator(lq), atol=0.01, rtol=0.05)
