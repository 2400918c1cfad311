"""Quality metrics of the benchmark protocol, per image, on float tensors (B, 3, H, W) in [0, 1]."""

from __future__ import annotations

import kornia
import numpy as np
import torch

# ITU-R BT.601 luma on the 0-255 scale, as in the SR literature (MATLAB's rgb2ycbcr).
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def to_tensor(rgb: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(H, W, 3) RGB array -> (1, 3, H, W) tensor of `dtype` (float64 by default, for exact scores)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(dtype)[None]


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) BT.601 Y in [16, 235]."""
    w = img.new_tensor(_Y_WEIGHTS)[None, :, None, None]
    return 16.0 + (img * w).sum(dim=1, keepdim=True)


def _crop(img: torch.Tensor, border: int) -> torch.Tensor:
    return img[..., border:-border, border:-border] if border > 0 else img


def psnr(out: torch.Tensor, hq: torch.Tensor, border: int = 0, max_val: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, (B,); `border` pixels are cropped from every side first."""
    mse = (_crop(out, border) - _crop(hq, border)).double().pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(max_val**2 / mse.clamp_min(1e-20))).float()


def psnr_y(out: torch.Tensor, hq: torch.Tensor, border: int = 0) -> torch.Tensor:
    """PSNR on BT.601 Y (0-255 scale), the SR protocol's figure, per image."""
    return psnr(rgb_to_y(out), rgb_to_y(hq), border=border, max_val=255.0)


def ssim(out: torch.Tensor, hq: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Mean SSIM (11x11 Gaussian window) per image, over RGB."""
    ssim_map = kornia.metrics.ssim(_crop(out, border), _crop(hq, border), window_size=11, max_val=1.0)
    return ssim_map.flatten(1).mean(dim=1)
