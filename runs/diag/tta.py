"""Diagnostic (decides nothing): what an 8-fold flip/rotate self-ensemble adds, on CC15 and CBSD68 sigma 25."""
import sys
from pathlib import Path

import numpy as np
import torch

from vae_enhance.hub import load_model
from vae_enhance.image_io import read_image, to_float
from vae_enhance.inference import enhance, estimate_noise
from vae_enhance.metrics import psnr, to_tensor

torch.set_grad_enabled(False)
model = load_model(sys.argv[1] if len(sys.argv) > 1 else "weights", device="cpu")


def ens(lq, level, folds=8):
    acc = 0.0
    for k in range(folds):
        t = np.rot90(lq, k % 4)
        if k >= 4:
            t = t[:, ::-1]
        out = to_float(enhance(model, np.ascontiguousarray(t), 1, noise_level=level))
        if k >= 4:
            out = out[:, ::-1]
        acc = acc + np.rot90(out, -(k % 4))
    return acc / folds


rows = []
for path in sorted(Path("../shared/data/eval/CC15").glob("*_real.png")):
    lq = read_image(path)[..., :3]
    ref = to_tensor(to_float(read_image(str(path).replace("_real", "_mean"))[..., :3]))
    r = estimate_noise(model, lq)
    row = []
    for level in (r, 10):
        row.append(psnr(to_tensor(to_float(enhance(model, lq, 1, noise_level=level))), ref).item())
        row.append(psnr(to_tensor(np.clip(ens(lq, level), 0, 1).astype(np.float32)), ref).item())
        row.append(psnr(to_tensor(np.clip(ens(lq, level, 2), 0, 1).astype(np.float32)), ref).item())
    rows.append(row)
v = np.array(rows).mean(0)
print(f"CC15 auto: plain {v[0]:.3f} x8 {v[1]:.3f} x2 {v[2]:.3f}; told 10: plain {v[3]:.3f} x8 {v[4]:.3f} x2 {v[5]:.3f}", flush=True)

rows = []
for path in sorted(Path("../shared/data/eval/CBSD68").glob("*.png"))[:20]:
    hq = to_float(read_image(path)[..., :3]).astype(np.float32)
    np.random.seed(0)
    lq = (hq + np.random.normal(0, 25 / 255, hq.shape)).astype(np.float32)
    ref = to_tensor(hq)
    r = estimate_noise(model, lq)
    plain = np.clip(to_float(enhance(model, lq, 1, noise_level=r)), 0, 1)
    rows.append([psnr(to_tensor(plain.astype(np.float32)), ref).item(), psnr(to_tensor(np.clip(ens(lq, r), 0, 1).astype(np.float32)), ref).item()])
v = np.array(rows).mean(0)
print(f"CBSD68[:20] s25 auto: plain {v[0]:.3f} x8 {v[1]:.3f}", flush=True)
