"""`vae-enhance push` through the real HfApi, with huggingface_hub's HTTP client on a mock transport.

MockHub records every request and answers like the Hub: create repo (409 when it exists), YAML validation,
preupload (every file "regular", so its bytes travel inside the commit) and commit (a fixed sha).
"""

from __future__ import annotations

import base64
import json

import httpx2
import huggingface_hub
import pytest
import yaml
from huggingface_hub import constants
from huggingface_hub.utils._http import default_client_factory
from safetensors.torch import load_file

import vae_enhance as ve
from vae_enhance.cli import main
from vae_enhance.hub import CONFIG_NAME, WEIGHTS_NAME, save_model
from vae_enhance.modelcard import METRICS_NAME, MetricsError, render_card
from vae_enhance.push import PushError, push

ENDPOINT, TOKEN, COMMIT = "https://hub.test", "hf_test_token", "c0ffee" + "0" * 34
METRICS = {
    "CBSD68": {"denoise_sigma15": 31.25, "denoise_sigma50": 24.5},
    "CC15": {"denoise_real": 36.5},
    "Set5": {"sr_x2": 33.75},
}


class MockHub:
    def __init__(self, repo_exists: bool = False, status: int = 200) -> None:
        self.repo_exists, self.status = repo_exists, status
        self.requests: list[httpx2.Request] = []
        self.url = f"{ENDPOINT}/user/model"

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path
        if self.status != 200:
            return httpx2.Response(self.status, json={"error": "You don't have the rights"})
        if path == "/api/repos/create":
            if self.repo_exists:
                return httpx2.Response(409, json={"error": "You already created this model repo", "url": self.url})
            return httpx2.Response(200, json={"url": self.url})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return httpx2.Response(200, json={"files": modes})
        if "/commit/" in path:
            return httpx2.Response(200, json={"commitOid": COMMIT, "commitUrl": f"{self.url}/commit/{COMMIT}"})
        return httpx2.Response(404)

    def calls(self, fragment: str) -> list[httpx2.Request]:
        return [r for r in self.requests if fragment in r.url.path]

    def committed(self) -> tuple[dict, dict[str, bytes]]:
        """(commit header, {path in repo: bytes}) of the one commit sent."""
        (request,) = self.calls("/commit/")
        lines = [json.loads(line) for line in request.content.decode().splitlines()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        files = {
            line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"
        }
        return header, files


@pytest.fixture
def mock_hub(monkeypatch, tmp_path):
    def install(**kwargs) -> MockHub:
        hub = MockHub(**kwargs)
        huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub)))
        return hub

    monkeypatch.setenv("HF_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    # No user-agent telemetry: it would fetch a registry from huggingface.co on the first request.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    yield install
    huggingface_hub.set_client_factory(default_client_factory)


@pytest.fixture
def weights(tmp_path, tiny_model):
    folder = save_model(tiny_model, tmp_path / "weights")
    (folder / METRICS_NAME).write_text(json.dumps(METRICS))
    return folder


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_push_sends_weights_card_and_metadata(mock_hub, weights, capsys):
    hub = mock_hub()
    assert main(["push", "--repo-id", "user/model", "--weights", str(weights), "--private"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pushed user/model at commit {COMMIT}") and f"user/model@{COMMIT}" in out

    (create,) = hub.calls("/api/repos/create")
    assert json.loads(create.content) == {
        "name": "model",
        "organization": "user",
        "visibility": "private",
        "type": "model",
    }
    writes = [r for r in hub.requests if r.method == "POST"]
    assert len(writes) == 4 and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in writes)
    assert hub.calls("/commit/")[0].url.path == "/api/models/user/model/commit/main"

    header, files = hub.committed()
    assert sorted(files) == sorted([CONFIG_NAME, WEIGHTS_NAME, "README.md", METRICS_NAME])
    assert files[CONFIG_NAME] == (weights / CONFIG_NAME).read_bytes()
    assert files[WEIGHTS_NAME] == (weights / WEIGHTS_NAME).read_bytes()
    assert json.loads(files[METRICS_NAME]) == METRICS
    assert "sha256" in header["summary"] and "vae-enhance" in header["summary"]

    card = files["README.md"].decode()
    meta = _front_matter(card)
    assert meta["library_name"] == "vae-enhance" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "image-to-image" and "super-resolution" in meta["tags"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "user/model"
    got = {(r["dataset"]["name"], r["dataset"]["config"]): r["metrics"][0]["value"] for r in entry["results"]}
    assert got == {
        ("CBSD68", "sigma15"): 31.25,
        ("CBSD68", "sigma50"): 24.5,
        ("CC15", "real"): 36.5,
        ("Set5", "x2"): 33.75,
    }
    assert "| CBSD68 | 31.25 | 24.50 |  |" in card and "| CC15 |  |  | 36.50 |" in card and "| Set5 | 33.75 |" in card
    assert 've.load_model("user/model"' in card


def test_push_to_existing_repo_and_custom_message(mock_hub, weights):
    hub = mock_hub(repo_exists=True)
    result = push("user/model", weights, commit_message="retrained for 40k steps")
    assert result.commit == COMMIT
    assert json.loads(hub.calls("/api/repos/create")[0].content).get("visibility") is None  # account default
    header, _ = hub.committed()
    assert header["summary"] == "retrained for 40k steps"


def test_card_keeps_the_folders_own_readme(weights, tiny_model):
    (weights / "README.md").write_text("---\nlicense: other\n---\n\n# Release notes\n\nMeasured on CBSD68.\n")
    card = render_card("user/model", tiny_model, weights)
    assert _front_matter(card)["license"] == "mit" and "model-index" in _front_matter(card)
    assert card.endswith("---\n\n# Release notes\n\nMeasured on CBSD68.\n") and "license: other" not in card


def test_card_without_metrics_claims_no_figures(weights, tiny_model):
    (weights / METRICS_NAME).unlink()
    card = render_card("user/model", tiny_model, weights)
    assert "model-index" not in _front_matter(card) and "No measured figures" in card
    assert _front_matter(card)["pipeline_tag"] == "image-to-image"


@pytest.mark.parametrize(
    ("metrics", "message"),
    [({"CBSD68": {"psnr": 30.0}}, "CBSD68.psnr: metric names"), ({"Set5": {"sr_x2": "high"}}, "must be a number")],
)
def test_bad_metrics_file(mock_hub, weights, metrics, message):
    hub = mock_hub()
    (weights / METRICS_NAME).write_text(json.dumps(metrics))
    with pytest.raises(MetricsError, match=message):
        push("user/model", weights)
    assert hub.requests == []


def test_not_logged_in(mock_hub, weights, monkeypatch, capsys):
    hub = mock_hub()
    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", "--repo-id", "user/model", "--weights", str(weights)]) == 2
    assert "hf auth login" in capsys.readouterr().err
    assert hub.requests == []


def test_token_without_write_access(mock_hub, weights):
    mock_hub(status=403)
    with pytest.raises(PushError, match=r"refused to write to 'user/model' \(HTTP 403\).*write access"):
        push("user/model", weights)


def test_broken_weights_are_not_pushed(mock_hub, weights):
    hub = mock_hub()
    data = (weights / WEIGHTS_NAME).read_bytes()
    (weights / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ve.ModelLoadError, match="damaged"):
        push("user/model", weights)
    with pytest.raises(PushError, match="no such folder"):
        push("user/model", weights / "missing")
    assert hub.requests == []


def test_offline_refuses_to_push(mock_hub, weights, monkeypatch):
    hub = mock_hub()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push("user/model", weights)
    assert hub.requests == []
    assert load_file(str(weights / WEIGHTS_NAME))  # the folder itself is untouched
