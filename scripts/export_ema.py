"""Save a training run's latest EMA weights as a model folder, optionally with some parts from another model.

    python scripts/export_ema.py runs/L1/checkpoint.pt runs/L1-last
    python scripts/export_ema.py runs/w1/checkpoint.pt runs/w1-last --parts-from weights \
        --parts noise_estimator,sr_estimators

A run's --out folder holds the weights of its best validation score, which is the right choice for the
VAE but not for a part trained alone (an estimator, the luma reader): validation scores the whole model,
and a reader that has just begun to learn can score best. This writes the EMA of the last step instead.
`--parts` takes the named modules (state-dict prefixes) from `--parts-from` (a model folder, repo id or
anything load_model takes) and the config from it too: a VAE trained without estimators, judged with the
shipped ones and their prior scale, for instance.
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


def last_ema(checkpoint: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The model config of a train.py checkpoint and its EMA weights."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    print(f"{checkpoint}: step {ckpt['step']}")
    ema = {k[len(EMA_PREFIX) :]: v for k, v in ckpt["ema"].items() if k.startswith(EMA_PREFIX)}
    return ModelConfig.from_dict(ckpt["config"]), ema


def with_parts(ema: dict[str, torch.Tensor], donor: VAEEnhancer, parts: list[str]) -> VAEEnhancer:
    """The donor's config and its tensors under each prefix in `parts`; every other tensor from `ema`.

    The donor's config: a run trained without estimators (`--preset small --init weights`) gets the
    donor's estimators, their flags and its prior scale."""
    model = VAEEnhancer(donor.config)
    state = donor.state_dict()
    for part in parts:
        if not any(k.startswith(part + ".") for k in state):
            raise SystemExit(f"the donor model has no part {part!r}")
    for k, v in ema.items():
        if any(k.startswith(part + ".") for part in parts):
            continue
        if k not in state or state[k].shape != v.shape:
            raise SystemExit(f"the run's {k} has no place of that shape in the donor's model: not the same network")
        state[k] = v
    model.load_state_dict(state)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--parts-from", default=None, help="model to take --parts from")
    parser.add_argument("--parts", default="", help="comma-separated state-dict prefixes, e.g. noise_estimator")
    args = parser.parse_args()
    config, ema = last_ema(args.checkpoint)
    parts = [p for p in args.parts.split(",") if p]
    if parts and args.parts_from is None:
        parser.error("--parts needs --parts-from")
    if parts:
        model = with_parts(ema, load_model(args.parts_from, device="cpu"), parts)
    else:
        model = VAEEnhancer(config)
        model.load_state_dict(ema)
    print(f"wrote {save_model(model.eval(), args.out)}")


if __name__ == "__main__":
    main()
