"""load_model from the Hub through the real huggingface_hub client, against a loopback server (no network).

FakeHub answers like the Hub's resolve endpoint: small files with a git-blob ETag, safetensors as an LFS
redirect to a separate "CDN" origin carrying X-Linked-Etag (sha256) and X-Linked-Size, X-Repo-Commit
everywhere, and the Hub's X-Error-Code answers for a missing repo, revision or file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from huggingface_hub import constants

import vae_enhance as ve
from vae_enhance.cli import main
from vae_enhance.config import PRESETS
from vae_enhance.hub import BUNDLED, CONFIG_NAME, WEIGHTS_NAME, save_model
from vae_enhance.model import VAEEnhancer

REPO = "tester/vae"
RELEASE, LATEST = "a" * 40, "b" * 40  # commit shas: the bundled weights, then a tiny model on main


def _serve(handler_cls) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class FakeHub:
    """repos: repo id -> {"refs": {branch: sha}, "commits": {sha: {filename: bytes}}}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.blobs: dict[str, bytes] = {}
        self.cdn = _serve(self._handler(self._answer_cdn))
        self.hub = _serve(self._handler(self._answer_hub))
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"

    def _handler(self, answer):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path))
                self._reply(*answer(unquote(self.path)), body=False)

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                self._reply(*answer(unquote(self.path)), body=True)

            def _reply(self, status, headers, data, body):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def add(self, repo: str, sha: str, files: dict[str, bytes], branch: str | None = "main") -> None:
        entry = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        entry["commits"][sha] = files
        if branch:
            entry["refs"][branch] = sha

    def _answer_hub(self, path: str):
        parts = path.lstrip("/").split("/", 4)
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b"not found"
        repo, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
        if repo not in self.repos:
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""
        entry = self.repos[repo]
        sha = entry["refs"].get(revision, revision)
        if sha not in entry["commits"]:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b""
        files = entry["commits"][sha]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, b""
        data = files[filename]
        if filename.endswith(".safetensors"):  # LFS: redirect to the CDN, metadata on the redirect itself
            digest = hashlib.sha256(data).hexdigest()
            self.blobs[digest] = data
            location = f"http://127.0.0.1:{self.cdn.server_address[1]}/blobs/{digest}"
            headers = {"Location": location, "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))}
            return 302, {**headers, "X-Repo-Commit": sha, "ETag": '"pointer"'}, b""
        git_sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return 200, {"ETag": f'"{git_sha}"', "X-Repo-Commit": sha}, data

    def _answer_cdn(self, path: str):
        data = self.blobs.get(path.rsplit("/", 1)[-1])
        return (200, {}, data) if data is not None else (404, {}, b"")

    def close(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in (CONFIG_NAME, WEIGHTS_NAME)}


@pytest.fixture(scope="module")
def bundled() -> VAEEnhancer:
    return ve.load_model(device="cpu")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    torch.manual_seed(1)
    return _files(save_model(VAEEnhancer(PRESETS["tiny"]), tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_files):
    """A loopback Hub with REPO: RELEASE = the bundled weights, main = LATEST = a tiny model; an empty cache."""
    fake = FakeHub()
    fake.add(REPO, RELEASE, _files(BUNDLED), branch=None)
    fake.add(REPO, LATEST, tiny_files)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest turns it on for the rest of the suite
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    # No user-agent telemetry: it would fetch a registry from huggingface.co on the first request.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    yield fake
    fake.close()


@pytest.fixture
def img() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def test_pinned_pull_matches_bundled(hub, bundled, img, tmp_path):
    model = ve.load_model(REPO, revision=RELEASE, device="cpu")
    assert model.config == bundled.config
    for key, value in bundled.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    np.testing.assert_array_equal(ve.enhance(model, img, 1), ve.enhance(bundled, img, 1))
    np.testing.assert_array_equal(ve.enhance(model, img, 2), ve.enhance(bundled, img, 2))
    assert model.origin == f"Hub repo {REPO} at commit {RELEASE[:12]}"
    # Downloaded into the standard cache layout, the weights through the CDN redirect.
    snapshot = tmp_path / "hf-cache" / "models--tester--vae" / "snapshots" / RELEASE
    assert sorted(p.name for p in snapshot.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    assert any(path.startswith("/blobs/") for method, path in hub.requests if method == "GET")
    # The pin matters: main is another model, and "repo@sha" is the same as revision=sha.
    assert ve.load_model(REPO, device="cpu").config == PRESETS["tiny"]
    again = ve.load_model(f"{REPO}@{RELEASE}", device="cpu")
    assert again.config == bundled.config and torch.equal(again.decoder.out.weight, bundled.decoder.out.weight)


def test_cached_pin_needs_no_network(hub):
    ve.load_model(REPO, revision=RELEASE, device="cpu")
    hub.requests.clear()
    ve.load_model(REPO, revision=RELEASE, device="cpu")
    assert hub.requests == []


def test_offline_reload_from_cache_says_so(hub, bundled, img, monkeypatch, caplog):
    first = ve.load_model(REPO, device="cpu")  # main: a branch, so online it is always asked for
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="vae_enhance.hub"):
        model = ve.load_model(REPO, device="cpu")
    assert hub.requests == []
    assert "loaded from the local cache (HF_HUB_OFFLINE is set)" in caplog.text and REPO in caplog.text
    np.testing.assert_array_equal(ve.enhance(model, img, 1), ve.enhance(first, img, 1))
    with pytest.raises(ve.ModelLoadError, match=rf"{REPO}.*not in the local cache.*HF_HUB_OFFLINE"):
        ve.load_model(REPO, revision=RELEASE, device="cpu")


def test_unreachable_hub_falls_back_to_cache(hub, img, caplog):
    first = ve.load_model(REPO, device="cpu")
    hub.close()  # nothing listens on the port any more
    with caplog.at_level(logging.WARNING, logger="vae_enhance.hub"):
        model = ve.load_model(REPO, device="cpu")
    assert "loaded from the local cache (the Hub is unreachable" in caplog.text
    np.testing.assert_array_equal(ve.enhance(model, img, 1), ve.enhance(first, img, 1))
    with pytest.raises(ve.ModelLoadError, match=r"not in the local cache.*unreachable"):
        ve.load_model("tester/other", device="cpu")


def test_missing_repo(hub):
    with pytest.raises(ve.ModelLoadError, match=r"'nobody/nothing' not found.*HF_TOKEN"):
        ve.load_model("nobody/nothing", device="cpu")


def test_unknown_revision(hub):
    with pytest.raises(ve.ModelLoadError, match=rf"'{REPO}' has no revision 'v9'"):
        ve.load_model(f"{REPO}@v9", device="cpu")


@pytest.mark.parametrize("present", [CONFIG_NAME, WEIGHTS_NAME])
def test_missing_file(hub, tiny_files, present):
    hub.add("tester/half", "c" * 40, {present: tiny_files[present]})
    missing = WEIGHTS_NAME if present == CONFIG_NAME else CONFIG_NAME
    with pytest.raises(ve.ModelLoadError, match=rf"'tester/half'.* has no {missing}"):
        ve.load_model("tester/half", device="cpu")


def test_pickle_only_repo_is_refused(hub, tiny_files, tiny_model, tmp_path):
    torch.save(tiny_model.state_dict(), tmp_path / "pytorch_model.bin")
    files = {CONFIG_NAME: tiny_files[CONFIG_NAME], "pytorch_model.bin": (tmp_path / "pytorch_model.bin").read_bytes()}
    hub.add("tester/pickle", "d" * 40, files)
    with pytest.raises(ve.ModelLoadError, match="has no model.safetensors.*only safetensors"):
        ve.load_model("tester/pickle", device="cpu")
    assert not any("pytorch_model.bin" in path for _, path in hub.requests)


def test_unknown_format_version(hub, tiny_files):
    config = {**json.loads(tiny_files[CONFIG_NAME]), "format_version": 999}
    hub.add("tester/future", "e" * 40, {**tiny_files, CONFIG_NAME: json.dumps(config).encode()})
    with pytest.raises(ve.ModelLoadError, match=r"'tester/future'.*format_version 999"):
        ve.load_model("tester/future", device="cpu")


def test_truncated_weights_on_the_hub(hub, tiny_files):
    hub.add("tester/cut", "f" * 40, {**tiny_files, WEIGHTS_NAME: tiny_files[WEIGHTS_NAME][:-100]})
    with pytest.raises(ve.ModelLoadError, match=r"'tester/cut'.*damaged"):
        ve.load_model("tester/cut", device="cpu")


def test_tampered_cache_is_caught(hub, tmp_path):
    ve.load_model(REPO, device="cpu")
    blob = (tmp_path / "hf-cache" / "models--tester--vae" / "snapshots" / LATEST / WEIGHTS_NAME).resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # a weight's last byte: the safetensors header is intact
    blob.write_bytes(bytes(data))
    with pytest.raises(ve.ModelLoadError, match=r"does not match the Hub's checksum.*delete"):
        ve.load_model(REPO, revision=LATEST, device="cpu")


def test_tampered_local_weights_are_caught(tmp_path, tiny_model):
    folder = save_model(tiny_model, tmp_path / "model")
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0x01
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ve.ModelLoadError, match="tampered"):
        ve.load_model(folder, device="cpu")


def test_non_finite_weights_are_refused(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    folder = save_model(tiny_model, tmp_path / "model")
    state = load_file(str(folder / WEIGHTS_NAME))
    state["decoder.out.bias"][0] = float("nan")
    save_file(state, str(folder / WEIGHTS_NAME))  # no checksum: only the NaN check can see it
    with pytest.raises(ve.ModelLoadError, match=r"NaN or infinite values in \['decoder.out.bias'\]"):
        ve.load_model(folder, device="cpu")


def test_parse_source():
    assert ve.hub.parse_source("user/name@abc") == ("user/name", "abc")
    assert ve.hub.parse_source(" user/name ") == ("user/name", None)
    assert ve.hub.parse_source("") == (None, None)
    with pytest.raises(ve.ModelLoadError, match="needs a Hub repo id"):
        ve.hub.parse_source("@abc")


def test_cli_model_option_pulls_pinned_revision(hub, bundled, tmp_path, img, monkeypatch):
    ve.write_image(tmp_path / "in.png", img)
    assert main(["enhance", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", f"{REPO}@{RELEASE}"]) == 0
    np.testing.assert_array_equal(ve.read_image(tmp_path / "out" / "in_denoised.png"), ve.enhance(bundled, img, 1))
    # $VAE_ENHANCE_MODEL is the default when --model is not given.
    monkeypatch.setenv(ve.hub.MODEL_ENV, "nobody/nothing")
    assert main(["enhance", str(tmp_path / "in.png"), "-o", str(tmp_path / "out2")]) == 2
