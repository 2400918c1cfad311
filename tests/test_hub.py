"""Saving and strictly loading weights: identical round trips, and clear errors for every broken folder."""

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vae_enhance as ve
from vae_enhance.hub import CONFIG_NAME, WEIGHTS_NAME, save_model


@pytest.fixture
def saved(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "model")


def _rewrite_weights(folder, edit):
    state = load_file(str(folder / WEIGHTS_NAME))
    edit(state)
    save_file(state, str(folder / WEIGHTS_NAME))


def test_round_trip_gives_identical_outputs(saved, tiny_model):
    assert sorted(p.name for p in saved.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = ve.load_model(saved, device="cpu")
    assert loaded.config == tiny_model.config
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # load_model puts the weights in channels_last (faster on the CPU); the reference must use the same
    # layout, or the convolutions may differ in the last bit and flip a rounding.
    reference = copy.deepcopy(tiny_model).to(memory_format=torch.channels_last)
    img = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ve.enhance(loaded, img, 2), ve.enhance(reference, img, 2))
    a, _ = ve.variations(loaded, img, n=2, seed=1)
    b, _ = ve.variations(reference, img, n=2, seed=1)
    np.testing.assert_array_equal(a, b)


def test_save_pretrained_folder_loads(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "pretrained")
    loaded = ve.load_model(str(tmp_path / "pretrained"), device="cpu")
    assert torch.equal(loaded.decoder.out.weight, tiny_model.decoder.out.weight)


def test_missing_key(saved):
    _rewrite_weights(saved, lambda s: s.pop("decoder.out.bias"))
    with pytest.raises(ve.ModelLoadError, match="decoder.out.bias"):
        ve.load_model(saved, device="cpu")


def test_renamed_key(saved):
    _rewrite_weights(saved, lambda s: s.__setitem__("decoder.output.weight", s.pop("decoder.out.weight")))
    with pytest.raises(ve.ModelLoadError, match="do not match") as info:
        ve.load_model(saved, device="cpu")
    assert "decoder.out.weight" in str(info.value) and "decoder.output.weight" in str(info.value)


def test_wrong_shape(saved):
    _rewrite_weights(saved, lambda s: s.__setitem__("decoder.out.bias", torch.zeros(5)))
    with pytest.raises(ve.ModelLoadError, match="decoder.out.bias"):
        ve.load_model(saved, device="cpu")


def test_config_of_another_shape(saved):
    cfg = json.loads((saved / CONFIG_NAME).read_text())
    (saved / CONFIG_NAME).write_text(json.dumps({**cfg, "widths": [8, 12, 24]}))
    with pytest.raises(ve.ModelLoadError, match="do not match"):
        ve.load_model(saved, device="cpu")


def test_unknown_format_version(saved):
    cfg = json.loads((saved / CONFIG_NAME).read_text())
    (saved / CONFIG_NAME).write_text(json.dumps({**cfg, "format_version": 999}))
    with pytest.raises(ve.ModelLoadError, match="format_version 999"):
        ve.load_model(saved, device="cpu")


@pytest.mark.parametrize(
    ("text", "message"), [("{not json", "not a valid model config"), ('{"colour": 1}', "unknown fields")]
)
def test_bad_config(saved, text, message):
    (saved / CONFIG_NAME).write_text(text)
    with pytest.raises(ve.ModelLoadError, match=message):
        ve.load_model(saved, device="cpu")


@pytest.mark.parametrize("keep", [0.5, 0.99, 10])
def test_truncated_weights(saved, keep):
    data = (saved / WEIGHTS_NAME).read_bytes()
    (saved / WEIGHTS_NAME).write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(ve.ModelLoadError, match="damaged"):
        ve.load_model(saved, device="cpu")


def test_only_a_pickle(tmp_path, tiny_model):
    folder = tmp_path / "pickle"
    folder.mkdir()
    torch.save(tiny_model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ve.ModelLoadError, match=CONFIG_NAME):
        ve.load_model(folder, device="cpu")
    (folder / CONFIG_NAME).write_text(json.dumps(tiny_model.config.to_dict()))
    with pytest.raises(ve.ModelLoadError, match="only safetensors"):
        ve.load_model(folder, device="cpu")


def test_not_a_directory(tmp_path):
    with pytest.raises(ve.ModelLoadError, match="not a model directory"):
        ve.load_model(tmp_path / "nowhere", device="cpu")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ve.ModelLoadError, match="not a model directory"):
        ve.load_model(str(tmp_path / "file.txt"), device="cpu")


def test_unknown_device(saved):
    with pytest.raises(ve.ModelLoadError, match="device"):
        ve.load_model(saved, device="gpu0")


def test_model_load_error_is_value_error():
    assert issubclass(ve.ModelLoadError, ValueError)
