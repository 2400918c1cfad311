"""Save a training run's latest EMA weights as a model folder, optionally with some parts from another model.

    python scripts/export_ema.py runs/L1/checkpoint.pt runs/L1-last
    python scripts/export_ema.py runs/w1/checkpoint.pt runs/w1-last --parts-from weights \
        --parts noise_estimator,sr_estimators

A run's --out folder holds the weights of its best validation score, which is the right choice for the
VAE but not for a part trained alone (an estimator, the luma reader): validation scores the whole model,
and a reader that has just begun to learn can score best. This writes the EMA of the last step instead.
`--parts` replaces the named modules (state-dict prefixes) with those of `--parts-from` (a model folder,
repo id or anything load_model takes): a VAE judged with the shipped estimators, for instance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_enhance.config import ModelConfig  # noqa: E402
from vae_enhance.hub import load_model, save_model  # noqa: E402
from vae_enhance.model import VAEEnhancer  # noqa: E402

EMA_PREFIX = "module."  # AveragedModel keeps the averaged model under .module


def last_ema(checkpoint: Path) -> VAEEnhancer:
    """The model of a train.py checkpoint, with its EMA weights."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = VAEEnhancer(ModelConfig.from_dict(ckpt["config"]))
    state = {k[len(EMA_PREFIX) :]: v for k, v in ckpt["ema"].items() if k.startswith(EMA_PREFIX)}
    model.load_state_dict(state)
    print(f"{checkpoint}: step {ckpt['step']}")
    return model


def take_parts(model: VAEEnhancer, donor: VAEEnhancer, parts: list[str]) -> None:
    """Copy every tensor under each prefix in `parts` from donor into model (shapes must agree)."""
    state, donor_state = model.state_dict(), donor.state_dict()
    for part in parts:
        keys = [k for k in donor_state if k.startswith(part + ".")]
        if not keys:
            raise SystemExit(f"the donor model has no part {part!r}")
        for k in keys:
            state[k] = donor_state[k]
    model.load_state_dict(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--parts-from", default=None, help="model to take --parts from")
    parser.add_argument("--parts", default="", help="comma-separated state-dict prefixes, e.g. noise_estimator")
    args = parser.parse_args()
    model = last_ema(args.checkpoint)
    parts = [p for p in args.parts.split(",") if p]
    if parts:
        if args.parts_from is None:
            parser.error("--parts needs --parts-from")
        take_parts(model, load_model(args.parts_from, device="cpu"), parts)
    print(f"wrote {save_model(model.eval(), args.out)}")


if __name__ == "__main__":
    main()
