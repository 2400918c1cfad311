"""Degradations that turn clean batches (hq) into training inputs (lq), on whatever device hq is on.

Every function takes its randomness from a torch.Generator on hq's device and returns a new tensor;
inputs are never modified. Images are float (B, 3, H, W) in [0, 1]; noise levels are on that scale.

Three kinds of noise, mixed per image (`Degradation` sets the mix):
- white Gaussian, unclipped: the benchmarks' noise;
- a simulated camera: the photo is taken back to linear raw through a random white balance and colour
  matrix, shot and read noise are added to the Bayer mosaic, and the mosaic is demosaiced and processed
  forward again, with the camera's own noise reduction, which damps and blurs chroma noise more than
  luma noise. The noise this leaves in sRGB depends on the signal, and is correlated across
  neighbouring pixels (demosaicing, noise reduction) and across channels (colour matrix, chroma
  noise reduction), as in real photos;
- Gaussian noise blurred and mixed across channels: the residue of in-camera noise reduction.
Either of the last two can be made luma-heavy (`luma_fraction`): a camera's default JPEG settings remove
nearly all chroma noise and leave grey, blotchy grain, which looks like texture to a model that has only
seen coloured noise. Camera and correlated noise end in an 8-bit quantisation and, for some images, a JPEG round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIGMA_MAX = 55.0 / 255.0


@dataclass(frozen=True)
class Degradation:
    """The mix of training degradations; every fraction is a per-image probability.

    clean_fraction:      denoising inputs left without noise (JPEG may still apply).
    sr_clean_fraction:   super-resolution inputs without noise.
    sr_sigma_max:        the noise ceiling of super-resolution inputs (0-1 scale).
    camera_fraction:     noisy inputs with simulated camera noise ...
    correlated_fraction: ... and with blurred, colour-mixed Gaussian noise; the rest is white Gaussian.
    jpeg_fraction:       inputs other than white Gaussian that go through JPEG at quality 30-95.
    luma_fraction:       camera and correlated noise left with 0-20 % of its chroma (grey grain).
    grey_fraction:       white Gaussian noise left with 0-20 % of its chroma: fine grey grain, which a
                         model that has seen only coloured white noise under-removes when told its RMS.
    zero_mean:           camera noise made zero-mean at every brightness (see `unbias`).
    edge_fraction:       camera noise whose noise reduction is edge-aware (see `spare_edges`): flat areas
                         are left quieter than texture.
    blur_max:            Gaussian blur sigma, in pixels, before downscaling (uniform from 0; 0 = none).
    """

    clean_fraction: float = 0.05
    sr_clean_fraction: float = 0.5
    sr_sigma_max: float = SIGMA_MAX
    camera_fraction: float = 0.0
    correlated_fraction: float = 0.0
    jpeg_fraction: float = 0.0
    luma_fraction: float = 0.0
    grey_fraction: float = 0.0
    zero_mean: bool = False
    edge_fraction: float = 0.0
    blur_max: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "clean_fraction",
            "sr_clean_fraction",
            "camera_fraction",
            "correlated_fraction",
            "jpeg_fraction",
            "luma_fraction",
            "grey_fraction",
            "edge_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.camera_fraction + self.correlated_fraction > 1.0:
            raise ValueError("camera_fraction + correlated_fraction must be at most 1")
        if not 0.0 <= self.sr_sigma_max <= SIGMA_MAX:
            raise ValueError(f"sr_sigma_max must be in [0, {SIGMA_MAX:.3f}], got {self.sr_sigma_max}")
        if self.blur_max < 0:
            raise ValueError(f"blur_max must be >= 0, got {self.blur_max}")


def _uniform(shape, low: float, high: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def _chance(batch: int, p: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand((batch,), generator=generator, device=like.device) < p


def _per_image(x: torch.Tensor) -> torch.Tensor:
    return x[:, None, None, None]


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
    import kornia  # lazily: a GPU machine may run the rest without it

    blurred = kornia.filters.gaussian_blur2d(img, (7, 7), torch.stack([sigma, sigma], dim=1).clamp_min(1e-3))
    return torch.where(_per_image(sigma <= 0), img, blurred)


def add_noise(lq: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise, sigma (B,) on the [0, 1] scale; the result is not clipped."""
    noise = torch.randn(lq.shape, generator=generator, device=lq.device, dtype=lq.dtype)
    return lq + _per_image(sigma) * noise


def correlated_noise(
    like: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator, luma: torch.Tensor | None = None
) -> torch.Tensor:
    """Gaussian noise blurred by 0.4-2 px and mixed across channels, with std `sigma` (B,) per image;
    where `luma` (B,) is true, nearly grey (see `damp_chroma`)."""
    batch = like.shape[0]
    white = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    blurred = _blur(white, _uniform((batch,), 0.4, 2.0, generator, like))
    mix = torch.eye(3, device=like.device, dtype=like.dtype) + _uniform((batch, 3, 3), -0.4, 0.4, generator, like)
    noise = torch.einsum("bij,bjhw->bihw", mix, blurred)
    if luma is not None:
        noise = _damp_chroma_where(noise, luma, generator)
    rms = noise.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
    return noise * _per_image(sigma) / rms


# BT.601 RGB -> (Y, Cb, Cr) without offsets: for noise, which is a difference of images.
_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of every channel, sigma (B,) in pixels (at least 0.3; the kernel spans 3 sigma,
    cut to the image's size: reflection padding needs less than a side)."""
    import kornia

    sigma = sigma.clamp_min(0.3)
    side = min(2 * math.ceil(3 * float(sigma.max())) + 1, 2 * min(x.shape[-2:]) - 1)
    return kornia.filters.gaussian_blur2d(x, (side, side), torch.stack([sigma, sigma], dim=1))


def damp_chroma(noise: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """sRGB noise (B, 3, H, W) with its chroma (Cb, Cr) scaled by `keep` (B,) and its luma as it was."""
    ycc = _YCC.to(noise)
    y, cbcr = torch.einsum("ij,bjhw->bihw", ycc, noise).split([1, 2], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(ycc), torch.cat([y, cbcr * _per_image(keep)], dim=1))


# The chroma that luma-heavy noise keeps: what is left after a camera's default chroma noise reduction.
LUMA_CHROMA_KEEP = (0.0, 0.2)


def _damp_chroma_where(noise: torch.Tensor, luma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    keep = _uniform((noise.shape[0],), *LUMA_CHROMA_KEEP, generator, noise)
    return torch.where(_per_image(luma), damp_chroma(noise, keep), noise)


def camera_noise_reduction(noise: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What a camera's noise reduction leaves of sRGB noise (B, 3, H, W): chroma damped to 10-100 % and
    blurred by 0.5-3 px, luma blurred by 0.3-1.6 px, each drawn per image (cameras and their settings
    differ widely). Chroma is smoothed harder because the eye forgives luma grain more than colour
    blotches; the residue is correlated across channels and neighbouring pixels."""
    batch = noise.shape[0]
    ycc = _YCC.to(noise)
    y, cbcr = torch.einsum("ij,bjhw->bihw", ycc, noise).split([1, 2], dim=1)
    y = _blur(y, _uniform((batch,), 0.3, 1.6, generator, noise))
    gain = _uniform((batch,), 0.1, 1.0, generator, noise)
    cbcr = _blur(cbcr, _uniform((batch,), 0.5, 3.0, generator, noise)) * _per_image(gain)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(ycc), torch.cat([y, cbcr], dim=1))


# What an edge-aware noise reduction leaves on flat areas (per image) and the texture, in multiples of the
# noise's RMS, at which it keeps half of the rest. Cameras smooth flat areas hard and spare edges and
# texture, where smoothing would show; their grain is then weaker on a sky than on foliage.
EDGE_FLOOR = (0.3, 1.0)
EDGE_KNEE = 2.0


def spare_edges(noise: torch.Tensor, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """noise (B, 3, H, W) damped where `clean` is flat: each pixel keeps floor + (1 - floor) t^2 / (t^2 + k^2)
    of it, t the local std of clean's luma (1.5 px Gaussian window), k EDGE_KNEE times the noise's RMS, the
    floor drawn per image from EDGE_FLOOR. A reading of flat areas alone then falls short of the photo's
    level, as it does on real camera photos."""
    batch = noise.shape[0]
    luma = torch.einsum("j,bjhw->bhw", _YCC[0].to(clean), clean)[:, None]
    window = torch.full((batch,), 1.5, device=clean.device, dtype=clean.dtype)
    texture = (_blur(luma.square(), window) - _blur(luma, window).square()).clamp_min(0)
    knee = EDGE_KNEE**2 * noise.square().mean(dim=(1, 2, 3), keepdim=True)  # k^2
    floor = _per_image(_uniform((batch,), *EDGE_FLOOR, generator, noise))
    return noise * (floor + (1 - floor) * texture / (texture + knee + 1e-12))


def _random_ccm(batch: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) camera-to-sRGB colour matrices: negative off-diagonals, rows summing to 1 (white stays white)."""
    off = _uniform((batch, 3, 3), -0.4, -0.05, generator, like) * (1 - torch.eye(3, device=like.device))
    return off + torch.diag_embed(1 - off.sum(dim=2))


# Brightness bins for `unbias`, and the pixel count at which a bin's mean is trusted by half.
UNBIAS_BINS = 32
UNBIAS_PRIOR = 16.0


def unbias(noise: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """noise (B, 3, H, W) less its mean at each brightness of `clean`, per image and channel.

    A camera's tone curve and clipping make its noise non-zero-mean: darker in the mid-tones
    (the curve is concave), lighter in the shadows (negatives are clipped). A model trained on
    biased noise learns to shift tone with the level it is told, and the reference of a
    real-noise benchmark (CC15's, the mean of many shots) carries the bias anyway: what a
    denoiser should remove is the zero-mean grain. Bins with few pixels are shrunk towards 0.
    """
    b, c = noise.shape[:2]
    index = (clean.clamp(0, 1) * (UNBIAS_BINS - 1)).round().long()
    index = index + UNBIAS_BINS * torch.arange(b * c, device=noise.device).view(b, c, 1, 1)
    flat = index.flatten()
    sums = torch.zeros(b * c * UNBIAS_BINS, device=noise.device, dtype=noise.dtype).index_add_(0, flat, noise.flatten())
    counts = torch.bincount(flat, minlength=b * c * UNBIAS_BINS).to(noise.dtype)
    bias = sums / (counts + UNBIAS_PRIOR)
    return noise - bias[index]


def camera_noise(
    clean: torch.Tensor,
    generator: torch.Generator,
    strength: float = 1.0,
    luma: torch.Tensor | None = None,
    zero_mean: bool = False,
    edge_fraction: float = 0.0,
) -> torch.Tensor:
    """The noise a simulated camera leaves on the sRGB photo `clean` (B, 3, H, W), H and W even.

    Unprocessing after Brooks et al. (2019): shot noise variance log-uniform in [1e-4, 1.2e-2] (times
    strength^2), read noise tied to it as log(read) = 2.18 log(shot) + 1.2 + N(0, 0.26), both on the
    linear raw scale; bilinear demosaicing (kornia). Returns process(raw + noise) - process(raw): the
    photo's own content is not altered, only its noise is made. Three images in four then go through
    the camera's noise reduction (`camera_noise_reduction`); those where `luma` (B,) is true always do,
    and keep only 0-20 % of their chroma after it. `zero_mean`: the noise less its bias (`unbias`).
    `edge_fraction` of the images with noise reduction have it edge-aware (`spare_edges`).
    """
    import kornia
    from kornia.color import CFA

    batch = clean.shape[0]
    if clean.shape[-1] % 2 or clean.shape[-2] % 2:
        raise ValueError(f"camera noise needs even sides for the Bayer mosaic, got {tuple(clean.shape[-2:])}")
    ccm = _random_ccm(batch, generator, clean)
    gains = torch.stack(
        [
            _uniform((batch,), 1.9, 2.4, generator, clean),
            torch.ones(batch, device=clean.device, dtype=clean.dtype),
            _uniform((batch,), 1.5, 1.9, generator, clean),
        ],
        dim=1,
    )[:, :, None, None]
    linear = kornia.color.rgb_to_linear_rgb(clean.clamp(0, 1))
    cam = torch.einsum("bij,bjhw->bihw", torch.linalg.inv(ccm), linear) / gains
    raw = kornia.color.rgb_to_raw(cam.clamp(0, 1), CFA.RG)  # (B, 1, H, W)

    log_shot = _uniform((batch,), math.log(1e-4), math.log(1.2e-2), generator, clean) + 2 * math.log(
        max(strength, 1e-6)
    )
    log_read = 2.18 * log_shot + 1.2 + 0.26 * torch.randn(batch, generator=generator, device=clean.device)
    variance = _per_image(log_shot.exp()) * raw + _per_image(log_read.exp())
    noisy_raw = raw + variance.sqrt() * torch.randn(raw.shape, generator=generator, device=raw.device, dtype=raw.dtype)

    def process(mosaic: torch.Tensor) -> torch.Tensor:
        rgb = kornia.color.raw_to_rgb(mosaic, CFA.RG) * gains
        return kornia.color.linear_rgb_to_rgb(torch.einsum("bij,bjhw->bihw", ccm, rgb).clamp(0, 1))

    noise = process(noisy_raw) - process(raw)
    if zero_mean:
        noise = unbias(noise, clean)
    # Most images get the camera's noise reduction; some come out raw-like, as with NR turned off.
    reduced = camera_noise_reduction(noise, generator)
    if edge_fraction > 0:
        edge = _chance(batch, edge_fraction, generator, clean)
        reduced = torch.where(_per_image(edge), spare_edges(reduced, clean, generator), reduced)
    use = _chance(batch, 0.75, generator, clean)
    if luma is not None:
        reduced, use = _damp_chroma_where(reduced, luma, generator), use | luma
    return torch.where(_per_image(use), reduced, noise)


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG round trip (kornia), quality (B,) in [1, 100]; any size (padded to 16 by reflection)."""
    import kornia

    h, w = img.shape[-2:]
    pad_h, pad_w = -h % 16, -w % 16
    x = img.clamp(0, 1)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return kornia.enhance.jpeg_codec_differentiable(x, quality)[..., :h, :w]


def quantize8(img: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8 bits, as a saved photo is."""
    return torch.round(img.clamp(0, 1) * 255.0) / 255.0


def sample_sigma(
    batch: int, generator: torch.Generator, like: torch.Tensor, zero_fraction: float, high: float = SIGMA_MAX
) -> torch.Tensor:
    """Noise levels uniform in [0, high], with `zero_fraction` of them exactly 0 (clean input)."""
    sigma = _uniform((batch,), 0.0, high, generator, like)
    return torch.where(_chance(batch, zero_fraction, generator, like), torch.zeros_like(sigma), sigma)


def degrade(
    hq: torch.Tensor, scale: int, generator: torch.Generator, mix: Degradation = Degradation()
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training degradation: [blur] -> bicubic downscale -> noise of a random kind -> [8-bit, JPEG].

    Returns lq (B, 3, H/scale, W/scale) and its noise level (B,): the RMS of everything added after
    the downscale, on the 0-1 scale (for white Gaussian noise, its sigma up to sampling). This is the
    level a user's noise-level setting stands for.
    """
    batch = hq.shape[0]
    x = hq
    if mix.blur_max > 0:
        x = gaussian_blur(x, _uniform((batch,), 0.0, mix.blur_max, generator, hq))
    clean = downscale(x, scale)

    high = SIGMA_MAX if scale == 1 else mix.sr_sigma_max
    zero = mix.clean_fraction if scale == 1 else mix.sr_clean_fraction
    sigma = sample_sigma(batch, generator, hq, zero, high)
    kind = torch.rand((batch,), generator=generator, device=hq.device)
    camera = _per_image(kind < mix.camera_fraction)
    correlated = _per_image((kind >= mix.camera_fraction) & (kind < mix.camera_fraction + mix.correlated_fraction))
    noisy = _per_image(sigma > 0)

    luma = _chance(batch, mix.luma_fraction, generator, hq) if mix.luma_fraction > 0 else None

    lq = add_noise(clean, sigma, generator)
    if mix.grey_fraction > 0:
        grey = _chance(batch, mix.grey_fraction, generator, hq)
        white = _damp_chroma_where(lq - clean, grey, generator)
        rms = white.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
        lq = torch.where(_per_image(grey), clean + white * _per_image(sigma) / rms, lq)
    if mix.correlated_fraction > 0:
        # Residual noise after in-camera noise reduction is milder than the white noise range.
        lq = torch.where(correlated, clean + correlated_noise(clean, sigma * 0.5, generator, luma), lq)
    if mix.camera_fraction > 0:
        made = camera_noise(clean, generator, high / SIGMA_MAX, luma, mix.zero_mean, mix.edge_fraction)
        lq = torch.where(camera & noisy, clean + made, lq)
    # Camera-like inputs are saved photos: 8-bit and sometimes JPEG (also the clean ones).
    photo = camera | correlated
    if mix.camera_fraction > 0 or mix.correlated_fraction > 0:
        lq = torch.where(photo, quantize8(lq), lq)
    if mix.jpeg_fraction > 0:
        quality = _uniform((batch,), 30.0, 95.0, generator, hq)
        use = photo & _per_image(_chance(batch, mix.jpeg_fraction, generator, hq))
        lq = torch.where(use, jpeg(lq, quality), lq)
    level = (lq - clean).square().mean(dim=(1, 2, 3)).sqrt()
    return lq, level


# Grey grain for training the luma reader (model.LumaReader): the white noise's blur in pixels, and the
# highest RMS (0-1 scale). Real grain after in-camera noise reduction is a few levels on the 0-255 scale.
GRAIN_BLUR = (0.3, 1.5)
GRAIN_RMS_MAX = 16.0 / 255.0


def zoom_in(hq: torch.Tensor, generator: torch.Generator, fraction: float = 0.5, most: float = 3.0) -> torch.Tensor:
    """Some crops (`fraction`) replaced by their centre enlarged 1-`most` times (bicubic): a camera photo at
    full resolution is smooth at the pixel scale, where most training photos are dense texture."""
    out = hq.clone()
    side = hq.shape[-1]
    for i in torch.nonzero(_chance(hq.shape[0], fraction, generator, hq)).flatten().tolist():
        zoom = 1.0 + (most - 1.0) * float(torch.rand((), generator=generator, device=hq.device))
        c = max(int(side / zoom) // 2 * 2, 8)
        y, x = (hq.shape[-2] - c) // 2, (side - c) // 2
        centre = hq[i : i + 1, :, y : y + c, x : x + c]
        out[i] = F.interpolate(centre, size=hq.shape[-2:], mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return out


def grey_grain(
    hq: torch.Tensor,
    generator: torch.Generator,
    clean_fraction: float = 0.25,
    jpeg_fraction: float = 0.3,
    camera_fraction: float = 0.0,
    edge_fraction: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey grain on clean crops: white noise blurred by GRAIN_BLUR px, the same on R, G and B, at an RMS
    uniform up to GRAIN_RMS_MAX (none on `clean_fraction`), then 8 bits and, on `jpeg_fraction`, JPEG at
    quality 30-95. On `camera_fraction` of the crops the grain is the luma of the simulated camera's noise
    instead (camera_noise), rescaled to the same RMS: its level follows the brightness, as a real camera's
    does, where the white grain's is the same everywhere. On `edge_fraction` of them the grain is damped
    where the photo is flat (spare_edges, as a camera's edge-aware noise reduction leaves it), then brought
    back to the drawn RMS: the flat parts alone read below the photo's level. Returns lq and its level (B,),
    the RMS of lq - hq, as `degrade` does."""
    batch = hq.shape[0]
    white = torch.randn((batch, 1, *hq.shape[-2:]), generator=generator, device=hq.device, dtype=hq.dtype)
    grain = _blur(white, _uniform((batch,), *GRAIN_BLUR, generator, hq))
    if camera_fraction > 0:
        camera = torch.einsum("j,bjhw->bhw", _YCC[0].to(hq), camera_noise(hq, generator))[:, None]  # its luma
        grain = torch.where(_per_image(_chance(batch, camera_fraction, generator, hq)), camera, grain)
    grain = grain / grain.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
    rms = sample_sigma(batch, generator, hq, clean_fraction, GRAIN_RMS_MAX)
    grain = grain.expand(-1, 3, -1, -1) * _per_image(rms)
    if edge_fraction > 0:
        spared = spare_edges(grain, hq, generator)
        spared = spared * _per_image(rms / spared.square().mean(dim=(1, 2, 3)).sqrt().clamp_min(1e-8))
        grain = torch.where(_per_image(_chance(batch, edge_fraction, generator, hq)), spared, grain)
    lq = quantize8(hq + grain)
    if jpeg_fraction > 0:
        quality = _uniform((batch,), 30.0, 95.0, generator, hq)
        lq = torch.where(_per_image(_chance(batch, jpeg_fraction, generator, hq)), jpeg(lq, quality), lq)
    return lq, (lq - hq).square().mean(dim=(1, 2, 3)).sqrt()
