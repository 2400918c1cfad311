#!/usr/bin/env bash
# One training leg on a lent GPU machine (torch with CUDA, no kornia, no network, 10 minutes a call,
# files of at most 16 MiB back). Run by the device tool in the repo root with .whl and .data carried:
#   bash scripts/gpu_leg.sh NAME [train options...]
# It trains for at most LEG_MINUTES (default 8.5), then copies the weights, log and curves (not the
# checkpoint, which with its optimiser state can pass 16 MiB) to $OUT/NAME. A leg is a whole run: its
# cosine schedule ends inside the call; --init warm-starts it from the weights of an earlier leg.
# Rehearse on the CPU: OUT=/tmp/gpu-out LEG_MINUTES=0.5 bash scripts/gpu_leg.sh rehearsal --device cpu ...
set -euo pipefail
name=$1; shift
out=${OUT:?set OUT to the folder the files go back in}/$name
if ! python3 -c "import kornia" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
mkdir -p "$out"
rm -rf /tmp/leg
python3 -m vae_enhance train --data .data/train --out /tmp/leg --time-limit "${LEG_MINUTES:-8.5}" "$@" 2>&1 \
  | tr '\r' '\n' | grep -vE "it/s|s/it" | tee "$out/train.txt"
cp /tmp/leg/{config.json,model.safetensors,log.csv,curves.png,train_config.json} "$out/"
ls -la "$out"
