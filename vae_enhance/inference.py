"""The public inference functions: enhance() and variations() over numpy photos of any layout.

Both are pure functions of a read-only model, so one loaded model serves many threads at once.
Gray is processed as RGB and averaged back; alpha bypasses the network (resized bicubically for SR).
Memory: the photo is read tile by tile and each restored tile goes straight into the result in its
final dtype, so the peak is one tile's activations plus the result, never a full-size float copy.
The result's size is checked against the pixel limit (VAE_ENHANCE_MAX_PIXELS) before any work.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vae_enhance.image_io import ImageError, check_image, check_pixels, from_float, to_float
from vae_enhance.model import MULTIPLE, VAEEnhancer
from vae_enhance.tiling import tiled

# Default tile is about this many output pixels a side: big enough that the overlap costs little,
# small enough that a tile's activations stay well under 1 GB for the release model.
TILE_OUTPUT = 1024
# Context around each tile, in output pixels; measured to keep tiled within 1/255 of untiled. Longer
# training widens how far the network looks: v0.8 needed 96 (64 left 3/255 when denoising).
OVERLAP_OUTPUT = 96
# The noise estimator reads at most this centre crop: a photo's noise is much the same across it.
ESTIMATE_SIDE = 512

Progress = Callable[[int, int], None]

# The eight flips and quarter turns of a square (quarter turns, then whether mirrored first): a self-ensemble
# restores each and averages them turned back, which takes out the network's orientation-dependent errors.
DIHEDRAL = tuple((turns, flip) for flip in (False, True) for turns in range(4))


def _check_noise_level(model: VAEEnhancer, noise_level) -> float | None:
    """noise_level on the 0-255 scale -> the model's 0-1 scale; None stays None (automatic)."""
    if noise_level is None:
        return None
    if isinstance(noise_level, bool) or not isinstance(noise_level, numbers.Real) or not 0 <= noise_level <= 255:
        raise ValueError(f"noise_level must be a number from 0 to 255 (or None for automatic), got {noise_level!r}")
    if not model.config.noise_input:
        raise ValueError("this model has no noise-level input: leave noise_level unset (automatic)")
    return float(noise_level) / 255.0


def _measure(model: VAEEnhancer, img: np.ndarray, scale: int) -> float:
    """The level the estimator for `scale` reads in the photo (0-1 scale), from its centre crop of ESTIMATE_SIDE."""
    h, w = img.shape[:2]
    y0, x0 = max((h - ESTIMATE_SIDE) // 2, 0), max((w - ESTIMATE_SIDE) // 2, 0)
    crop = _tile_to_float(_network_input(img[y0 : y0 + ESTIMATE_SIDE, x0 : x0 + ESTIMATE_SIDE]))
    param = next(model.parameters())
    with torch.inference_mode():
        return float(model.estimator(scale)(crop.to(param.device, param.dtype)))


def estimate_noise(model: VAEEnhancer, img: np.ndarray, scale: int = 1) -> float | None:
    """The photo's noise level as the model measures it for this task (scale 1 = denoise, 2/4 =
    upscale; a model may read a photo to upscale with an estimator of its own), on the 0-255 scale
    (what noise_level takes); None for a model without a noise estimator. enhance() and variations()
    use this level when noise_level is left out."""
    img = check_image(img)
    _check_args(model, scale, None, 0.0)
    return None if model.estimator(scale) is None else 255.0 * _measure(model, img, scale)


def _level(model: VAEEnhancer, img: np.ndarray, noise_level, scale: int) -> float | None:
    """The level every tile is told (0-1 scale): the caller's, else the photo's measured one, else None (blind)."""
    level = _check_noise_level(model, noise_level)
    if level is None and model.estimator(scale) is not None:
        level = _measure(model, img, scale)
    return level


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


def _network_input(img: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) view of the photo's colour channels in its own dtype; tiles are made float one by one.

    A view, not a full-size float copy: a 12 MP photo would otherwise cost 144 MB per copy. Gray is
    expanded to three identical channels.
    """
    if not img.flags.writeable:  # torch cannot view a read-only array (e.g. np.asarray of a Pillow image)
        img = img.copy()
    t = torch.from_numpy(img)
    if img.ndim == 2:
        return t[None, None].expand(1, 3, -1, -1)
    return t[..., :3].permute(2, 0, 1)[None]


def _tile_to_float(piece: torch.Tensor) -> torch.Tensor:
    """A tile of the photo as float32 on [0, 1], through image_io.to_float (numpy's arithmetic).

    Always a fresh C-order array: strides left over from a view (or ambiguous ones, for 1-pixel
    sides) can send the convolutions down another path with last-bit differences.
    """
    return torch.from_numpy(np.array(to_float(piece.numpy()), np.float32, order="C"))


def _alpha(img: np.ndarray, scale: int) -> np.ndarray | None:
    """The alpha channel at the output size, already in the photo's dtype; None without alpha."""
    if img.ndim == 2 or img.shape[2] != 4:
        return None
    if scale == 1:
        return np.clip(img[..., 3], 0, 1) if img.dtype == np.float32 else img[..., 3]
    alpha = torch.from_numpy(np.ascontiguousarray(to_float(img[..., 3])))[None, None]
    alpha = F.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].clamp_(0, 1)
    if img.dtype == np.float32:
        return alpha.numpy()
    # from_float's arithmetic, in place: one full-size float buffer instead of four
    top, dtype = (255.0, torch.uint8) if img.dtype == np.uint8 else (65535.0, torch.uint16)
    return alpha.mul_(top).round_().to(dtype).numpy()


def _restore(
    model: VAEEnhancer,
    img: np.ndarray,
    scale: int,
    n: int,
    temperature: float,
    seed: int,
    tile: int | None,
    progress: Progress | None,
    with_std: bool,
    level: float | None = None,
    self_ensemble: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """n restorations (n, H', W'[, C]) in the photo's layout and dtype, and their spread (H', W') or None.

    Each tile is converted to the final dtype as soon as it is decoded and written into the
    preallocated result, so no full-size float copy of the output ever exists. The n samples of a tile
    share one prior pass. self_ensemble: each tile is the mean of its eight flips and quarter turns,
    each restored and turned back (temperature 0 only).
    """
    param = next(model.parameters())
    device, dtype = param.device, param.dtype  # bf16 is an opt-in of load_model
    lq = _network_input(img)  # (1, 3, H, W), the photo's dtype
    h, w = lq.shape[-2:]
    out_h, out_w = h * scale, w * scale
    out = np.empty((n, out_h, out_w, *img.shape[2:]), img.dtype)
    alpha = _alpha(img, scale)
    if alpha is not None:
        out[..., 3] = alpha
    std = np.empty((out_h, out_w), np.float32) if with_std else None
    eps = None
    if temperature > 0:
        # Noise for the whole latent grid, drawn once on the CPU: tiles slice it, so tiled samples
        # match untiled ones and a seed gives the same photo on any device.
        # The grid covers the output padded to MULTIPLE, as the network pads it.
        stride = model.latent_stride
        per = MULTIPLE // stride
        grid = (-(-out_h // MULTIPLE) * per, -(-out_w // MULTIPLE) * per)
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn((n, model.config.latent_channels, *grid), generator=gen)

    def restore(x: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        prior = model.encode(x, scale, level)
        mean = prior.dist.mean
        if eps is None:
            z = mean.expand(n, -1, -1, -1)
        else:
            ly, lx = origin[0] * scale // stride, origin[1] * scale // stride
            noise = eps[:, :, ly : ly + mean.shape[-2], lx : lx + mean.shape[-1]].to(device, dtype)
            z = model.draw(prior, temperature, noise)
        return model.decode(prior, z).float()

    def run(piece: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        x = _tile_to_float(piece).to(device, dtype)
        if not self_ensemble:
            return restore(x, origin)
        # One pass at a time, summed: the peak stays one pass's activations, as without it.
        total = None
        for turns, flip in DIHEDRAL:
            seen = torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))
            back = torch.rot90(restore(seen, origin), -turns, (-2, -1))
            back = back.flip(-1) if flip else back
            total = back if total is None else total.add_(back)
        return total.div_(len(DIHEDRAL))

    def paste(centre: torch.Tensor, box: tuple[int, int, int, int]) -> None:
        y0, y1, x0, x1 = box  # centre: (n, 3, y1 - y0, x1 - x0) float, unclipped
        rgb = centre.permute(0, 2, 3, 1).numpy()
        if img.ndim == 2:
            out[:, y0:y1, x0:x1] = from_float(rgb.mean(axis=-1), img.dtype)
        else:
            out[:, y0:y1, x0:x1, :3] = from_float(rgb, img.dtype)
        if std is not None:
            std[y0:y1, x0:x1] = centre.clamp(0, 1).std(dim=0, unbiased=False).mean(dim=0).numpy()

    if tile is None:
        tile = max(TILE_OUTPUT // scale, MULTIPLE)
    with torch.inference_mode():
        tiled(run, lq, scale, tile, overlap=OVERLAP_OUTPUT // scale, align=MULTIPLE, progress=progress, paste=paste)
    return out, std


def enhance(
    model: VAEEnhancer,
    img: np.ndarray,
    scale: int = 1,
    *,
    temperature: float = 0.0,
    seed: int = 0,
    noise_level: float | None = None,
    tile: int | None = None,
    progress: Progress | None = None,
    self_ensemble: bool = False,
) -> np.ndarray:
    """Denoise (scale 1) or super-resolve (2, 4) a photo; same layout and dtype, (H*scale, W*scale).

    temperature 0 (the default) is the model's best single estimate and deterministic; above 0 it
    draws one variation with `seed`. noise_level: the strength control, the photo's noise std on the
    0-255 scale (0 = treat it as clean, higher = remove more); None (the default) measures it with the
    model's noise estimator (see estimate_noise), or, for a model without one, lets the network judge
    it. tile: tile size in input pixels (None = automatic, 0 = off). progress(done, total) is called
    after each tile. self_ensemble: the mean of the photo restored in its eight flips and quarter turns,
    each turned back: a little better (docs/benchmarks.md) and eight times slower; temperature 0 only.
    """
    img = check_image(img)
    _check_args(model, scale, tile, temperature)
    if not isinstance(self_ensemble, bool):
        raise ValueError(f"self_ensemble must be True or False, got {self_ensemble!r}")
    if self_ensemble and temperature != 0:
        raise ValueError(
            "self_ensemble averages eight passes of the best estimate, which would blur a variation: "
            "use temperature 0, or variations() for samples"
        )
    size = (img.shape[0] * scale, img.shape[1] * scale)
    check_pixels(*size, "the result", advice="use a smaller scale or a smaller photo")
    level = _level(model, img, noise_level, scale)
    out, _ = _restore(
        model, img, scale, 1, float(temperature), seed, tile, progress, with_std=False, level=level,
        self_ensemble=self_ensemble,
    )  # fmt: skip
    return out[0]


def variations(
    model: VAEEnhancer,
    img: np.ndarray,
    n: int = 8,
    scale: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    *,
    noise_level: float | None = None,
    tile: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n restorations from the latent prior; reproducible for a given seed.

    Returns samples, (n, H', W', C) (or (n, H', W') for gray) in the input's dtype, and the per-pixel
    standard deviation across samples, float32 (H', W') on a [0, 1] scale, averaged over RGB.
    noise_level: as in enhance().
    """
    img = check_image(img)
    _check_args(model, scale, tile, temperature, n)
    size = (img.shape[0] * scale, img.shape[1] * scale)
    check_pixels(*size, "the result", count=n, advice="use fewer samples, a smaller scale or a smaller photo")
    level = _level(model, img, noise_level, scale)
    return _restore(model, img, scale, n, float(temperature), seed, tile, progress, with_std=True, level=level)


__all__ = ["enhance", "estimate_noise", "variations", "ImageError"]
