"""Degradations that turn clean batches (hq) into training inputs (lq), on whatever device hq is on.

Every function takes its randomness from a torch.Generator on hq's device and returns a new tensor;
inputs are never modified. Images are float (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

SIGMA_MAX = 55.0 / 255.0


def _uniform(shape, low: float, high: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def downscale(hq: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale by an integer factor; H and W must be multiples of `scale`.

    torch's antialiased bicubic uses the a = -0.5 kernel with PIL's support widening, i.e. the
    MATLAB-compatible downscale of the benchmark protocol (kornia's antialias is a Gaussian pre-blur,
    which would train on a different kernel than the one evaluated).
    """
    if scale == 1:
        return hq.clone()
    h, w = hq.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of scale {scale}")
    return F.interpolate(hq, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def gaussian_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image isotropic Gaussian blur, sigma (B,) in pixels; sigma 0 leaves an image as it is."""
    blurred = kornia.filters.gaussian_blur2d(img, (7, 7), torch.stack([sigma, sigma], dim=1).clamp_min(1e-3))
    keep = (sigma <= 0)[:, None, None, None]
    return torch.where(keep, img, blurred)


def add_noise(lq: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise, sigma (B,) on the [0, 1] scale; the result is not clipped."""
    noise = torch.randn(lq.shape, generator=generator, device=lq.device, dtype=lq.dtype)
    return lq + sigma[:, None, None, None] * noise


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Differentiable JPEG round trip (kornia), quality (B,) in [1, 100]; H, W multiples of 16."""
    return kornia.enhance.jpeg_codec_differentiable(img.clamp(0, 1), quality)


def sample_sigma(batch: int, generator: torch.Generator, like: torch.Tensor, zero_fraction: float) -> torch.Tensor:
    """Noise levels uniform in [0, SIGMA_MAX], with `zero_fraction` of them exactly 0 (clean input)."""
    sigma = _uniform((batch,), 0.0, SIGMA_MAX, generator, like)
    clean = torch.rand((batch,), generator=generator, device=like.device) < zero_fraction
    return torch.where(clean, torch.zeros_like(sigma), sigma)


def degrade(
    hq: torch.Tensor,
    scale: int,
    generator: torch.Generator,
    blur_max: float = 0.0,
    jpeg_fraction: float = 0.0,
) -> torch.Tensor:
    """The training degradation: [blur] -> bicubic downscale -> Gaussian noise -> [JPEG].

    Denoising batches (scale 1) are noisy with sigma uniform in [0, 55]/255 (5% clean); SR batches
    are clean half of the time, so plain bicubic SR is learned as well as SR of noisy photos.
    """
    batch = hq.shape[0]
    lq = hq
    if blur_max > 0:
        lq = gaussian_blur(lq, _uniform((batch,), 0.0, blur_max, generator, hq))
    lq = downscale(lq, scale)
    sigma = sample_sigma(batch, generator, hq, zero_fraction=0.05 if scale == 1 else 0.5)
    lq = add_noise(lq, sigma, generator)
    if jpeg_fraction > 0:
        quality = _uniform((batch,), 30.0, 95.0, generator, hq)
        use = (torch.rand((batch,), generator=generator, device=hq.device) < jpeg_fraction)[:, None, None, None]
        lq = torch.where(use, jpeg(lq, quality), lq)
    return lq
