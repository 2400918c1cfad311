"""The public inference functions: enhance() and variations() over numpy photos of any layout.

Both are pure functions of a read-only model, so one loaded model serves many threads at once.
Gray is processed as RGB and averaged back; alpha bypasses the network (resized bicubically for SR).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vae_enhance.image_io import ImageError, check_image, from_float, to_float
from vae_enhance.model import MULTIPLE, VAEEnhancer
from vae_enhance.tiling import tiled

# Default tile is about this many output pixels a side: big enough that the overlap costs little,
# small enough that a tile's activations stay well under 1 GB for the release model.
TILE_OUTPUT = 1024
# Context around each tile, in output pixels; measured to keep tiled within 1/255 of untiled.
OVERLAP_OUTPUT = 64

Progress = Callable[[int, int], None]


def _check_args(model: VAEEnhancer, scale, tile, temperature, n: int = 1) -> None:
    if not isinstance(model, VAEEnhancer):
        raise ValueError(f"model must come from load_model(), got {type(model).__name__}")
    if isinstance(scale, bool) or scale not in model.config.scales:
        raise ValueError(f"scale must be one of {model.config.scales} (1 = denoise, 2/4 = upscale), got {scale!r}")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
        raise ValueError(f"tile must be a whole number of pixels >= 0 (0 = no tiling), got {tile!r}")
    if not isinstance(temperature, (int, float)) or not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise ValueError(f"n must be a whole number of samples from 1 to 64, got {n!r}")


def _split(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) float RGB and the float alpha (H, W) or None; float input stays unclipped."""
    flt = to_float(img)
    if flt.ndim == 2:
        return np.repeat(flt[..., None], 3, axis=2), None
    if flt.shape[2] == 4:
        return flt[..., :3], flt[..., 3]
    return flt, None


def _merge(rgb: np.ndarray, alpha: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """Back to the input's layout and dtype; rgb (..., H, W, 3) float, alpha (H, W) at output size."""
    if like.ndim == 2:
        out = rgb.mean(axis=-1)
    elif alpha is not None:
        out = np.concatenate([rgb, np.broadcast_to(alpha[..., None], (*rgb.shape[:-1], 1))], axis=-1)
    else:
        out = rgb
    return from_float(out, like.dtype)


def _resize_alpha(alpha: np.ndarray | None, scale: int) -> np.ndarray | None:
    if alpha is None or scale == 1:
        return alpha
    t = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].clamp(0, 1).numpy()


def _restore(
    model: VAEEnhancer,
    rgb: np.ndarray,
    scale: int,
    n: int,
    temperature: float,
    seed: int,
    tile: int | None,
    progress: Progress | None,
) -> torch.Tensor:
    """(n, 3, H*scale, W*scale) float on the CPU; n samples share one prior pass per tile."""
    param = next(model.parameters())
    device, dtype = param.device, param.dtype  # bf16 is an opt-in of load_model
    lq = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]  # (1, 3, H, W)
    h, w = lq.shape[-2:]
    eps = None
    if temperature > 0:
        # Noise for the whole latent grid, drawn once on the CPU: tiles slice it, so tiled samples
        # match untiled ones and a seed gives the same photo on any device.
        grid = (-(-h * scale // MULTIPLE), -(-w * scale // MULTIPLE))
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn((n, model.config.latent_channels, *grid), generator=gen)

    def run(piece: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        prior = model.encode(piece.to(device, dtype), scale)
        mean = prior.dist.mean
        if eps is None:
            z = mean.expand(n, -1, -1, -1)
        else:
            ly, lx = origin[0] * scale // MULTIPLE, origin[1] * scale // MULTIPLE
            noise = eps[:, :, ly : ly + mean.shape[-2], lx : lx + mean.shape[-1]].to(device, dtype)
            z = prior.dist.sample(noise, temperature)
        return model.decode(prior, z).float()

    if tile is None:
        tile = max(TILE_OUTPUT // scale, MULTIPLE)
    with torch.inference_mode():
        return tiled(run, lq, scale, tile, overlap=OVERLAP_OUTPUT // scale, align=MULTIPLE, progress=progress)


def enhance(
    model: VAEEnhancer,
    img: np.ndarray,
    scale: int = 1,
    *,
    temperature: float = 0.0,
    seed: int = 0,
    tile: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Denoise (scale 1) or super-resolve (2, 4) a photo; same layout and dtype, (H*scale, W*scale).

    temperature 0 (the default) is the model's best single estimate and deterministic; above 0 it
    draws one variation with `seed`. tile: tile size in input pixels (None = automatic, 0 = off).
    progress(done, total) is called after each tile.
    """
    img = check_image(img)
    _check_args(model, scale, tile, temperature)
    rgb, alpha = _split(img)
    out = _restore(model, rgb, scale, 1, float(temperature), seed, tile, progress)[0]
    return _merge(out.permute(1, 2, 0).numpy(), _resize_alpha(alpha, scale), img)


def variations(
    model: VAEEnhancer,
    img: np.ndarray,
    n: int = 8,
    scale: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    *,
    tile: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n restorations from the latent prior; reproducible for a given seed.

    Returns samples, (n, H', W', C) (or (n, H', W') for gray) in the input's dtype, and the per-pixel
    standard deviation across samples, float32 (H', W') on a [0, 1] scale, averaged over RGB.
    """
    img = check_image(img)
    _check_args(model, scale, tile, temperature, n)
    rgb, alpha = _split(img)
    out = _restore(model, rgb, scale, n, float(temperature), seed, tile, progress)  # (n, 3, H', W')
    std = out.clamp(0, 1).std(dim=0, unbiased=False).mean(dim=0).numpy().astype(np.float32)
    samples = _merge(out.permute(0, 2, 3, 1).numpy(), _resize_alpha(alpha, scale), img)
    return samples, std


__all__ = ["enhance", "variations", "ImageError"]
