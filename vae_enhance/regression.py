"""A regression guard for the bundled weights: benchmark-protocol figures on a photo shipped in the repo.

The evaluation sets live outside the repo, so the test suite cannot re-run the benchmarks. It re-runs
this instead: the protocol of DESIGN.md on examples/astronaut_clean.png (public domain), whose figures
sit in weights/regression.json beside the weights. Whoever changes the weights rewrites that file:

    python -m vae_enhance.regression --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vae_enhance.baselines import bicubic, noisy
from vae_enhance.hub import BUNDLED, load_model
from vae_enhance.image_io import read_image, to_float
from vae_enhance.inference import enhance
from vae_enhance.metrics import psnr, psnr_y, to_tensor
from vae_enhance.model import VAEEnhancer

PHOTO = BUNDLED.parent / "examples" / "astronaut_clean.png"
FIGURES_NAME = "regression.json"


def figures(model: VAEEnhancer, photo: Path = PHOTO) -> dict[str, float]:
    """dB figures of `model` on `photo`, and of the input or bicubic beside each (the `*_input` keys)."""
    hq8 = read_image(photo)[..., :3]
    hq = to_float(hq8)
    lq = noisy(hq, 25)
    out = np.clip(enhance(model, lq, 1), 0, 1)
    result = {
        "denoise_sigma25": psnr(to_tensor(out), to_tensor(hq)).item(),
        "denoise_sigma25_input": psnr(to_tensor(np.clip(lq, 0, 1)), to_tensor(hq)).item(),
    }
    for scale in (2, 4):
        h, w = hq8.shape[0] // scale * scale, hq8.shape[1] // scale * scale
        ref = np.ascontiguousarray(hq8[:h, :w])
        lq8 = bicubic(ref, (w // scale, h // scale))
        result[f"sr_x{scale}"] = psnr_y(
            to_tensor(to_float(enhance(model, lq8, scale))), to_tensor(to_float(ref)), scale
        ).item()
        up = bicubic(lq8, (w, h))
        result[f"sr_x{scale}_input"] = psnr_y(to_tensor(to_float(up)), to_tensor(to_float(ref)), scale).item()
    return {k: round(v, 3) for k, v in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figures of the bundled weights on the shipped example photo.")
    parser.add_argument("--write", action="store_true", help=f"write them to weights/{FIGURES_NAME}")
    args = parser.parse_args(argv)
    result = figures(load_model(BUNDLED, device="cpu"))
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.write:
        (BUNDLED / FIGURES_NAME).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
