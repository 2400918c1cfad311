"""The benchmark protocol of DESIGN.md, with the peers measured beside the model in the same run.

denoise: hq in [0, 1]; lq = hq + N(0, (sigma/255)^2), seeded per image (baselines.noisy), not clipped;
         RGB PSNR of the clipped output. Peers: OpenCV non-local means on the 8-bit noisy image
         (h = hColor = sigma, template 7, search 21) and FFDNet given the true sigma.
sr:      hq cropped to a multiple of the scale; lq = PIL bicubic (a = -0.5, antialiased) downscale;
         Y-PSNR (BT.601) with `scale` pixels cropped from every border. Peer: PIL bicubic upscale.
real:    folders of NAME_real.png (one 8-bit shot, fed as it is) and NAME_mean.png (the mean of many
         shots, the reference), such as CC15; RGB PSNR. Also scored: the noisy input itself, NL-means at
         several h, and FFDNet at fixed sigmas (it is non-blind and real noise has no true sigma).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vae_enhance.baselines import FFDNET_MISSING, bicubic, ffdnet_denoise, load_ffdnet, nl_means, noisy
from vae_enhance.data import list_images
from vae_enhance.hub import load_model
from vae_enhance.image_io import from_float, read_image, to_float, to_rgb_float
from vae_enhance.inference import enhance
from vae_enhance.metrics import psnr, psnr_y, to_tensor

TASKS = ("denoise", "sr", "real")
MODEL = "vae-enhance"
NOISY = "noisy input"
# Real camera noise: NL-means strengths and the fixed noise levels FFDNet is given (0-255 scale).
REAL_NLM_H = (3, 5, 7, 10)
REAL_FFDNET_SIGMAS = (5, 10, 15)


@dataclass(frozen=True)
class EvalOptions:
    """What `vae-enhance eval` measures. sigma (0-255) is for denoise, scale for sr; model is a source
    for load_model (None = the bundled weights); peers=False scores the model alone (faster);
    noise_level (0-255) is what the model is told, for models with that input (None = automatic);
    self_ensemble: the model's output is the mean of eight flipped and turned passes (enhance()'s keyword)."""

    data: str | Path
    task: str = "denoise"
    sigma: float = 25.0
    scale: int = 4
    model: str | Path | None = None
    device: str | None = None
    tile: int | None = None
    peers: bool = True
    noise_level: float | None = None
    self_ensemble: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not np.isfinite(self.sigma) or self.sigma < 0:
            raise ValueError(f"sigma is a noise level on the 0-255 scale, >= 0; got {self.sigma}")
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")

    def title(self) -> str:
        return self._task_title() + ("; the model self-ensembled (8 passes)" if self.self_ensemble else "")

    def _task_title(self) -> str:
        if self.task == "denoise":
            return f"denoise sigma {self.sigma:g}, RGB PSNR (dB); NL-means h = sigma, FFDNet given the true sigma"
        if self.task == "sr":
            return f"SR x{self.scale}, Y-PSNR (dB), border {self.scale}"
        sigmas = ", ".join(str(s) for s in REAL_FFDNET_SIGMAS)
        return (
            "real camera noise, RGB PSNR (dB) against the mean image; "
            f"FFDNet is non-blind and is given fixed sigmas ({sigmas})"
        )


@dataclass
class EvalResult:
    """rows: one per image, {"image", "size", "seconds" (the model's), "scores": {column: dB}}, the
    columns in display order (peers first, the model last); notes: peers skipped, and why."""

    options: EvalOptions
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def columns(self) -> list[str]:
        return list(self.rows[0]["scores"]) if self.rows else [MODEL]

    def mean(self, column: str) -> float:
        return float(np.mean([r["scores"][column] for r in self.rows]))

    def means(self) -> dict[str, float]:
        """Mean over the images of every score column, plus "seconds"."""
        found = {c: self.mean(c) for c in self.columns()}
        found["seconds"] = float(np.mean([r["seconds"] for r in self.rows]))
        return found


def real_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, NAME_real.png, NAME_mean.png) for every pair in folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--data {folder}: no such folder; point it at a folder of NAME_real/NAME_mean pairs")
    pairs = []
    for real in sorted(folder.glob("*_real.*")):
        name = real.stem[: -len("_real")]
        means = sorted(folder.glob(f"{name}_mean.*"))
        if not means:
            raise ValueError(f"--data {folder}: {real.name} has no {name}_mean image beside it")
        pairs.append((name, real, means[0]))
    if not pairs:
        raise ValueError(f"--data {folder}: no NAME_real.png / NAME_mean.png pairs found (as in CC15)")
    return pairs


def _rgb_psnr(out: np.ndarray, hq: np.ndarray) -> float:
    return psnr(to_tensor(np.clip(out, 0, 1)), to_tensor(hq)).item()


def evaluate(options: EvalOptions) -> EvalResult:
    """Score the model (and its peers, unless options.peers is False) on every image of options.data."""
    model = load_model(options.model, device=options.device)
    result = EvalResult(options)
    ffdnet = None
    if options.peers and options.task != "sr":
        ffdnet = load_ffdnet(device=next(model.parameters()).device)
        if ffdnet is None:
            result.notes.append(FFDNET_MISSING)

    def run_model(lq: np.ndarray, scale: int) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = enhance(
            model, lq, scale, noise_level=options.noise_level, tile=options.tile, self_ensemble=options.self_ensemble
        )
        return out, time.perf_counter() - t0

    if options.task == "real":
        for name, real_path, mean_path in real_pairs(options.data):
            shot = read_image(real_path)
            lq, hq = to_rgb_float(shot), to_rgb_float(read_image(mean_path))
            scores = {}
            if options.peers:
                scores[NOISY] = _rgb_psnr(lq, hq)
                for h in REAL_NLM_H:
                    scores[f"NL-means h={h}"] = _rgb_psnr(nl_means(lq, h), hq)
                if ffdnet is not None:
                    for s in REAL_FFDNET_SIGMAS:
                        scores[f"FFDNet s={s}"] = _rgb_psnr(ffdnet_denoise(ffdnet, lq, s), hq)
            out, seconds = run_model(shot, 1)  # the shot as it is, 8-bit
            scores[MODEL] = _rgb_psnr(to_rgb_float(out), hq)
            result.rows.append(_row(name, hq, seconds, scores))
        return result

    for path in list_images(options.data):
        hq = to_rgb_float(read_image(path))
        scores = {}
        if options.task == "denoise":
            lq = noisy(hq, options.sigma)
            if options.peers:
                scores["NL-means"] = _rgb_psnr(nl_means(lq, options.sigma), hq)
                if ffdnet is not None:
                    scores["FFDNet"] = _rgb_psnr(ffdnet_denoise(ffdnet, lq, options.sigma), hq)
            out, seconds = run_model(lq, 1)
            scores[MODEL] = _rgb_psnr(out, hq)
        else:
            s = options.scale
            h, w = hq.shape[0] // s * s, hq.shape[1] // s * s
            hq8 = from_float(hq[:h, :w], np.uint8)  # eval sets are 8-bit, so this is lossless
            lq8 = bicubic(hq8, (w // s, h // s))
            ref = to_tensor(to_float(hq8))
            if options.peers:
                scores["bicubic"] = psnr_y(to_tensor(to_float(bicubic(lq8, (w, h)))), ref, border=s).item()
            out, seconds = run_model(lq8, s)
            scores[MODEL] = psnr_y(to_tensor(to_float(out)), ref, border=s).item()
        result.rows.append(_row(Path(path).stem, hq, seconds, scores))
    return result


def _row(name: str, hq: np.ndarray, seconds: float, scores: dict[str, float]) -> dict:
    return {"image": name, "size": f"{hq.shape[1]}x{hq.shape[0]}", "seconds": seconds, "scores": scores}


def format_table(result: EvalResult, quiet: bool = False) -> str:
    """Notes, then a Markdown table (per image unless quiet, the mean last), then for real noise how
    often the model beats the noisy input."""
    options, rows = result.options, result.rows
    cols = result.columns()
    lines = [*result.notes, f"{Path(options.data).name}: {options.title()}"]
    lines += ["| " + " | ".join(["image", "size", *cols, "seconds"]) + " |", "|" + " --- |" * (len(cols) + 3)]

    def fmt(name: str, size: str, scores: dict[str, float], seconds: float) -> str:
        cells = [name, size, *(f"{scores[c]:.2f}" for c in cols), f"{seconds:.2f}"]
        return "| " + " | ".join(cells) + " |"

    if not quiet:
        lines += [fmt(r["image"], r["size"], r["scores"], r["seconds"]) for r in rows]
    means = result.means()
    lines.append(fmt(f"**mean of {len(rows)}**", "", means, means["seconds"]))
    if NOISY in cols:
        above = sum(r["scores"][MODEL] > r["scores"][NOISY] for r in rows)
        lines.append(
            f"{MODEL} is above the noisy input on {above} of {len(rows)} images "
            f"({means[MODEL] - means[NOISY]:+.2f} dB on average)"
        )
    return "\n".join(lines)
