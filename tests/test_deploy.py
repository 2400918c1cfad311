"""A public deployment: the operator's settings, threads from the CPU quota, bounded configs and weights, devices."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vae_enhance as ve
from vae_enhance.cli import main
from vae_enhance.config import FIELD_LIMITS, ModelConfig
from vae_enhance.hub import CONFIG_NAME, WEIGHTS_NAME, check_device, save_model, weights_bytes_limit
from vae_enhance.settings import DEFAULT_MAX_JOBS, Settings, cpu_quota, thread_count

ROOT = Path(__file__).resolve().parent.parent


def test_settings_default_to_a_closed_model_choice():
    settings = Settings.read({})
    assert settings == Settings(threads=None, max_jobs=DEFAULT_MAX_JOBS, models=(), default_model="")
    assert settings.model_choices() == [""] and not settings.allow_any_model


def test_settings_from_environment_then_secrets():
    env = {"VAE_ENHANCE_MAX_JOBS": "3", "VAE_ENHANCE_MODEL": "me/model@abc"}
    secrets = {"VAE_ENHANCE_MAX_JOBS": 9, "VAE_ENHANCE_MODELS": ["me/other@def", "me/model@abc"], "X": 1}
    settings = Settings.read(env, secrets)
    assert settings.max_jobs == 3  # the environment comes first
    assert settings.models == ("me/other@def", "me/model@abc")  # a TOML list from the secrets
    assert settings.model_choices() == ["me/model@abc", "", "me/other@def"]  # default first, no repeats
    assert Settings.read({"VAE_ENHANCE_MODELS": "a/b@1, runs/mine\nc/d"}).models == ("a/b@1", "runs/mine", "c/d")
    assert Settings.read({}, {"VAE_ENHANCE_ALLOW_ANY_MODEL": True}).allow_any_model
    assert Settings.read({"VAE_ENHANCE_THREADS": "3"}).threads == 3


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("VAE_ENHANCE_MAX_JOBS", "0", "at least 1"),
        ("VAE_ENHANCE_MAX_JOBS", "two", "whole number"),
        ("VAE_ENHANCE_THREADS", "-1", "at least 1"),
        ("VAE_ENHANCE_ALLOW_ANY_MODEL", "maybe", "true or false"),
    ],
)
def test_bad_settings_say_which_and_what(name, value, says):
    with pytest.raises(ValueError, match=rf"{name}.*{says}"):
        Settings.read({name: value})


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_cpu_quota_from_cgroup_v2_and_v1(tmp_path):
    assert cpu_quota(_cgroup(tmp_path / "a", {"cpu.max": "150000 100000\n"})) == 1.5
    assert cpu_quota(_cgroup(tmp_path / "b", {"cpu.max": "max 100000\n"})) is None
    v1 = {"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert cpu_quota(_cgroup(tmp_path / "c", v1)) == 0.5
    unlimited = {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    assert cpu_quota(_cgroup(tmp_path / "d", unlimited)) is None
    assert cpu_quota(tmp_path / "missing") is None


def test_threads_follow_the_quota_unless_set(tmp_path):
    quota = _cgroup(tmp_path / "q", {"cpu.max": "150000 100000\n"})  # 1.5 CPUs
    assert thread_count(None, available=16, root=quota) == 2  # not the 16 cores torch sees
    assert thread_count(None, available=1, root=quota) == 1  # never more than torch would use
    assert thread_count(None, available=16, root=tmp_path / "none") == 16  # no quota: torch's own count
    assert thread_count(4, available=16, root=quota) == 4  # the setting wins


def test_config_fields_are_bounded():
    for name, top in FIELD_LIMITS.items():
        default = getattr(ModelConfig(), name)
        too_big = tuple(top + 1 for _ in default) if isinstance(default, tuple) else top + 1
        with pytest.raises(ValueError, match=rf"{name} must be whole numbers of at most {top}"):
            ModelConfig(**{name: too_big})
    with pytest.raises(ValueError, match="latent_channels"):
        ModelConfig(latent_channels="4")
    largest = ModelConfig(**{n: (top,) * 3 if n in ("widths", "blocks") else top for n, top in FIELD_LIMITS.items()})
    assert weights_bytes_limit(largest) < 500e6  # the largest model a config can ask for


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**config, **changes}))


def test_hostile_configs_are_refused_before_building(tmp_path, tiny_model):
    folder = save_model(tiny_model, tmp_path / "m")
    _edit_config(folder, widths=[100_000, 100_000, 100_000])
    with pytest.raises(ve.ModelLoadError, match="widths must be whole numbers of at most"):
        ve.load_model(folder, device="cpu")
    (folder / CONFIG_NAME).write_text(json.dumps({"widths": [8, 12, 16], "pad": "x" * 100_000}))
    with pytest.raises(ve.ModelLoadError, match="not a vae-enhance model config"):
        ve.load_model(folder, device="cpu")


def test_weights_larger_than_the_config_needs_are_not_read(tmp_path, tiny_model):
    folder = save_model(tiny_model, tmp_path / "m")
    state = load_file(str(folder / WEIGHTS_NAME))
    state["padding"] = torch.zeros(2_000_000)  # 8 MB the tiny config has no use for
    save_file(state, str(folder / WEIGHTS_NAME))
    with pytest.raises(ve.ModelLoadError, match=r"more than its config.json can need"):
        ve.load_model(folder, device="cpu")


def test_impossible_devices_are_refused():
    assert check_device(None).type in ("cpu", "cuda") and check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA GPU"):
            check_device("cuda")
        with pytest.raises(ve.ModelLoadError, match="no usable CUDA GPU"):
            ve.load_model(device="cuda")


@pytest.mark.parametrize("command", ["enhance", "eval", "train"])  # bench has no --device
def test_cli_exits_2_on_an_impossible_device(command, tmp_path, capsys):
    device = "cuda:7" if torch.cuda.is_available() else "cuda"
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    argv = {
        "enhance": ["enhance", str(ROOT / "examples" / "coffee_small.png"), "-o", str(tmp_path / "out")],
        "eval": ["eval", "--data", str(tmp_path), "--task", "denoise"],
        "train": ["train", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--steps", "1"],
    }[command]
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"vae-enhance {command}: error: device '{device}'", err), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_hub_weights_larger_than_the_config_needs_are_not_downloaded(tmp_path, monkeypatch, tiny_model):
    from huggingface_hub import constants
    from test_hub_loopback import FakeHub

    folder = save_model(tiny_model, tmp_path / "m")
    oversized = b"\0" * (weights_bytes_limit(tiny_model.config) + 1)
    fake = FakeHub()
    fake.add("tester/big", "c" * 40, {CONFIG_NAME: (folder / CONFIG_NAME).read_bytes(), WEIGHTS_NAME: oversized})
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    try:
        with pytest.raises(ve.ModelLoadError, match="tester/big.*more than its config.json can need"):
            ve.load_model("tester/big", device="cpu")
        assert not [path for method, path in fake.requests if method == "GET" and path.startswith("/blobs/")]
    finally:
        fake.close()
