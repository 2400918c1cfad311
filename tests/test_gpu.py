"""CUDA paths: bf16 + channels_last training and CUDA inference; skipped on machines without a GPU."""

import numpy as np
import pytest
import torch

import vae_enhance as ve
from vae_enhance.cli import main
from vae_enhance.config import PRESETS
from vae_enhance.hub import save_model
from vae_enhance.model import VAEEnhancer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_train_on_cuda_writes_loadable_weights(train_data, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", str(train_data), "--out", str(out), "--steps", "4", "--preset", "tiny"]
    argv += ["--batch", "2", "--patch", "32", "--val-every", "2", "--val-count", "1", "--device", "cuda"]
    assert main(argv) == 0
    model = ve.load_model(out, device="cuda")
    assert next(model.parameters()).is_cuda


def test_cuda_inference_matches_cpu(tmp_path):
    save_model(VAEEnhancer(PRESETS["tiny"]), tmp_path)
    img = np.random.default_rng(0).random((37, 50, 3), dtype=np.float32)
    cpu = ve.enhance(ve.load_model(tmp_path, device="cpu"), img, 2)
    gpu = ve.enhance(ve.load_model(tmp_path, device="cuda"), img, 2)
    assert np.abs(cpu - gpu).max() < 2e-3  # TF32/cuDNN kernels differ from the CPU's in the last bits
