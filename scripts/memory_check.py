"""Peak memory and time of enhance() and variations() on large photos, each case in a fresh process.

    python scripts/memory_check.py                     # bundled weights, 3840x2160 and 4000x3000, n=4
    python scripts/memory_check.py --model runs/x --cases 4k-enhance --tile 512

Each case runs in its own subprocess so that ru_maxrss (the high-water mark of the resident set) belongs
to that case alone. "base" is the RSS after importing torch, loading the model and making the photo;
"peak" is the high-water mark after the call; "extra" = peak - base is what the call itself needed.
The photo is uint8 RGB noise (the network's cost does not depend on the content), made without float
temporaries so that making it does not set the high-water mark.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = {
    "4k-enhance": (2160, 3840, "enhance", 1),
    "12mp-enhance": (3000, 4000, "enhance", 1),
    "4k-variations4": (2160, 3840, "variations", 4),
    "12mp-variations4": (3000, 4000, "variations", 4),
}

_PROBE = """
import json, resource, time
import numpy as np, torch
import vae_enhance as ve

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

model = ve.load_model({model!r}, device="cpu")
img = np.random.default_rng(0).integers(0, 256, ({h}, {w}, 3), dtype=np.uint8)
base = rss_mb()
t0 = time.perf_counter()
if {kind!r} == "enhance":
    out = ve.enhance(model, img, 1, tile={tile!r})
else:
    out, std = ve.variations(model, img, n={n}, temperature=1.0, seed=0, tile={tile!r})
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"base_mb": base, "peak_mb": peak, "seconds": seconds, "shape": list(out.shape),
                  "threads": torch.get_num_threads()}}))
"""


def measure(case: str, model: str | None, tile: int | None) -> dict:
    """Run one case in a fresh interpreter; returns base/peak RSS in MB, seconds and the output shape."""
    h, w, kind, n = CASES[case]
    code = _PROBE.format(model=model, h=h, w=w, kind=kind, n=n, tile=tile)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder or Hub repo id (default: bundled weights)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--tile", type=int, default=None, help="tile size in input pixels (default: automatic)")
    args = parser.parse_args(argv)
    print("| case | input | output | base RSS MB | peak RSS MB | extra MB | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        h, w, _, _ = CASES[case]
        r = measure(case, args.model, args.tile)
        extra = r["peak_mb"] - r["base_mb"]
        shape = "x".join(map(str, r["shape"]))
        figures = f"{r['base_mb']:.0f} | {r['peak_mb']:.0f} | {extra:.0f} | {r['seconds']:.1f}"
        print(f"| {case} | {w}x{h} | {shape} | {figures} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
