"""scripts/average_models.py: how v0.13 was made from P4 and v0.12, on tiny models."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

import vae_enhance as ve
from vae_enhance.config import PRESETS
from vae_enhance.hub import save_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import average_models  # noqa: E402


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["average_models.py", *args])
    average_models.main()


def other(model: ve.VAEEnhancer, prior_scale: float) -> ve.VAEEnhancer:
    """The same network with other weights and another prior scale."""
    torch.manual_seed(1)
    second = ve.VAEEnhancer(dataclasses.replace(model.config, prior_scale=prior_scale)).eval()
    return second.requires_grad_(False)


def test_each_tensor_is_the_weighted_mean_and_the_first_config_is_kept(tmp_path, monkeypatch, tiny_model):
    second = other(tiny_model, prior_scale=0.3)
    save_model(tiny_model, tmp_path / "a")
    save_model(second, tmp_path / "b")
    run(monkeypatch, str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "mix"), "--weight", "0.25")
    mixed = ve.load_model(tmp_path / "mix", device="cpu")
    assert mixed.config == tiny_model.config
    a, b, m = tiny_model.state_dict(), second.state_dict(), mixed.state_dict()
    moved = 0
    for key, value in m.items():
        torch.testing.assert_close(value, 0.75 * a[key] + 0.25 * b[key])
        moved += not value.equal(a[key])
    assert moved > len(m) // 2  # the two really differ, so the test can fail


def test_different_networks_are_refused(tmp_path, monkeypatch, tiny_model):
    save_model(tiny_model, tmp_path / "a")
    wider = dataclasses.replace(PRESETS["tiny"], widths=tuple(2 * w for w in PRESETS["tiny"].widths))
    save_model(ve.VAEEnhancer(wider), tmp_path / "b")
    with pytest.raises(SystemExit, match="not the same network"):
        run(monkeypatch, str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "mix"))
    assert not (tmp_path / "mix").exists()


def test_a_weight_outside_0_1_is_a_usage_error(tmp_path, monkeypatch, tiny_model, capsys):
    save_model(tiny_model, tmp_path / "a")
    with pytest.raises(SystemExit):
        run(monkeypatch, str(tmp_path / "a"), str(tmp_path / "a"), str(tmp_path / "mix"), "--weight", "1.5")
    assert "between 0 and 1" in capsys.readouterr().err
