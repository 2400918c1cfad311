"""Bounded memory on large photos: enhance() and variations() keep no full-size float copy of the input or output.

With the tiny model and a small tile the activations are a few MB, so what is measured is the full-size
buffers. Peak RSS of a fresh process: a 2048 x 2048 RGB photo is 12 MB as uint8 and 48 MB per float32 copy; the
earlier implementation needed about 260 MB above the baseline for it, this one about 40 MB. numpy's peak
(tracemalloc) for the three other cases was 124 / 68 / 29 MB before and is 15 / 6 / 5 MB now (results 13 / 4 / 4 MB).
The figures for the release model at 3840x2160 and 12 MP come from scripts/memory_check.py (README).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import vae_enhance as ve

PROBE = """
import json, resource, sys
import numpy as np, torch
import vae_enhance as ve
from vae_enhance.config import PRESETS
torch.manual_seed(0)
torch.set_num_threads(1)
model = ve.VAEEnhancer(PRESETS["tiny"]).eval().requires_grad_(False)
kind, side, n, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
img = np.random.default_rng(0).integers(0, 256, (side // scale, side // scale, 3), dtype=np.uint8)
ve.enhance(model, img[:64, :64], scale, tile=32)  # warm the allocator and kernels before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if kind == "enhance":
    out = ve.enhance(model, img, scale, tile=256 // scale)
else:
    out, std = ve.variations(model, img, n=n, scale=scale, tile=256 // scale)
print(json.dumps({"extra_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base,
                  "shape": list(out.shape)}))
"""


def _extra_mb(kind: str, side: int, n: int, scale: int) -> dict:
    """Peak RSS above the warmed-up baseline of a fresh process running one call, and the result's shape."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind, str(side), str(n), str(scale)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_rss_of_a_large_enhance_has_no_full_size_float_copies():
    result = _extra_mb("enhance", 2048, 1, 1)
    assert result["shape"] == [2048, 2048, 3]
    assert result["extra_mb"] < 120, result  # output 12 MB; one float32 copy alone would be 48 MB


@pytest.mark.parametrize(
    ("kind", "shape", "n", "scale"),
    [("variations", (1024, 1024, 3), 3, 1), ("enhance", (512, 512, 4), 1, 2), ("variations", (700, 900), 2, 1)],
)
def test_numpy_peak_is_about_the_result_itself(tiny_model, kind, shape, n, scale):
    """tracemalloc sees numpy's buffers: the peak is the result plus tile-sized pieces, not full-size float copies."""
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    tracemalloc.start()
    try:
        if kind == "enhance":
            result = ve.enhance(tiny_model, img, scale, tile=128 // scale)
            size = result.nbytes
        else:
            samples, std = ve.variations(tiny_model, img, n=n, scale=scale, tile=128)
            size = samples.nbytes + std.nbytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    float_copy = shape[0] * shape[1] * scale**2 * 3 * 4 * n  # one float32 RGB copy of all the results
    assert peak < size + 8 * 2**20, (peak, size)
    assert peak < size + float_copy / 2
