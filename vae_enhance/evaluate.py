"""The benchmark protocol of DESIGN.md, with the classical baseline measured beside the model.

denoise: hq in [0, 1]; lq = hq + N(0, (sigma/255)^2), drawn after np.random.seed(0) for each image,
         not clipped; RGB PSNR of the clipped output. Baseline: OpenCV fastNlMeansDenoisingColored
         on the 8-bit noisy image (h = hColor = sigma, template 7, search 21).
sr:      hq cropped to a multiple of the scale; lq = PIL bicubic (a = -0.5, antialiased) downscale;
         Y-PSNR (BT.601) with `scale` pixels cropped from every border. Baseline: PIL bicubic upscale.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from vae_enhance.data import list_images
from vae_enhance.hub import load_model
from vae_enhance.image_io import from_float, read_image, to_float, to_rgb_float
from vae_enhance.inference import enhance
from vae_enhance.metrics import psnr, psnr_y


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].double()


def noisy(hq: np.ndarray, sigma: float) -> np.ndarray:
    """The protocol's noisy input: float32, unclipped, seeded per image."""
    np.random.seed(0)
    return (hq.astype(np.float64) + np.random.normal(0.0, sigma / 255.0, hq.shape)).astype(np.float32)


def nl_means(lq: np.ndarray, h: float) -> np.ndarray:
    """OpenCV's colour non-local means on the 8-bit version of lq (float RGB in, float RGB out)."""
    bgr = cv2.cvtColor(from_float(lq, np.uint8), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return to_float(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))


def bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bicubic resize of a uint8 RGB image to (width, height)."""
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


def evaluate(args) -> list[dict]:
    """One row per image: name, size, baseline and model PSNR, model seconds."""
    model = load_model(args.model, device=args.device)
    rows = []
    for path in list_images(args.data):
        hq = to_rgb_float(read_image(path))
        row = {"image": Path(path).stem, "size": f"{hq.shape[1]}x{hq.shape[0]}"}
        if args.task == "denoise":
            lq = noisy(hq, args.sigma)
            t0 = time.perf_counter()
            out = enhance(model, lq, 1, tile=args.tile)
            row["seconds"] = time.perf_counter() - t0
            row["model"] = psnr(_t(np.clip(out, 0, 1)), _t(hq)).item()
            if not args.no_baseline:
                row["baseline"] = psnr(_t(nl_means(lq, args.sigma)), _t(hq)).item()
        else:
            s = args.scale
            h, w = hq.shape[0] // s * s, hq.shape[1] // s * s
            hq8 = from_float(hq[:h, :w], np.uint8)  # eval sets are 8-bit, so this is lossless
            lq8 = bicubic(hq8, (w // s, h // s))
            t0 = time.perf_counter()
            out = enhance(model, lq8, s, tile=args.tile)
            row["seconds"] = time.perf_counter() - t0
            ref = _t(to_float(hq8))
            row["model"] = psnr_y(_t(to_float(out)), ref, border=s).item()
            if not args.no_baseline:
                row["baseline"] = psnr_y(_t(to_float(bicubic(lq8, (w, h)))), ref, border=s).item()
        rows.append(row)
    return rows


def format_table(rows: list[dict], args) -> str:
    """A Markdown table, per image unless --quiet, with the mean last."""
    if args.task == "denoise":
        title = f"denoise sigma {args.sigma:g}, RGB PSNR (dB)"
        base = "NL-means"
    else:
        title = f"SR x{args.scale}, Y-PSNR (dB), border {args.scale}"
        base = "bicubic"
    has_base = rows and "baseline" in rows[0]
    cols = ["image", "size"] + ([base] if has_base else []) + ["vae-enhance", "seconds"]
    lines = [f"{Path(args.data).name}: {title}", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]

    def fmt(row: dict) -> str:
        cells = [row["image"], row["size"]] + ([f"{row['baseline']:.2f}"] if has_base else [])
        return "| " + " | ".join(cells + [f"{row['model']:.2f}", f"{row['seconds']:.2f}"]) + " |"

    if not args.quiet:
        lines += [fmt(r) for r in rows]
    mean = {
        k: float(np.mean([r[k] for r in rows])) for k in ("model", "seconds", "baseline") if has_base or k != "baseline"
    }
    lines.append(fmt({"image": f"**mean of {len(rows)}**", "size": "", **mean}))
    return "\n".join(lines)
