"""scripts/calibrate_prior.py: the release's calibration step, end to end on a tiny model and a synthetic folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import write_folder

import vae_enhance as ve
from vae_enhance.hub import save_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import calibrate_prior  # noqa: E402


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["calibrate_prior.py", *args])
    calibrate_prior.main()


def test_writes_the_same_weights_with_the_chosen_scale(tmp_path, monkeypatch, capsys, tiny_model):
    train = write_folder(tmp_path / "train", count=18, size=(32, 48))  # 16 held out, as a run splits them
    save_model(tiny_model, tmp_path / "model")
    run(monkeypatch, str(tmp_path / "model"), "--out", str(tmp_path / "cal"), "--train", str(train),
        "--target-std", "0.01", "--candidates", "0.5,0.3")  # fmt: skip
    calibrated = ve.load_model(tmp_path / "cal", device="cpu")
    assert calibrated.config.prior_scale == 0.3  # the smaller one already spreads that far
    for key, value in tiny_model.state_dict().items():
        assert calibrated.state_dict()[key].equal(value)
    assert "prior scale 0.3:" in capsys.readouterr().out
    assert torch.is_grad_enabled()  # the script leaves the process as it found it


def test_a_target_out_of_reach_is_a_message_and_writes_nothing(tmp_path, monkeypatch, tiny_model):
    train = write_folder(tmp_path / "train", count=18, size=(32, 48))
    save_model(tiny_model, tmp_path / "model")
    with pytest.raises(SystemExit, match="narrower than wanted"):
        run(monkeypatch, str(tmp_path / "model"), "--out", str(tmp_path / "cal"), "--train", str(train),
            "--target-std", "1000", "--candidates", "0.5")  # fmt: skip
    assert not (tmp_path / "cal").exists()
