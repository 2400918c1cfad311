"""Loading weights: the bundled weights/ folder, a save_pretrained directory, or a Hugging Face Hub repo.

Only config.json and model.safetensors are ever read (never a pickle), and weights load strictly:
a missing, extra or reshaped tensor is an error rather than a silently random layer. A checksum in the
safetensors header (written by save_model) and, for Hub downloads, the Hub's own sha256 of the file catch a
weights file that was damaged or tampered with after it was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vae_enhance.config import ModelConfig
from vae_enhance.model import VAEEnhancer

BUNDLED = Path(__file__).resolve().parent.parent / "weights"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
# A config.json is a few hundred bytes; anything much larger is not one, and is not read.
MAX_CONFIG_BYTES = 64 * 1024
# Room in a weights file beyond its tensors' bytes: the safetensors header (names, shapes, metadata).
HEADER_ALLOWANCE = 1 << 20
# Key in the safetensors header metadata holding the sha256 of the tensors (see _tensor_digest).
DIGEST_KEY = "vae_enhance.sha256"

log = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """Weights could not be found or read; the message names the source and what to do."""


# Environment variable (also read from Streamlit secrets by the app) naming the model to serve.
MODEL_ENV = "VAE_ENHANCE_MODEL"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def parse_source(text: str | None) -> tuple[str | None, str | None]:
    """'user/name@rev' -> ('user/name', 'rev'); a folder or 'user/name' -> (text, None); ''/None -> bundled."""
    text = (text or "").strip()
    if not text:
        return None, None
    if "@" in text and not Path(text).expanduser().exists():
        source, revision = text.rsplit("@", 1)
        if not source.strip():
            raise ModelLoadError(f"{text!r}: a revision needs a Hub repo id before it, like 'user/name@{revision}'")
        return source.strip(), revision.strip() or None
    return text, None


def default_source() -> tuple[str | None, str | None]:
    """The model to use when none is named: $VAE_ENHANCE_MODEL if set, else the bundled weights."""
    return parse_source(os.environ.get(MODEL_ENV))


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | torch.device | None) -> torch.device:
    """The device to run on, if this machine has it (None or '': CUDA when available, else the CPU).

    Raises ValueError saying what is missing, rather than letting torch fail later with an assertion.
    """
    if device is None or device == "":
        return default_device()
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for, but this machine has no usable CUDA GPU (or torch is a CPU "
                "build): use 'cpu', or leave the device out"
            )
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif found.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: Apple's MPS is not available here; use 'cpu'")
    elif found.type != "cpu":
        raise ValueError(f"device {device!r} is not supported: use 'cpu' or 'cuda'")
    return found


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since (e.g. from Streamlit secrets)."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str | None:
    """HF_ENDPOINT read now rather than at import, so a mirror set after start-up is honoured."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or None


def _unreachable(repo_id: str, revision: str | None) -> str | None:
    """Ask the Hub for config.json's metadata: None if it answered, else why it could not be reached.

    hf_hub_download falls back to the cache silently when the Hub is down; asking first lets load_model say so.
    Answers such as "no such repo" are raised, to be mapped to a ModelLoadError by the caller.
    """
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    url = hf_hub_url(repo_id, CONFIG_NAME, revision=revision, endpoint=hub_endpoint())
    try:
        get_hf_file_metadata(url)
    except (httpx2.TransportError, OfflineModeIsEnabled) as err:
        return f"the Hub is unreachable: {type(err).__name__}"
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code >= 500:
            return f"the Hub answered HTTP {err.response.status_code}"
        raise
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hub_checksum(path: Path, repo_id: str) -> None:
    """The cache names each large file's blob by the sha256 the Hub reported: the bytes must match it."""
    blob = path.resolve()
    if not _SHA256.fullmatch(blob.name):
        return  # a git blob id (small file) or a cache without symlinks: nothing to compare with
    if file_sha256(blob) != blob.name:
        raise ModelLoadError(
            f"Hub repo {repo_id!r}: the cached {path.name} does not match the Hub's checksum (damaged or "
            f"tampered with); delete {blob} and load again to download it afresh"
        )


def _hub_files(repo_id: str, revision: str | None) -> tuple[Path, Path]:
    """Download (or find in the standard cache) config.json and model.safetensors of a Hub repo."""
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision!r}" if revision else ""
    name, why_cached = CONFIG_NAME, None
    try:
        pinned_and_cached = bool(revision and _COMMIT.fullmatch(revision)) and all(
            isinstance(try_to_load_from_cache(repo_id, n, revision=revision), str) for n in (CONFIG_NAME, WEIGHTS_NAME)
        )
        # A cached commit never changes, so it needs no network; anything else asks the Hub first.
        if offline_mode():
            why_cached = "HF_HUB_OFFLINE is set"
        elif not pinned_and_cached:
            why_cached = _unreachable(repo_id, revision)

        def download(filename: str) -> Path:
            local_only = why_cached is not None
            found = hf_hub_download(
                repo_id, filename, revision=revision, endpoint=hub_endpoint(), local_files_only=local_only
            )
            return Path(found)

        config_path = download(CONFIG_NAME)
        # The config is checked, and the weights' size with it, before the weights are downloaded: a repo
        # cannot make this server fetch or build more than a bounded config allows.
        config = read_config(config_path, f"Hub repo {repo_id!r}")
        name = WEIGHTS_NAME
        if why_cached is None and not pinned_and_cached:  # else the local file's size is checked
            url = hf_hub_url(repo_id, WEIGHTS_NAME, revision=revision, endpoint=hub_endpoint())
            size = get_hf_file_metadata(url).size
            if size is not None:
                _check_weights_size(size, config, f"Hub repo {repo_id!r}")
        weights_path = download(WEIGHTS_NAME)
    except HFValidationError as err:
        raise ModelLoadError(f"{repo_id!r} is not a valid Hub repo id like 'user/name' ({err})") from None
    except RevisionNotFoundError:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} has no revision {revision!r}: use a branch, tag or commit sha that exists "
            "(`vae-enhance push` prints the sha to pin)"
        ) from None
    except RemoteEntryNotFoundError:
        raise ModelLoadError(
            f"Hub repo {repo_id!r}{at} has no {name}: a vae-enhance model needs {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(only safetensors weights are loaded); publish one with `vae-enhance push`"
        ) from None
    except GatedRepoError:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} is gated: request access on its page, then log in (`hf auth login`) or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} not found (nor a local folder of that name); if the repo is private, "
            "log in with `hf auth login` or set HF_TOKEN"
        ) from None
    except LocalEntryNotFoundError:
        raise ModelLoadError(
            f"Hub repo {repo_id!r}{at} (no local folder has that name): {name} is not in the local cache and "
            f"cannot be downloaded ({why_cached or 'the Hub is unreachable'}); connect once to download it, "
            "or use a local folder or the bundled weights"
        ) from None
    except (HfHubHTTPError, OSError, httpx2.TransportError) as err:  # e.g. the Hub went away mid-load
        raise ModelLoadError(f"could not download Hub repo {repo_id!r}{at}: {err}") from None
    _check_hub_checksum(weights_path, repo_id)
    if why_cached:
        log.warning("Hub repo %r%s loaded from the local cache (%s)", repo_id, at, why_cached)
    return config_path, weights_path


def _tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(model: VAEEnhancer, out_dir: str | os.PathLike) -> Path:
    """Write config.json and model.safetensors (contiguous CPU tensors, with a checksum) to out_dir; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_NAME), metadata={"format": "pt", DIGEST_KEY: _tensor_digest(state)})
    (out_dir / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return out_dir


def _read_weights(weights_path: Path, source: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, checked against the checksum in its header when it has one."""
    try:
        with safe_open(str(weights_path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except FileNotFoundError:
        raise ModelLoadError(f"{source}: no {WEIGHTS_NAME} (only safetensors weights are loaded)") from None
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ModelLoadError(f"{source}: {WEIGHTS_NAME} is damaged or not safetensors ({err})") from None
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and expected != _tensor_digest(state):
        raise ModelLoadError(
            f"{source}: {WEIGHTS_NAME} is damaged or was tampered with (its tensors do not match the checksum "
            "in its header); get a fresh copy"
        )
    bad = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ModelLoadError(
            f"{source}: {WEIGHTS_NAME} holds NaN or infinite values in {bad[:3]} (a diverged training run or a "
            "damaged file); use another checkpoint"
        )
    return state


def read_config(config_path: Path, source: str) -> ModelConfig:
    """The validated ModelConfig of a config.json (every field bounded), before anything is built from it."""
    try:
        size = Path(config_path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelLoadError(f"{source}: {CONFIG_NAME} is {size} bytes, not a vae-enhance model config")
        return ModelConfig.from_dict(json.loads(Path(config_path).read_text()))
    except FileNotFoundError:
        raise ModelLoadError(f"{source}: no {CONFIG_NAME}; is it a directory written by save_pretrained?") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as err:
        raise ModelLoadError(f"{source}: {CONFIG_NAME} is not a valid model config ({err})") from None
    except ModelLoadError:
        raise
    except ValueError as err:
        raise ModelLoadError(f"{source}: {err}") from None


def weights_bytes_limit(config: ModelConfig) -> int:
    """The largest model.safetensors this config can need: float32 tensors plus the header."""
    with torch.device("meta"):  # shapes only: nothing is allocated
        state = VAEEnhancer(config).state_dict()
    return sum(t.numel() * 4 for t in state.values()) + HEADER_ALLOWANCE


def _check_weights_size(size: int, config: ModelConfig, source: str) -> None:
    limit = weights_bytes_limit(config)
    if size > limit:
        raise ModelLoadError(
            f"{source}: {WEIGHTS_NAME} is {size / 1e6:.1f} MB, more than its {CONFIG_NAME} can need "
            f"({limit / 1e6:.1f} MB): not the weights of this model"
        )


def load_from_files(config_path: Path, weights_path: Path, source: str) -> VAEEnhancer:
    """Build the model from config.json and load model.safetensors strictly, on the CPU."""
    config = read_config(config_path, source)
    if Path(weights_path).is_file():
        _check_weights_size(Path(weights_path).stat().st_size, config, source)
    model = VAEEnhancer(config)
    state = _read_weights(Path(weights_path), source)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelLoadError(f"{source}: weights do not match the config ({err})") from None
    return model


def _looks_like_repo_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and "\\" not in source


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
    `vae-enhance train --out`, or a Hub repo id "user/name" (pin `revision` to a commit sha; "user/name@sha"
    says the same in one string). Hub files go through the standard huggingface_hub cache; offline
    (HF_HUB_OFFLINE=1, or the Hub unreachable) they load from that cache, with a logged warning.
    The returned model's `origin` attribute says in words where it came from.
    """
    try:
        device = check_device(device)  # before any download: a missing GPU is known at once
    except ValueError as err:
        raise ModelLoadError(str(err)) from None
    if isinstance(source, str) and revision is None:
        source, revision = parse_source(source)
    if source is None:
        source = BUNDLED
    path = Path(source).expanduser()
    if path.is_dir():
        model = load_from_files(path / CONFIG_NAME, path / WEIGHTS_NAME, str(path))
        origin = "bundled weights" if path.resolve() == BUNDLED else f"folder {path}"
    elif isinstance(source, str) and _looks_like_repo_id(source):
        config_path, weights_path = _hub_files(source, revision)
        model = load_from_files(config_path, weights_path, f"Hub repo {source!r}")
        # The cache keeps each file under snapshots/<commit sha>/, the revision actually loaded.
        origin = f"Hub repo {source} at commit {config_path.parent.name[:12]}"
    else:
        raise ModelLoadError(f"{source}: not a model directory nor a Hub repo id like 'user/name'")
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ModelLoadError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}")
    # channels_last runs the convolutions about 20% faster on the CPU (`vae-enhance bench`) and is
    # what the training uses on CUDA.
    model = model.to(device, dtype, memory_format=torch.channels_last).eval().requires_grad_(False)
    model.origin = origin
    return model
