"""The non-UI logic of the Streamlit app: previews, crops, examples, simulate mode, latent maps.

app.py only lays out widgets; everything here is a plain function over numpy arrays (and the model), so it
is unit-tested without Streamlit. Images follow the public API: H x W, H x W x 3 or H x W x 4, uint8, uint16
or float32 on [0, 1].
"""

from __future__ import annotations

import base64
import ctypes
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vae_enhance.baselines import bicubic, nl_means, noisy
from vae_enhance.image_io import from_float, max_pixels_setting, to_float, to_rgb_float
from vae_enhance.metrics import psnr, psnr_y, ssim
from vae_enhance.model import MULTIPLE, VAEEnhancer

TASKS = {"Denoise": 1, "Upscale x2": 2, "Upscale x4": 4}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"]

# Memory plan for Streamlit Community Cloud (about 1 GB per app): the process itself (Python, torch,
# Streamlit, the model) takes about 350 MB, so the photo, its result and the work in flight share the rest.
# Decoding limit: a 40 MP RGB photo is 120 MB as uint8. VAE_ENHANCE_MAX_PIXELS (the package's limit,
# see image_io.max_pixels_setting) lowers it; the app never goes above 40 MP.
MAX_INPUT_PIXELS = min(40_000_000, max_pixels_setting())
MAX_OUTPUT_PIXELS = 50_000_000  # a 12 MP photo upscaled x2 (48 MP, 144 MB as uint8) still fits
# Variations (n full-resolution samples) and latent maps run on a window of at most this side, in output
# pixels, around the zoom centre; a whole 12 MP photo times 8 samples would not fit in memory.
REGION_OUTPUT = 768
# The simulate mode degrades and scores a central crop of at most this side (NL-means is slow).
SIMULATE_SIDE = 1024
PREVIEW_SIDE = 1600
GAP_COLOUR = (14, 17, 23)  # the dark theme's background, between latent channels

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSION = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Example:
    """A photo shipped in examples/ (licences in examples/README.md) and the settings it is meant for."""

    file: str
    label: str
    task: str  # a key of TASKS
    simulate: bool = False

    def read(self) -> bytes:
        return (EXAMPLES_DIR / self.file).read_bytes()


EXAMPLES = (
    Example("cat_noisy.png", "Noisy cat (denoise)", "Denoise"),
    Example("coffee_small.png", "Small coffee cup (upscale x4)", "Upscale x4"),
    Example("astronaut_clean.png", "Clean portrait (simulate)", "Denoise", simulate=True),
)


def describe_image(img: np.ndarray) -> str:
    """'1200x800, RGB with alpha, 16-bit' for the caption under the uploader."""
    layout = "gray" if img.ndim == 2 else ("RGB with alpha" if img.shape[2] == 4 else "RGB")
    depth = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit", np.dtype(np.float32): "float"}[img.dtype]
    return f"{img.shape[1]}x{img.shape[0]}, {layout}, {depth}"


def check_output_size(shape: tuple[int, ...], scale: int, limit: int = MAX_OUTPUT_PIXELS) -> None:
    """Raise ValueError, with what to do, when the result would not fit the app's memory."""
    h, w = shape[0] * scale, shape[1] * scale
    if h * w > limit:
        raise ValueError(
            f"the result would be {w}x{h} = {h * w / 1e6:.0f} MP, over this app's limit of {limit / 1e6:.0f} MP: "
            "choose a smaller scale (or Denoise), downscale the photo first, or use the command line "
            "(`vae-enhance enhance`), which has no such limit"
        )


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere a no-op).

    Streamlit runs each session in its own thread, and glibc keeps what a thread freed in that thread's
    arena: without this, the memory of a large photo stays counted against the app after it is done.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def to_display(img: np.ndarray) -> np.ndarray:
    """uint8 copy of any layout, for st.image (gray stays gray, alpha stays)."""
    return img if img.dtype == np.uint8 else from_float(to_float(img), np.uint8)


def fit(img: np.ndarray, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """Downscale (area filter) so the longer side is at most max_side; smaller images come back as they are."""
    h, w = img.shape[:2]
    factor = max_side / max(h, w)
    if factor >= 1:
        return img
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def resize_nearest(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to (width, height): an enlarged input shows its real pixels."""
    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)


def as_rgb8(img: np.ndarray) -> np.ndarray:
    """uint8 RGB of any layout; alpha is composited over a mid-gray checkerboard so it stays visible."""
    img8 = to_display(img)
    if img8.ndim == 2:
        return np.repeat(img8[..., None], 3, axis=2)
    if img8.shape[2] == 3:
        return img8
    h, w = img8.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    board = np.where(((yy // 8 + xx // 8) % 2)[..., None] == 0, 200, 150).astype(np.float32)
    alpha = img8[..., 3:4].astype(np.float32) / 255.0
    return np.rint(img8[..., :3] * alpha + board * (1 - alpha)).astype(np.uint8)


def comparison_pair(
    lq: np.ndarray, out: np.ndarray, max_side: int = PREVIEW_SIDE, min_side: int = 720
) -> tuple[np.ndarray, np.ndarray]:
    """Input and result as uint8 RGB previews of one size (the input enlarged with nearest neighbour).

    Large results are shrunk to max_side; small ones are enlarged by a whole factor towards min_side,
    with nearest neighbour, so a small photo is not a thumbnail and its pixels stay visible.
    """
    after = fit(as_rgb8(out), max_side)
    zoom = max(1, min_side // max(after.shape[:2]))
    if zoom > 1:
        after = resize_nearest(after, (after.shape[1] * zoom, after.shape[0] * zoom))
    size = (after.shape[1], after.shape[0])
    before = fit(as_rgb8(lq), max(size))
    return resize_nearest(before, size), after


def png_data_url(rgb: np.ndarray) -> str:
    """A uint8 RGB preview as a lossless PNG data: URL, for the browser-side comparison slider."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("could not encode the preview as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def region_box(hw: tuple[int, int], center: tuple[float, float], side: int, multiple: int = 1) -> tuple[int, ...]:
    """(y0, y1, x0, x1) of a window of at most side x side pixels centred at (fy, fx) in 0-1 of (h, w).

    The window stays inside the image; its corner and size are multiples of `multiple` when the image
    allows, so an input window maps onto whole output pixels.
    """
    h, w = hw
    boxes = []
    for length, frac in ((h, center[0]), (w, center[1])):
        size = min(side, length)
        if size >= multiple:
            size = size // multiple * multiple
        start = int(round(np.clip(frac, 0.0, 1.0) * length - size / 2))
        start = min(max(start, 0), length - size)
        start = start // multiple * multiple
        boxes.append((start, start + size))
    (y0, y1), (x0, x1) = boxes
    return y0, y1, x0, x1


def zoom_pair(
    lq: np.ndarray, out: np.ndarray, scale: int, center: tuple[float, float], side: int
) -> tuple[np.ndarray, np.ndarray]:
    """The same window of input and result, side by side at the result's pixel size (uint8 RGB)."""
    y0, y1, x0, x1 = region_box(lq.shape[:2], center, max(side // scale, 1))
    crop_lq = as_rgb8(lq[y0:y1, x0:x1])
    crop_out = as_rgb8(out[y0 * scale : y1 * scale, x0 * scale : x1 * scale])
    return resize_nearest(crop_lq, (crop_out.shape[1], crop_out.shape[0])), crop_out


def region(img: np.ndarray, scale: int, center: tuple[float, float], side: int = REGION_OUTPUT) -> np.ndarray:
    """The input window whose result is at most side x side output pixels (the whole photo if it fits)."""
    y0, y1, x0, x1 = region_box(img.shape[:2], center, max(side // scale, MULTIPLE), multiple=MULTIPLE)
    return img[y0:y1, x0:x1]


def colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """A 2-D float map as uint8 RGB through a matplotlib colour map; values are clipped to [vmin, vmax]."""
    from matplotlib import colormaps  # imported late: it costs a second at app start-up

    span = max(vmax - vmin, 1e-12)
    index = np.clip((np.asarray(values, np.float64) - vmin) / span, 0.0, 1.0)
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    return lut[np.rint(index * 255).astype(np.intp)]


def uncertainty_heatmap(std: np.ndarray) -> tuple[np.ndarray, float]:
    """The variations' per-pixel std as an 'inferno' heatmap; returns (image, top of the scale).

    The scale tops out at the 99.5th percentile, not the maximum, so a few extreme pixels do not
    turn the rest of the map black.
    """
    top = max(float(np.percentile(std, 99.5)), 1e-6)
    return colorize(std, "inferno", 0.0, top), top


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float -> (1, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]


@dataclass
class LatentMaps:
    """The prior p(z | lq) of a photo: mean and standard deviation, (C, H/s, W/s), s = config.latent_stride."""

    mean: np.ndarray
    std: np.ndarray


def latent_maps(model: VAEEnhancer, img: np.ndarray, scale: int) -> LatentMaps:
    """Run the prior network once on img (pass a region() of a large photo) and return its Gaussian."""
    param = next(model.parameters())
    with torch.inference_mode():
        dist = model.encode(_tensor(to_rgb_float(img)).to(param.device, param.dtype), scale).dist
        std = dist.std[0].float().cpu().numpy() * model.config.prior_scale  # the std sampling uses
        return LatentMaps(mean=dist.mean[0].float().cpu().numpy(), std=std)


def channel_grid(maps: np.ndarray, cmap: str, symmetric: bool, cell: int = 240, gap: int = 6) -> np.ndarray:
    """Channels (C, h, w) as one row of colour-mapped tiles (uint8 RGB), enlarged to about `cell` pixels.

    Each channel gets its own scale, from its 1st to 99th percentile, so its spatial structure shows
    whatever its offset; symmetric (for means) centres a diverging scale on the channel's median.
    """
    h, w = maps.shape[1:]
    zoom = max(1, cell // max(h, w))
    tiles = []
    for m in maps:
        lo, hi = np.percentile(m, [1, 99])
        if symmetric:
            mid = float(np.median(m))
            half = max(hi - mid, mid - lo, 1e-6)
            lo, hi = mid - half, mid + half
        tiles.append(
            resize_nearest(colorize(m, cmap, float(lo), max(float(hi), float(lo) + 1e-6)), (w * zoom, h * zoom))
        )
    spacer = np.full((h * zoom, gap, 3), GAP_COLOUR, np.uint8)
    row = [t for tile in tiles for t in (tile, spacer)][:-1]
    return np.concatenate(row, axis=1)


@dataclass
class Simulation:
    """A clean photo (hq, float RGB) and the degraded input made from it (lq, float32, unclipped)."""

    hq: np.ndarray
    lq: np.ndarray
    sigma: float
    scale: int


def simulate(img: np.ndarray, sigma: float, scale: int, side: int = SIMULATE_SIDE) -> Simulation:
    """Degrade a clean photo by the benchmark protocol: bicubic downscale by `scale`, then Gaussian noise.

    A central crop of at most side x side pixels (a multiple of scale) is used, so scoring stays quick.
    sigma is on the 0-255 scale; the noise is seeded, so the same photo gives the same input every time.
    """
    if sigma < 0 or (sigma == 0 and scale == 1):
        raise ValueError("nothing to restore: set a noise level above 0, or choose an upscaling task")
    rgb = to_rgb_float(img)
    y0, y1, x0, x1 = region_box(rgb.shape[:2], (0.5, 0.5), side, multiple=scale)
    hq = np.clip(rgb[y0:y1, x0:x1], 0.0, 1.0)
    h, w = hq.shape[:2]
    if h < scale * MULTIPLE or w < scale * MULTIPLE:
        raise ValueError(f"the photo is too small to simulate x{scale}: use one of at least {scale * 8} pixels a side")
    lq = hq
    if scale > 1:
        lq = to_float(bicubic(from_float(hq, np.uint8), (w // scale, h // scale)))
    if sigma > 0:
        lq = noisy(lq, sigma)
    return Simulation(hq=hq, lq=lq.astype(np.float32), sigma=float(sigma), scale=scale)


def baselines(sim: Simulation) -> dict[str, np.ndarray]:
    """Classical restorations of sim.lq at the reference size: OpenCV non-local means and/or bicubic."""
    h, w = sim.hq.shape[:2]
    found = {}
    if sim.scale == 1:
        found["OpenCV non-local means"] = nl_means(sim.lq, sim.sigma)
        return found
    found["Bicubic"] = to_float(bicubic(from_float(sim.lq, np.uint8), (w, h)))
    if sim.sigma > 0:
        denoised = from_float(nl_means(sim.lq, sim.sigma), np.uint8)
        found["OpenCV non-local means + bicubic"] = to_float(bicubic(denoised, (w, h)))
    return found


def score(out: np.ndarray, hq: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR dB, SSIM) by the benchmark protocol: RGB PSNR for denoising, Y-PSNR with a border for SR."""
    out_t, hq_t = _tensor(np.clip(to_rgb_float(out), 0.0, 1.0)).double(), _tensor(hq).double()
    border = scale if scale > 1 else 0
    value = psnr_y(out_t, hq_t, border=border) if scale > 1 else psnr(out_t, hq_t)
    return float(value), float(ssim(out_t.float(), hq_t.float(), border=border))


def score_rows(sim: Simulation, out: np.ndarray, others: dict[str, np.ndarray]) -> list[dict]:
    """The simulate mode's table: the degraded input (denoising only), each baseline, then the model."""
    metric = "PSNR (Y, dB)" if sim.scale > 1 else "PSNR (RGB, dB)"
    rows = []
    candidates = ({"Degraded input": sim.lq} if sim.scale == 1 else {}) | others | {"vae-enhance": out}
    for name, img in candidates.items():
        value, structure = score(img, sim.hq, sim.scale)
        rows.append({"method": name, metric: round(value, 2), "SSIM": round(structure, 4)})
    return rows


def download_note(img: np.ndarray, fmt: str) -> str:
    """One line telling what the chosen format keeps of the result."""
    deep = img.dtype != np.uint8
    alpha = img.ndim == 3 and img.shape[2] == 4
    if fmt == "PNG":
        kept = ["16-bit" if deep else "8-bit"] + (["alpha"] if alpha else [])
        return "PNG keeps " + " and ".join(kept) + ", losslessly."
    notes = ["8-bit"]
    if alpha:
        notes.append("alpha kept" if fmt == "WEBP" else "alpha dropped (JPEG has none; use PNG or WebP)")
    if deep:
        notes.append("use PNG to keep 16 bits")
    return f"{fmt.title() if fmt == 'JPEG' else 'WebP'}: " + ", ".join(notes) + "."
