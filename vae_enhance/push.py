"""`vae-enhance push`: publish a weights folder to a Hugging Face Hub model repo, with a generated model card.

The folder is loaded strictly first, so broken weights are never published. The token is the usual
huggingface_hub one (`hf auth login`, or HF_TOKEN); HF_ENDPOINT points at another Hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vae_enhance.hub import (
    BUNDLED,
    CONFIG_NAME,
    WEIGHTS_NAME,
    file_sha256,
    hub_endpoint,
    load_from_files,
    offline_mode,
)
from vae_enhance.modelcard import METRICS_NAME, render_card

CARD_NAME = "README.md"


class PushError(ValueError):
    """The upload could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str  # the sha to pin: load_model(repo_id, revision=commit)
    url: str


def push(
    repo_id: str,
    weights: str | os.PathLike = BUNDLED,
    private: bool = False,
    commit_message: str | None = None,
) -> PushResult:
    """Create `repo_id` if needed and commit config.json, model.safetensors, the model card (and metrics.json)."""
    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    folder = Path(weights).expanduser()
    if not folder.is_dir():
        raise PushError(f"{folder}: no such folder; --weights takes a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    model = load_from_files(folder / CONFIG_NAME, folder / WEIGHTS_NAME, str(folder))
    card = render_card(repo_id, model, folder)
    if offline_mode():
        raise PushError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    token = get_token()
    if token is None:
        raise PushError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN to a write token")

    operations = [
        CommitOperationAdd(path_in_repo=CONFIG_NAME, path_or_fileobj=str(folder / CONFIG_NAME)),
        CommitOperationAdd(path_in_repo=WEIGHTS_NAME, path_or_fileobj=str(folder / WEIGHTS_NAME)),
        CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode()),
    ]
    if (folder / METRICS_NAME).is_file():  # the card's figures, machine-readable
        operations.append(CommitOperationAdd(path_in_repo=METRICS_NAME, path_or_fileobj=str(folder / METRICS_NAME)))
    params = sum(p.numel() for p in model.parameters())
    digest = file_sha256(folder / WEIGHTS_NAME)
    message = commit_message or f"Upload vae-enhance weights ({params:,} parameters, {WEIGHTS_NAME} sha256 {digest})"

    api = HfApi(endpoint=hub_endpoint(), token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)  # None: account default
        info = api.create_commit(repo_id, operations, commit_message=message, repo_type="model")
    except HFValidationError as err:
        raise PushError(f"{repo_id!r} is not a valid Hub repo id like 'user/name' ({err})") from None
    except ValueError as err:  # e.g. the Hub rejected the card's metadata
        raise PushError(f"pushing to {repo_id!r} failed: {err}") from None
    except OfflineModeIsEnabled:
        raise PushError("HF_HUB_OFFLINE is set: unset it to push to the Hub") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise PushError(
                f"the Hub refused to write to {repo_id!r} (HTTP {status}): use a token with write access to that "
                "user or organisation (`hf auth login`, or HF_TOKEN)"
            ) from None
        raise PushError(f"pushing to {repo_id!r} failed: {err}") from None
    except httpx2.TransportError as err:
        raise PushError(f"could not reach the Hub to push {repo_id!r} ({type(err).__name__}: {err})") from None
    return PushResult(repo_id=repo_id, commit=info.oid, url=info.commit_url)


def format_result(result: PushResult) -> str:
    """What the CLI prints: the commit sha first, then how to pin it."""
    return (
        f"pushed {result.repo_id} at commit {result.commit}\n"
        f"  {result.url}\n"
        f"pin it: vae-enhance enhance --model {result.repo_id}@{result.commit} ...\n"
        f"        ve.load_model({result.repo_id!r}, revision={result.commit!r})\n"
        f"        VAE_ENHANCE_MODEL={result.repo_id}@{result.commit} streamlit run app.py"
    )
