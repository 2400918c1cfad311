"""The conditional VAE: a prior network p(z | lq), a posterior q(z | lq, hq) for training, and a decoder.

Shapes use H x W for the working resolution, i.e. the output size (lq upsampled by `scale`). All
convolutions run at H/2 or below: a pixel-unshuffle stem folds 2x2 pixels into channels, which is what
keeps CPU inference fast. There is no normalisation layer, so a tile's output depends only on its
neighbourhood and tiled inference matches untiled inference. The latent z lives at H/s x W/s with
s = config.latent_stride (4 or 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from vae_enhance.config import SCALES, ModelConfig

# Working-resolution multiple the network needs: three 2x reductions (stem, two downsamplings).
MULTIPLE = 8
# Soft bounds of a latent log-variance. A hard clamp has no gradient past its ends: the prior's
# log-variance sat at -12 and one batch cost a KL of 2.5e6 (docs/training-log.md). The soft floor
# keeps a gradient everywhere and a std of at least exp(-8 / 2) = 0.018.
LOGVAR_RANGE = (-8.0, 6.0)
# Noise levels reach the network divided by this (on the 0-1 scale: 25/255 -> 1).
LEVEL_UNIT = 25.0 / 255.0


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Close to x well inside (low, high), smoothly bounded by them, with a gradient everywhere."""
    x = low + F.softplus(x - low)
    return high - F.softplus(high - x)


class DiagonalGaussian:
    """A diagonal Gaussian over the latent grid, (B, C, H/s, W/s)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean = mean
        # Bound before exp so a wild activation cannot give inf/0 variances.
        self.logvar = soft_clamp(logvar, *LOGVAR_RANGE)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, eps: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """mu + temperature * sigma * eps; eps defaults to fresh noise of the mean's shape."""
        if eps is None:
            eps = torch.randn_like(self.mean)
        return self.mean + temperature * self.std * eps

    def kl(self, other: DiagonalGaussian) -> torch.Tensor:
        """KL(self || other) per element, (B, C, h, w), in nats; >= 0 up to rounding."""
        return 0.5 * (
            other.logvar - self.logvar + (self.logvar.exp() + (self.mean - other.mean) ** 2) / other.logvar.exp() - 1.0
        )


@dataclass
class Prior:
    """What the prior network computes once per photo; the decoder reuses it for every sample."""

    base: torch.Tensor  # (B, 3, H, W) lq upsampled to the output size, padded to MULTIPLE
    feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (B, c1, H/2, W/2), (B, c2, H/4, ..), (B, c3, H/8, ..)
    dist: DiagonalGaussian  # p(z | lq), (B, latent, H/s, W/s)
    size: tuple[int, int]  # output size before padding


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        # Scale the branch down so a deep stack starts close to the identity and trains stably.
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def _stack(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(count)))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    # 1x1 conv + pixel shuffle: a cheap, checkerboard-free 2x upsampling.
    return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 1), nn.PixelShuffle(2))


class NoiseLevelEmbed(nn.Module):
    """A per-photo noise level, or "unknown", as biases for the first and last level of the prior network.

    The level is a (B,) tensor on the 0-1 scale with NaN for "unknown" (blind): the network then judges
    the noise itself. The output layers start at zero, so a new embedding changes nothing at first.
    """

    def __init__(self, c1: int, c3: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, c1), nn.LeakyReLU(0.1), nn.Linear(c1, c1))
        self.to3 = nn.Linear(c1, c3)
        for layer in (self.mlp[2], self.to3):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        known = torch.isfinite(level)
        value = torch.where(known, level, torch.zeros_like(level)) / LEVEL_UNIT
        h = self.mlp(torch.stack([value, known.to(value.dtype)], dim=1))  # (B, c1)
        return h[:, :, None, None], self.to3(h)[:, :, None, None]


def _estimator_body(channels: int, w: int) -> nn.Sequential:
    """Pixel-unshuffled input (at 1/2) -> one log level per position at 1/8; about 40 pixels in view."""
    act = nn.LeakyReLU(0.1)
    return nn.Sequential(
        nn.Conv2d(channels, w, 3, padding=1), act,  # (B, w, h/2, w/2)
        nn.Conv2d(w, 2 * w, 2, stride=2), act, nn.Conv2d(2 * w, 2 * w, 3, padding=1), act,  # 1/4
        nn.Conv2d(2 * w, 2 * w, 2, stride=2), act, nn.Conv2d(2 * w, 2 * w, 3, padding=1), act,  # 1/8
        nn.Conv2d(2 * w, 1, 1),
    )  # fmt: skip


# BT.601 luma weights: grey grain is the same on R, G and B, so all of it is in the luma.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class LumaReader(nn.Module):
    """The RMS of grey grain in a photo, (B, 3, h, w) -> (B,) on the 0-1 scale, from its luma's fine detail.

    The denoising estimator reads colour noise and is nearly blind to grey grain, which a camera's
    default noise reduction leaves (docs/training-log.md). This reader sees only the luma less its 2 px
    Gaussian blur, magnified (HIGHPASS_GAIN), so grain is what stands out; each position at 1/8
    resolution reads a level, and the photo's reading is a low quantile of them (QUANTILE): positions
    on texture take it for grain, positions on the photo's smooth parts see the grain alone. Trained by
    `vae-enhance train --luma-reader` on grey grain (degrade.grey_grain), the rest of the model left as it is.
    """

    HIGHPASS_SIGMA = 2.0
    HIGHPASS_GAIN = 8.0
    QUANTILE = 0.2
    CEILING = 16.0 / 255.0  # degrade.GRAIN_RMS_MAX when it was trained

    def __init__(self, width: int = 32):
        super().__init__()
        self.body = _estimator_body(4, width)
        self.register_buffer("weights", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def log_levels(self, lq: torch.Tensor) -> torch.Tensor:
        """Each position's log(255 * level + 0.5), (B, N), as NoiseEstimator.log_levels."""
        import kornia  # lazily: a GPU machine may train the rest without it

        h, w = lq.shape[-2:]
        luma = (lq * self.weights.to(lq.dtype)).sum(dim=1, keepdim=True)
        luma = F.pad(luma, (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="replicate")
        side = 2 * math.ceil(3 * self.HIGHPASS_SIGMA) + 1
        sigma = (self.HIGHPASS_SIGMA, self.HIGHPASS_SIGMA)
        fine = luma - kornia.filters.gaussian_blur2d(luma, (side, side), sigma, border_type="replicate")
        return self.body(F.pixel_unshuffle(self.HIGHPASS_GAIN * fine, 2)).flatten(1)

    def pool(self, log_levels: torch.Tensor) -> torch.Tensor:
        """The photo's log level (B,) from its positions' (B, N): their QUANTILE."""
        # In float32: torch.quantile takes no bfloat16 (a model loaded with dtype=torch.bfloat16).
        return torch.quantile(log_levels.float(), self.QUANTILE, dim=1)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        log_level = self.pool(self.log_levels(lq))
        return ((log_level.exp() - 0.5) / 255.0).clamp_min(0.0).to(lq.dtype)


class NoiseEstimator(nn.Module):
    """A photo's noise level, (B, 3, h, w) -> (B,) std on the 0-1 scale: the level `degrade` reports.

    Every position at 1/8 resolution estimates the photo's level from what it sees (about 40 pixels
    around it), and the photo's estimate is the median of those: a position on texture may take
    detail for noise, the median of many does not. Each position is trained on the photo's level, so
    the estimate does not depend on the photo's size (a pooled, size-aware head learned the training
    crops' sizes instead). Trained with the rest or alone (`vae-enhance train --estimator-only`).
    """

    def __init__(self, width: int = 32, luma: bool = False):
        super().__init__()
        self.body = _estimator_body(12, width)
        # The larger of this reading and a grey-grain one (LumaReader): this body reads chroma noise.
        self.luma = LumaReader(width) if luma else None

    def log_levels(self, lq: torch.Tensor) -> torch.Tensor:
        """Each position's log(255 * level + 0.5), (B, N): the scale the estimator is trained on."""
        h, w = lq.shape[-2:]
        x = F.pad(lq - 0.5, (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="replicate")
        return self.body(F.pixel_unshuffle(x, 2)).flatten(1)

    def pool(self, log_levels: torch.Tensor) -> torch.Tensor:
        """The photo's log level (B,) from its positions' (B, N): their median."""
        return log_levels.median(dim=1).values

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        level = ((self.pool(self.log_levels(lq)).exp() - 0.5) / 255.0).clamp_min(0.0)
        if self.luma is None:
            return level
        # The reader is asked only where this reading is below the most grain it was trained on: above that
        # its reading means nothing, and strong noise (sigma 25 and up) is denoised without its cost.
        low = level < self.luma.CEILING
        if not low.any():
            return level
        luma = torch.zeros_like(level)
        luma[low] = self.luma(lq[low])
        return torch.maximum(level, luma)


class PriorNet(nn.Module):
    """p(z | lq): multi-scale features of the (upsampled) degraded photo and the latent prior."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3 = cfg.widths
        b1, b2, b3 = cfg.blocks
        self.stem = nn.Conv2d(3 * 4, c1, 3, padding=1)
        self.scale_embed = nn.Embedding(len(SCALES), c1)
        self.level_embed = NoiseLevelEmbed(c1, c3) if cfg.noise_input else None
        self.level1 = _stack(c1, b1)
        self.down2 = nn.Conv2d(c1, c2, 2, stride=2)
        self.level2 = _stack(c2, b2)
        self.down3 = nn.Conv2d(c2, c3, 2, stride=2)
        self.level3 = _stack(c3, b3)
        if cfg.latent_stride == 8:
            self.lift = None
            self.head = nn.Conv2d(c3, 2 * cfg.latent_channels, 3, padding=1)
        else:  # the 1/4 latent sees the 1/8 features too, for their wider view
            self.lift = _up(c3, c2)
            self.head = nn.Conv2d(c2, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, base: torch.Tensor, scale_index: torch.Tensor, level: torch.Tensor | None):
        x = self.stem(F.pixel_unshuffle(base - 0.5, 2))  # (B, c1, H/2, W/2)
        x = x + self.scale_embed(scale_index)[:, :, None, None]
        bias3 = 0.0
        if self.level_embed is not None:
            bias1, bias3 = self.level_embed(level)
            x = x + bias1
        f1 = self.level1(F.leaky_relu(x, 0.1))
        f2 = self.level2(F.leaky_relu(self.down2(f1), 0.1))  # (B, c2, H/4, W/4)
        f3 = self.level3(F.leaky_relu(self.down3(f2) + bias3, 0.1))  # (B, c3, H/8, W/8)
        head_in = f3 if self.lift is None else F.leaky_relu(f2 + self.lift(f3), 0.1)
        mean, logvar = self.head(head_in).chunk(2, dim=1)
        return (f1, f2, f3), DiagonalGaussian(mean, logvar)


class PosteriorNet(nn.Module):
    """q(z | lq, hq): sees the clean target too; only used in training."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.posterior_width
        layers = [
            nn.Conv2d(6 * 4, w, 3, padding=1),  # (B, w, H/2, W/2)
            nn.LeakyReLU(0.1),
            nn.Conv2d(w, 2 * w, 2, stride=2),  # (B, 2w, H/4, W/4)
            nn.LeakyReLU(0.1),
        ]
        if cfg.latent_stride == 8:
            layers += [nn.Conv2d(2 * w, 2 * w, 2, stride=2), nn.LeakyReLU(0.1)]  # (B, 2w, H/8, W/8)
        self.body = nn.Sequential(*layers)
        # The prior's features at the latent's resolution: the level-2 ones for a 1/4 latent.
        self.feature_level = 2 if cfg.latent_stride == 8 else 1
        c_feat = cfg.widths[self.feature_level]
        self.head = nn.Sequential(
            nn.Conv2d(2 * w + c_feat, 2 * w, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(2 * w, 2 * cfg.latent_channels, 3, padding=1),
        )

    def forward(self, base: torch.Tensor, hq: torch.Tensor, feats: tuple[torch.Tensor, ...]) -> DiagonalGaussian:
        x = F.pixel_unshuffle(torch.cat([base - 0.5, hq - base], dim=1), 2)
        features = feats[self.feature_level]
        mean, logvar = self.head(torch.cat([self.body(x), features], dim=1)).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)


class Decoder(nn.Module):
    """z plus the prior's features -> a residual over the upsampled input.

    z enters at every level (upsampled, through 1x1 convs), not only at 1/8: with a single entry
    point deep in the decoder it learns to ignore z, and the latent collapses.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3 = cfg.widths
        b1, b2, b3 = cfg.blocks
        zc = cfg.latent_channels
        self.stride = cfg.latent_stride
        # At 1/8 a 1/4 latent enters folded: 2x2 positions as 4x the channels.
        z8 = zc if self.stride == 8 else 4 * zc
        self.z_in = nn.Conv2d(z8 + c3, c3, 3, padding=1)
        self.z_to2 = nn.Conv2d(zc, c2, 1)
        self.z_to1 = nn.Conv2d(zc, c1, 1)
        self.level3 = _stack(c3, b3)
        self.up2 = _up(c3, c2)
        self.level2 = _stack(c2, max(b2, 1))
        self.up1 = _up(c2, c1)
        self.level1 = _stack(c1, max(b1, 1))
        self.out = nn.Conv2d(c1, 3 * 4, 3, padding=1)

    def forward(self, z: torch.Tensor, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        f1, f2, f3 = feats
        z8 = z if self.stride == 8 else F.pixel_unshuffle(z, 2)
        x = self.level3(F.leaky_relu(self.z_in(torch.cat([z8, f3], dim=1)), 0.1))
        z4 = z if self.stride == 4 else F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.level2(F.leaky_relu(self.up2(x) + f2 + self.z_to2(z4), 0.1))
        z1 = self.z_to1(F.interpolate(z, scale_factor=self.stride // 2, mode="bilinear", align_corners=False))
        x = self.level1(F.leaky_relu(self.up1(x) + f1 + z1, 0.1))
        return F.pixel_shuffle(self.out(x), 2)  # (B, 3, H, W)


class VAEEnhancer(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vae-enhance",
    tags=["image-restoration", "denoising", "super-resolution", "vae"],
    pipeline_tag="image-to-image",
    license="mit",
):
    """Conditional VAE for denoising (scale 1) and super-resolution (scale 2, 4).

    Inputs are float RGB in [0, 1] (noisy inputs may leave that range), (B, 3, h, w); outputs are
    (B, 3, h * scale, w * scale). `encode` runs once per photo; `decode` runs once per latent sample.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if isinstance(config, dict):  # the Hub mixin may hand back the JSON dict
            config = ModelConfig.from_dict(config)
        self.config = config
        self.prior_net = PriorNet(config)
        self.posterior_net = PosteriorNet(config)
        self.decoder = Decoder(config)
        self.noise_estimator = NoiseEstimator(luma=config.luma_estimator) if config.noise_estimator else None
        # Keyed by str(scale); the denoising estimator above keeps its name, so older weights load as they are.
        self.sr_estimators = (
            nn.ModuleDict({str(s): NoiseEstimator() for s in config.scales if s > 1}) if config.sr_estimators else None
        )

    def estimator(self, scale: int) -> NoiseEstimator | None:
        """The noise estimator that reads inputs of this scale; None for a model without one."""
        if self.sr_estimators is not None and str(scale) in self.sr_estimators:
            return self.sr_estimators[str(scale)]
        return self.noise_estimator

    def estimators(self, scales: tuple[int, ...] | None = None) -> list[NoiseEstimator]:
        """The distinct estimators that read the given scales (default: all of the model's)."""
        found = [self.estimator(s) for s in (self.config.scales if scales is None else scales)]
        return list({id(e): e for e in found if e is not None}.values())  # in order, each once

    def inference_parameters(self) -> list[nn.Parameter]:
        """The parameters that run at inference: everything but the training-only posterior network."""
        estimators = [p for e in self.estimators() for p in e.parameters()]
        return [*self.prior_net.parameters(), *self.decoder.parameters(), *estimators]

    def check_scale(self, scale: int) -> int:
        if scale not in self.config.scales:
            raise ValueError(f"scale must be one of {self.config.scales} for this model, got {scale!r}")
        return int(scale)

    @property
    def latent_stride(self) -> int:
        """Output pixels per latent position, along each side."""
        return self.config.latent_stride

    def encode(self, lq: torch.Tensor, scale: int, noise_level: float | torch.Tensor | None = None) -> Prior:
        """Upsample lq to the output size, pad it to a multiple of 8 and run the prior network.

        noise_level: the noise std of lq on the 0-1 scale, a number or a (B,) tensor (NaN = unknown),
        for a model with `noise_input`; None: measured by the noise estimator when the model has one
        (on lq as given: a tile would be measured alone), else judged by the network itself (blind).
        """
        scale = self.check_scale(scale)
        h, w = lq.shape[-2] * scale, lq.shape[-1] * scale
        base = lq if scale == 1 else F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False)
        pad_h, pad_w = -h % MULTIPLE, -w % MULTIPLE
        if pad_h or pad_w:
            # Reflect needs the pad smaller than the side; replicate covers tiny images.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            base = F.pad(base, (0, pad_w, 0, pad_h), mode=mode)
        index = torch.full((lq.shape[0],), SCALES.index(scale), device=lq.device, dtype=torch.long)
        feats, dist = self.prior_net(base, index, self._levels(noise_level, lq, scale))
        return Prior(base=base, feats=feats, dist=dist, size=(h, w))

    def _levels(self, noise_level: float | torch.Tensor | None, lq: torch.Tensor, scale: int) -> torch.Tensor | None:
        """The noise level as a (B,) tensor in lq's dtype, NaN where unknown; None for a model without the input."""
        if not self.config.noise_input:
            if noise_level is not None:
                raise ValueError("this model has no noise-level input: leave noise_level unset (automatic)")
            return None
        if noise_level is None:
            estimator = self.estimator(scale)
            noise_level = math.nan if estimator is None else estimator(lq)
        level = torch.as_tensor(noise_level, dtype=lq.dtype, device=lq.device)
        return level.expand(lq.shape[0]) if level.ndim == 0 else level

    def posterior(self, prior: Prior, hq: torch.Tensor) -> DiagonalGaussian:
        """q(z | lq, hq) for training; hq is (B, 3, H, W) with H, W multiples of 8."""
        return self.posterior_net(prior.base, hq, prior.feats)

    def decode(self, prior: Prior, z: torch.Tensor) -> torch.Tensor:
        """Restore from latent z, (N * B, latent, H/s, W/s); the prior's batch is repeated N times."""
        repeats = z.shape[0] // prior.base.shape[0]
        feats, base = prior.feats, prior.base
        if repeats > 1:
            feats = tuple(f.repeat(repeats, 1, 1, 1) for f in feats)
            base = base.repeat(repeats, 1, 1, 1)
        out = base + self.decoder(z, feats)
        h, w = prior.size
        return out[..., :h, :w]

    def forward(
        self,
        lq: torch.Tensor,
        scale: int = 1,
        temperature: float = 0.0,
        eps: torch.Tensor | None = None,
        noise_level: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Deterministic restoration by default (z = prior mean); temperature > 0 draws with eps."""
        prior = self.encode(lq, scale, noise_level)
        if temperature and eps is None:
            eps = torch.randn_like(prior.dist.mean)
        return self.decode(prior, self.draw(prior, temperature, eps))

    def draw(self, prior: Prior, temperature: float, eps: torch.Tensor | None) -> torch.Tensor:
        """The latent to decode: the prior mean at temperature 0, else a sample at temperature x prior_scale."""
        if not temperature:
            return prior.dist.mean
        return prior.dist.sample(eps, temperature * self.config.prior_scale)
