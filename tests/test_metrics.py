"""Benchmark metrics: PSNR, BT.601 Y-PSNR with border crop, and SSIM on known cases."""

import math

import torch

from vae_enhance.metrics import psnr, psnr_y, rgb_to_y, ssim


def _img(seed=0, shape=(2, 3, 32, 32)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_psnr_of_a_constant_error():
    hq = _img() * 0.5
    for err in (0.1, 0.01):
        expected = 10 * math.log10(1 / err**2)
        torch.testing.assert_close(psnr(hq + err, hq), torch.full((2,), expected), atol=1e-3, rtol=0)


def test_psnr_is_per_image_and_ignores_the_border():
    hq = _img()
    out = hq.clone()
    out[1, :, :2] += 0.3  # damage only the top two rows of the second image
    scores = psnr(out, hq)
    assert scores[1] < scores[0]
    assert psnr(out, hq, border=2)[1] > 150  # identical once the border is cropped


def test_y_of_black_and_white():
    y = rgb_to_y(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))
    torch.testing.assert_close(y[:, 0, 0, 0], torch.tensor([16.0, 235.0]), atol=1e-3, rtol=0)


def test_psnr_y_ignores_chroma_only_changes():
    hq = _img() * 0.5 + 0.25
    # A change orthogonal to the Y weights leaves luma unchanged.
    w = torch.tensor([65.481, 128.553, 24.966])
    d = torch.tensor([1.0, 0.0, 0.0]) - w[0] / w.dot(w) * w
    out = hq + 0.05 * d[None, :, None, None] / d.abs().max()
    assert (psnr_y(out, hq) > 80).all()
    assert (psnr(out, hq) < 40).all()


def test_ssim():
    hq = _img()
    torch.testing.assert_close(ssim(hq, hq), torch.ones(2), atol=1e-5, rtol=0)
    noise = torch.randn(hq.shape, generator=torch.Generator().manual_seed(1))
    slightly, badly = ssim(hq + 0.05 * noise, hq), ssim(hq + 0.3 * noise, hq)
    assert (badly < slightly).all() and (slightly < 0.99).all()
