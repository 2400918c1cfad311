"""Average two models of the same network, tensor by tensor, into a new model folder.

    python scripts/average_models.py runs/P4-last weights runs/S1            # half and half (v0.13)
    python scripts/average_models.py runs/P5-last weights runs/S2 --weight 0.25

Two models grown from the same weights (a release and a cycle trained on from it) lie close together, and
their average keeps part of what the cycle learnt while staying nearer the release, which a release gate
can need (training log, *After v0.12*). The output takes its config from the first model, so its prior
scale too; `--weight` is the share of the second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_enhance.hub import load_model, save_model  # noqa: E402
from vae_enhance.model import VAEEnhancer  # noqa: E402


def average(first: VAEEnhancer, second: VAEEnhancer, weight: float) -> VAEEnhancer:
    """first with every floating-point tensor replaced by (1 - weight) first + weight second."""
    a, b = first.state_dict(), second.state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit("the two models are not the same network (their tensors differ in name or shape)")
    mixed = {k: (1 - weight) * v + weight * b[k].to(v.dtype) if v.is_floating_point() else v for k, v in a.items()}
    first.load_state_dict(mixed)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="model folder, repo id or anything load_model takes; its config is kept")
    parser.add_argument("second", help="the model to average with")
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--weight", type=float, default=0.5, help="the second model's share (default 0.5)")
    args = parser.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        parser.error("--weight is a share between 0 and 1")
    model = average(load_model(args.first, device="cpu"), load_model(args.second, device="cpu"), args.weight)
    print(f"wrote {save_model(model.eval(), args.out)}")


if __name__ == "__main__":
    main()
