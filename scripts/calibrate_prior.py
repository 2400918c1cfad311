"""Calibrate a model's prior scale on held-out photos, and write the calibrated model folder.

    python scripts/calibrate_prior.py runs/A --out runs/A-cal [--target-std 2.3] [--train ../shared/data/train]

Sweeps the prior scale upwards (x4 variations of the 320 px centre crops of the training run's 16
held-out photos, 8 samples, as `quick_eval.py --what heldout_var`), prints the spread and the worst
samples' drops at each, and stops at the smallest scale whose mean per-pixel std reaches --target-std
(on the 0-255 scale). OUT gets the same weights with that `prior_scale` in config.json: temperature 1
then samples the calibrated prior. Uses no evaluation set.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quick_eval import heldout_crops, variation_text  # noqa: E402

from vae_enhance.hub import load_model, save_model  # noqa: E402
from vae_enhance.model import VAEEnhancer  # noqa: E402
from vae_enhance.uncertainty import PRIOR_SCALES, calibrate_prior_scale  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--target-std", type=float, default=2.3, help="held-out mean std, 0-255 scale (the release's)")
    parser.add_argument("--train", default="../shared/data/train", type=Path)
    parser.add_argument(
        "--candidates", default=",".join(map(str, PRIOR_SCALES)), help="prior scales to try, comma-separated"
    )
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    candidates = tuple(float(c) for c in args.candidates.split(","))
    try:
        with torch.no_grad():
            chosen, sweep = calibrate_prior_scale(model, heldout_crops(args.train), args.target_std, candidates)
    except ValueError as err:
        sys.exit(f"calibrate_prior: {err}")
    for prior_scale, stats in sweep:
        print(f"prior scale {prior_scale:g}: {variation_text(stats)}")
    calibrated = VAEEnhancer(replace(model.config, prior_scale=chosen))
    calibrated.load_state_dict(model.state_dict())
    save_model(calibrated, args.out)
    print(f"prior_scale {chosen:g} -> {args.out}")


if __name__ == "__main__":
    main()
