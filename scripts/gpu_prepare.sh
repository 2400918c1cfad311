#!/usr/bin/env bash
# Get a GPU leg's luggage ready, here (CPU machine, package index reachable): kornia wheels for the
# GPU machine's Python 3.12 in .whl/, and the training images in .data/train (both git-ignored).
# T91's PNGs become lossless WebP (same pixels, 3 MB less) so that the repo, the wheels and the data
# stay under the 64 MiB a device call carries. Usage: bash scripts/gpu_prepare.sh [../shared/data/train]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/data/train}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl kornia==0.9.0 kornia_rs==0.2.0
rm -rf .data/train && mkdir -p .data/train
for d in "$src"/*/; do
  name=$(basename "$d")
  mkdir -p ".data/train/$name"
  cp "$d"/*.jpg ".data/train/$name/" 2>/dev/null || true
done
python3 - "$src" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src = Path(sys.argv[1])
for png in sorted(src.rglob("*.png")):
    out = Path(".data/train") / png.relative_to(src).with_suffix(".webp")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(png).save(out, "WEBP", lossless=True, quality=100, method=6)
    assert (Image.open(out).tobytes() == Image.open(png).convert(Image.open(out).mode).tobytes()), png
PY
echo "images: $(find .data/train -type f | wc -l)"
du -sh .whl .data
echo "tracked + untracked files that travel: $(git ls-files -co --exclude-standard -z | xargs -0 du -ck | tail -1)"
