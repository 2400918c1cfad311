"""`vae-enhance enhance`: files and folders in, enhanced files out, bad files reported at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm import tqdm

from vae_enhance.hub import load_model
from vae_enhance.image_io import READ_EXTENSIONS, read_image, write_image
from vae_enhance.inference import enhance


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files from the given files and folders (recursively), and the inputs that do not exist."""
    files, missing = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in READ_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            missing.append((item, "no such file or folder"))
    return files, missing


def enhance_paths(args) -> int:
    """Enhance every input into args.output; returns the exit code (1 if any file failed)."""
    files, failed = collect_inputs(args.inputs)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device)
    done, skipped = 0, []
    suffix = f"_x{args.scale}" if args.scale > 1 else "_denoised"
    for path in tqdm(files, desc="enhance", unit="img", disable=not files):
        target = out_dir / f"{path.stem}{suffix}.{args.format}"
        if target.exists() and not args.overwrite:
            skipped.append(target)
            continue
        try:
            write_image(target, enhance(model, read_image(path), args.scale, tile=args.tile))
            done += 1
        except ValueError as err:
            failed.append((str(path), str(err)))
        except torch.OutOfMemoryError:
            failed.append((str(path), "out of memory on the device; try a smaller --tile (e.g. --tile 256)"))
    print(f"enhanced {done} of {len(files)} image(s) into {out_dir}")
    for target in skipped:
        print(f"skipped {target}: it exists (use --overwrite to replace it)")
    for name, reason in failed:
        print(f"failed {name}: {reason}", file=sys.stderr)
    return 1 if failed else 0
