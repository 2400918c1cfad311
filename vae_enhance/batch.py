"""`vae-enhance enhance`: files and folders in, enhanced files out, bad files reported at the end.

What it promises: every good file is processed even when others fail; failures are listed at the end
and the exit code is 1 if any; an input file is never written to, even with --overwrite; an existing
output is kept unless --overwrite; every output is written atomically (write_image), so an interrupt
leaves complete files only. Files found in a folder keep their sub-folder under the output folder,
so equal names in different sub-folders do not collide, and an output folder inside an input folder
is not read back as input.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from vae_enhance.hub import load_model
from vae_enhance.image_io import READ_EXTENSIONS, read_image, write_image
from vae_enhance.inference import enhance

OOM_ADVICE = "out of memory; try a smaller --tile (e.g. --tile 256), or a smaller --scale"


Failures = list[tuple[str, str]]  # (input as given, reason)
FORMATS = ("png", "tif", "jpg", "webp")


@dataclass(frozen=True)
class EnhanceOptions:
    """What `vae-enhance enhance` does. inputs: image files and/or folders; output: the folder the
    results go to; scale 1 = denoise, 2 or 4 = upscale; tile: input pixels (None = automatic, 0 = off);
    noise_level: the strength control, the photos' noise on the 0-255 scale (None = automatic);
    model: a source for load_model (None = the bundled weights); fmt: png, tif, jpg or webp;
    self_ensemble: average eight flipped and turned passes (enhance()'s keyword, eight times slower)."""

    inputs: tuple[str, ...]
    output: str | Path
    scale: int = 1
    tile: int | None = None
    noise_level: float | None = None
    model: str | Path | None = None
    device: str | None = None
    fmt: str = "png"
    overwrite: bool = False
    self_ensemble: bool = False


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def collect_inputs(inputs: list[str], exclude: Path | None = None) -> tuple[list[tuple[Path, Path]], Failures]:
    """(image file, its sub-folder under the given folder) for every input, and the inputs that do not exist.

    Folders are searched recursively for READ_EXTENSIONS (hidden files, such as unfinished writes,
    are left out), and so is `exclude` (the output folder) where it lies inside a given folder.
    A file named directly is taken whatever its extension, with no sub-folder.
    """
    files, missing = [], []
    skip = exclude.resolve() if exclude is not None else None
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            # Earlier outputs in an output folder inside this folder are not inputs (-o equal to it is allowed).
            nested = skip if skip is not None and skip != path.resolve() and _inside(skip, path.resolve()) else None
            for found in sorted(path.rglob("*")):
                if not found.is_file() or found.suffix.lower() not in READ_EXTENSIONS or found.name.startswith("."):
                    continue
                if nested is not None and _inside(found.resolve(), nested):
                    continue
                files.append((found, found.parent.relative_to(path)))
        elif path.is_file():
            files.append((path, Path()))
        else:
            missing.append((item, "no such file or folder"))
    return files, missing


def plan_jobs(
    files: list[tuple[Path, Path]], out_dir: Path, suffix: str, overwrite: bool
) -> tuple[list[Job], list[Path], Failures]:
    """Targets for every input: (jobs to run, existing outputs skipped, refused inputs with the reason)."""
    sources = {path.resolve() for path, _ in files}
    jobs, skipped, refused = [], [], []
    planned: dict[Path, Path] = {}
    seen: set[Path] = set()
    for path, sub in files:
        if path.resolve() in seen:
            continue  # the same file named twice
        seen.add(path.resolve())
        target = out_dir / sub / f"{path.stem}{suffix}"
        key = target.resolve()
        if key in sources:
            refused.append((str(path), f"its output {target} would replace an input file; choose another -o folder"))
        elif key in planned:
            refused.append((str(path), f"its output {target} is also the output of {planned[key]}; rename one"))
        elif target.exists() and not overwrite:
            skipped.append(target)
        else:
            planned[key] = path
            jobs.append(Job(path, target))
    return jobs, skipped, refused


def _run_job(model, job: Job, options: EnhanceOptions) -> None:
    img = read_image(job.source)
    out = enhance(
        model, img, options.scale, noise_level=options.noise_level, tile=options.tile,
        self_ensemble=options.self_ensemble,
    )  # fmt: skip
    job.target.parent.mkdir(parents=True, exist_ok=True)
    write_image(job.target, out)


def _failure_reason(err: Exception) -> str:
    if isinstance(err, ValueError):  # ImageError and friends: the message already says what to do
        return str(err)
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(err):
        return OOM_ADVICE
    if isinstance(err, OSError):
        return f"cannot read or write the file ({err.strerror or err})"
    return f"unexpected error ({type(err).__name__}: {err}); please report it"


def _report(done: int, total: int, out_dir: Path, skipped: list[Path], failed: Failures) -> None:
    print(f"enhanced {done} of {total} image(s) into {out_dir}")
    for target in skipped:
        print(f"skipped {target}: it exists (use --overwrite to replace it)")
    for name, reason in failed:
        print(f"failed {name}: {reason}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} input(s) failed", file=sys.stderr)


def enhance_paths(options: EnhanceOptions) -> int:
    """Enhance every input into options.output; returns the exit code (1 if any input failed)."""
    if options.tile is not None and options.tile < 0:
        raise ValueError(f"--tile must be 0 (off) or a number of pixels, got {options.tile}")
    if options.noise_level is not None and not 0 <= options.noise_level <= 255:
        raise ValueError(f"--noise-level must be from 0 to 255 (the 0-255 scale), got {options.noise_level:g}")
    if options.fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {options.fmt!r}")
    out_dir = Path(options.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"-o {out_dir} is a file; give a folder for the outputs")
    inputs = [str(item) for item in options.inputs]
    files, failed = collect_inputs(inputs, exclude=out_dir)
    if not files and not failed:
        raise ValueError(f"no image files found in {', '.join(inputs)} (looked for {' '.join(READ_EXTENSIONS)})")
    suffix = f"{'_x' + str(options.scale) if options.scale > 1 else '_denoised'}.{options.fmt}"
    jobs, skipped, refused = plan_jobs(files, out_dir, suffix, options.overwrite)
    failed += refused
    done = 0
    if jobs:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create the output folder {out_dir} ({err.strerror or err})") from None
        model = load_model(options.model, device=options.device)
        if options.noise_level is not None and not model.config.noise_input:
            raise ValueError(
                f"the model ({model.origin}) has no noise-level input: leave --noise-level out (automatic)"
            )
    try:
        for job in tqdm(jobs, desc="enhance", unit="img", disable=not jobs):
            try:
                _run_job(model, job, options)
                done += 1
            except Exception as err:  # one bad photo must not stop the batch: report it at the end
                failed.append((str(job.source), _failure_reason(err)))
                if isinstance(err, torch.OutOfMemoryError) and torch.cuda.is_available():
                    torch.cuda.empty_cache()  # give the next photo the memory this one held
    except KeyboardInterrupt:
        _report(done, len(files), out_dir, skipped, failed)
        print(f"interrupted: {len(jobs) - done} image(s) not done; every file written is complete", file=sys.stderr)
        raise
    _report(done, len(files), out_dir, skipped, failed)
    return 1 if failed else 0
