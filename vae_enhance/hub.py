"""Loading weights: the bundled weights/ folder, a save_pretrained directory, or a Hugging Face Hub repo.

Only config.json and model.safetensors are ever read (never a pickle), and weights load strictly:
a missing, extra or reshaped tensor is an error rather than a silently random layer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vae_enhance.config import ModelConfig
from vae_enhance.model import VAEEnhancer

BUNDLED = Path(__file__).resolve().parent.parent / "weights"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class ModelLoadError(ValueError):
    """Weights could not be found or read; the message names the source and what to do."""


# Environment variable (also read from Streamlit secrets by the app) naming the model to serve.
MODEL_ENV = "VAE_ENHANCE_MODEL"


def parse_source(text: str | None) -> tuple[str | None, str | None]:
    """'user/name@rev' -> ('user/name', 'rev'); a folder or 'user/name' -> (text, None); ''/None -> bundled."""
    text = (text or "").strip()
    if not text:
        return None, None
    if "@" in text and not Path(text).exists():
        source, revision = text.rsplit("@", 1)
        return source, revision or None
    return text, None


def default_source() -> tuple[str | None, str | None]:
    """The model to use when none is named: $VAE_ENHANCE_MODEL if set, else the bundled weights."""
    return parse_source(os.environ.get(MODEL_ENV))


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _hub_files(repo_id: str, revision: str | None) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        paths = [Path(hf_hub_download(repo_id, name, revision=revision)) for name in (CONFIG_NAME, WEIGHTS_NAME)]
    except RepositoryNotFoundError:
        raise ModelLoadError(f"Hub repo {repo_id!r} not found (or private: log in or set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"Hub repo {repo_id!r} has no revision {revision!r}") from None
    except EntryNotFoundError as err:
        raise ModelLoadError(f"Hub repo {repo_id!r} lacks a file this model needs ({err})") from None
    except (HfHubHTTPError, OSError) as err:
        raise ModelLoadError(f"could not download {repo_id!r} from the Hub: {err}") from None
    return paths[0], paths[1]


def save_model(model: VAEEnhancer, out_dir: str | os.PathLike) -> Path:
    """Write config.json and model.safetensors (contiguous CPU tensors) to out_dir; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_NAME), metadata={"format": "pt"})
    (out_dir / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return out_dir


def load_from_files(config_path: Path, weights_path: Path, source: str) -> VAEEnhancer:
    """Build the model from config.json and load model.safetensors strictly, on the CPU."""
    try:
        config = ModelConfig.from_dict(json.loads(Path(config_path).read_text()))
    except FileNotFoundError:
        raise ModelLoadError(f"{source}: no {CONFIG_NAME}; is it a directory written by save_pretrained?") from None
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelLoadError(f"{source}: {CONFIG_NAME} is not a valid model config ({err})") from None
    except ValueError as err:
        raise ModelLoadError(f"{source}: {err}") from None
    model = VAEEnhancer(config)
    try:
        state = load_file(str(weights_path), device="cpu")
    except FileNotFoundError:
        raise ModelLoadError(f"{source}: no {WEIGHTS_NAME} (only safetensors weights are loaded)") from None
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{source}: {WEIGHTS_NAME} is damaged or not safetensors ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelLoadError(f"{source}: weights do not match the config ({err})") from None
    return model


def load_model(
    source: str | os.PathLike | None = None,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> VAEEnhancer:
    """Load a model for inference, in eval mode on `device` (CUDA when present by default).

    dtype: float32 by default; torch.bfloat16 is an opt-in (faster on some hardware, measured by
    `vae-enhance bench`); inputs are cast to it and outputs come back as float32.

    source: None for the bundled weights/ (no network), a directory written by save_pretrained or
    `vae-enhance train --out`, or a Hub repo id "user/name" (pin `revision` to a commit sha).
    """
    if source is None:
        source = BUNDLED
    path = Path(source)
    if path.is_dir():
        model = load_from_files(path / CONFIG_NAME, path / WEIGHTS_NAME, str(path))
    elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
        config_path, weights_path = _hub_files(source, revision)
        model = load_from_files(config_path, weights_path, f"Hub repo {source!r}")
    else:
        raise ModelLoadError(f"{source}: not a model directory nor a Hub repo id like 'user/name'")
    try:
        device = torch.device(device) if device is not None else default_device()
    except RuntimeError as err:
        raise ModelLoadError(f"unknown device {device!r} ({err}); use 'cpu' or 'cuda'") from None
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ModelLoadError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}")
    return model.to(device, dtype).eval().requires_grad_(False)
