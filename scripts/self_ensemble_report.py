"""What enhance(..., self_ensemble=True) adds on every benchmark, beside the plain model and its peers.

    python scripts/self_ensemble_report.py --eval ../shared/data/eval [--model DIR] [--sets CBSD68,CC15]

For each benchmark of the protocol (DESIGN.md) it scores the model plain and self-ensembled (the mean of
the photo restored in its eight flips and quarter turns) in the same run, with the peers that
`vae-enhance eval` measures (NL-means and FFDNet, given the true sigma, for denoising and CC15), then times
one 512x512 photo both ways against OpenCV NL-means. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vae_enhance.bench import median_seconds, nl_means_seconds, synthetic_photo
from vae_enhance.evaluate import MODEL, EvalOptions, evaluate
from vae_enhance.hub import load_model
from vae_enhance.inference import enhance

# (set, task, options): the protocol's benchmarks, as benchmark_report.py runs them.
BENCHMARKS = [
    *((name, "denoise", {"sigma": s}) for name in ("CBSD68", "Kodak24") for s in (15, 25, 50)),
    ("CC15", "real", {}),
    *((name, "sr", {"scale": s}) for s in (2, 4) for name in ("Set5", "Set14")),
]


def label(name: str, task: str, kw: dict) -> str:
    return f"{name} sigma {kw['sigma']}" if task == "denoise" else f"{name} x{kw['scale']}" if task == "sr" else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", required=True, help="folder holding CBSD68, Kodak24, CC15, Set5, Set14")
    parser.add_argument("--model", default=None, help="model folder (default: bundled weights)")
    parser.add_argument("--sets", default=None, help="only these sets, comma-separated (default: all)")
    args = parser.parse_args()
    wanted = None if args.sets is None else set(args.sets.split(","))

    rows = ["| benchmark | plain | self-ensembled | gain | peers (same run) |", "| --- | --- | --- | --- | --- |"]
    for name, task, kw in BENCHMARKS:
        if wanted is not None and name not in wanted:
            continue
        common = {"data": Path(args.eval) / name, "task": task, "model": args.model, "device": "cpu", **kw}
        plain = evaluate(EvalOptions(**common)).means()
        best = evaluate(EvalOptions(**common, peers=False, self_ensemble=True)).means()
        peers = ", ".join(f"{k} {v:.2f}" for k, v in plain.items() if k not in (MODEL, "seconds"))
        rows.append(
            f"| {label(name, task, kw)} | {plain[MODEL]:.2f} | {best[MODEL]:.2f} | "
            f"{best[MODEL] - plain[MODEL]:+.2f} | {peers} |"
        )
        print(rows[-1], flush=True)

    model = load_model(args.model, device="cpu")
    lq = synthetic_photo(512, 512)
    t_nlm = nl_means_seconds(lq, 5)
    t_plain = median_seconds(lambda: enhance(model, lq, 1), 5)
    t_best = median_seconds(lambda: enhance(model, lq, 1, self_ensemble=True), 3)
    print("\n".join(["", *rows, ""]))
    print(
        f"512x512 denoise, CPU: plain {t_plain:.3f} s ({t_plain / t_nlm:.2f}x NL-means), self-ensembled "
        f"{t_best:.3f} s ({t_best / t_nlm:.2f}x), NL-means {t_nlm:.3f} s"
    )


if __name__ == "__main__":
    main()
