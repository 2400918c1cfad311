"""Shared fixtures: a seeded tiny model, synthetic image folders and one tiny training run for the suite."""

from __future__ import annotations

import os

# No network for the Hub client, and one thread per process: the suite shares 2 cores with other work.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import copy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # plain `pytest` works without installing the package
    sys.path.insert(0, str(REPO))

import vae_enhance as ve  # noqa: E402
from vae_enhance.cli import main  # noqa: E402
from vae_enhance.config import PRESETS  # noqa: E402

TRAIN_ARGS = [
    "--preset",
    "tiny",
    "--batch",
    "2",
    "--patch",
    "32",
    "--val-every",
    "2",
    "--val-count",
    "1",
    "--device",
    "cpu",
]


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A uint8 RGB test photo: smooth gradients plus texture, so restorations are not trivial."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * (x + y))], axis=-1)
    img = 0.7 * base + 0.3 * rng.random((h, w, 3))
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)


def listening(model: ve.VAEEnhancer) -> ve.VAEEnhancer:
    """A copy of `model` whose noise-level input has weights (a new model's starts at zero: no effect)."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    for layer in (model.prior_net.level_embed.mlp[2], model.prior_net.level_embed.to3):
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    return model


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_model() -> ve.VAEEnhancer:
    """A randomly initialised (seeded) tiny model: prior logvar ~ 0, so samples really vary."""
    torch.manual_seed(0)
    return ve.VAEEnhancer(PRESETS["tiny"]).eval().requires_grad_(False)


def write_folder(folder: Path, count: int = 4, size: tuple[int, int] = (48, 48), seed: int = 0) -> Path:
    """`count` synthetic PNG photos of `size` (h, w) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(seed)
    for i in range(count):
        ve.write_image(folder / f"img{i}.png", photo(gen, *size))
    return folder


@pytest.fixture
def make_folder(tmp_path):
    """Factory: make_folder(name, count=4, size=(48, 48)) -> a folder of synthetic PNGs under tmp_path."""
    return lambda name="data", count=4, size=(48, 48), seed=0: write_folder(tmp_path / name, count, size, seed)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("train") / "data", count=4, size=(48, 48))


@pytest.fixture(scope="session")
def trained_dir(train_data, tmp_path_factory) -> Path:
    """OUT of one 4-step `vae-enhance train` run on tiny data (shared by the train and CLI tests)."""
    out = tmp_path_factory.mktemp("run") / "out"
    code = main(["train", "--data", str(train_data), "--out", str(out), "--steps", "4", *TRAIN_ARGS])
    assert code == 0
    return out
