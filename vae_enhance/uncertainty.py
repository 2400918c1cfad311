"""How much the variations differ, and whether their spread marks where the restoration is wrong.

For super-resolution of clean photos (the SR benchmark's degradation): n samples at a temperature
against the temperature-0 output, scored on BT.601 Y as the SR protocol does.
"""

from __future__ import annotations

import numpy as np

from vae_enhance.baselines import bicubic
from vae_enhance.image_io import to_float
from vae_enhance.inference import enhance, variations
from vae_enhance.metrics import psnr_y, to_tensor
from vae_enhance.model import VAEEnhancer


def _y_psnr(out: np.ndarray, ref: np.ndarray, border: int) -> float:
    return psnr_y(to_tensor(to_float(out)), to_tensor(to_float(ref)), border=border).item()


def variation_stats(
    model: VAEEnhancer,
    images: list[np.ndarray],
    scale: int = 4,
    n: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    noise_level: float | None = None,
) -> dict:
    """Spread of n variations of each uint8 RGB `images` (sides multiples of `scale`), downscaled bicubically.

    Returns, over the images: mean_std_255 (per-pixel std across samples, 0-255 scale, averaged),
    max_drop_db (the worst sample's Y-PSNR below the temperature-0 output's), drops_db (that drop per
    image, so that one well-restored image can be told from a general trend), and
    std_error_correlation (Pearson correlation, per image then averaged, of the std map with the
    temperature-0 output's absolute error: how well the uncertainty map marks the errors).
    `noise_level` is passed to both (None: automatic).
    """
    stds, drops, correlations = [], [], []
    for hq8 in images:
        h, w = hq8.shape[:2]
        if h % scale or w % scale:
            raise ValueError(f"image sides must be multiples of {scale}, got {w}x{h}")
        lq8 = bicubic(hq8, (w // scale, h // scale))
        best = enhance(model, lq8, scale, noise_level=noise_level)
        samples, std = variations(
            model, lq8, n=n, scale=scale, temperature=temperature, seed=seed, noise_level=noise_level
        )
        reference = _y_psnr(best, hq8, scale)
        drops.append(reference - min(_y_psnr(s, hq8, scale) for s in samples))
        stds.append(float(std.mean()) * 255)
        error = np.abs(to_float(best) - to_float(hq8)).mean(axis=-1)
        b = scale  # the border the scores leave out
        a, e = std[b:-b, b:-b].ravel(), error[b:-b, b:-b].ravel()
        correlations.append(float(np.corrcoef(a, e)[0, 1]) if a.std() > 0 and e.std() > 0 else 0.0)
    return {
        "mean_std_255": float(np.mean(stds)),
        "max_drop_db": float(max(drops)),
        "drops_db": [float(d) for d in drops],
        "std_error_correlation": float(np.mean(correlations)),
    }


# Prior scales calibrate_prior_scale tries, smallest first.
PRIOR_SCALES = tuple(round(0.1 + 0.05 * i, 2) for i in range(19))  # 0.1 ... 1.0


def calibrate_prior_scale(
    model: VAEEnhancer,
    images: list[np.ndarray],
    target_std_255: float,
    candidates: tuple[float, ...] = PRIOR_SCALES,
    **stats_args,
) -> tuple[float, list[tuple[float, dict]]]:
    """The smallest prior scale among `candidates` at which variation_stats (x4, temperature 1) reaches a mean std
    of `target_std_255`, and the sweep up to it as (scale, stats) pairs.

    A trained prior may spread its samples further than the photos warrant: its worst sample then falls
    well below the temperature-0 output. Sampling at the smallest scale that keeps the wanted spread
    keeps every sample closest to the best estimate. Scales are absolute, whatever the model's own
    prior_scale. Raises ValueError when even the largest scale spreads less than the target.
    """
    sweep = []
    for prior_scale in sorted(candidates):
        stats = variation_stats(model, images, temperature=prior_scale / model.config.prior_scale, **stats_args)
        sweep.append((prior_scale, stats))
        if stats["mean_std_255"] >= target_std_255:
            return prior_scale, sweep
    raise ValueError(
        f"the variations spread {sweep[-1][1]['mean_std_255']:.2f}/255 at prior scale {sweep[-1][0]:g}, "
        f"less than the target {target_std_255:g}/255: this model's samples are narrower than wanted even there"
    )
