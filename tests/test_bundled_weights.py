"""The bundled weights: they restore (beat the noisy input and bicubic), reproduce their recorded figures
(weights/regression.json, a guard for every weights change), and tile without seams at their real
receptive field."""

import json

import numpy as np
import pytest

import vae_enhance as ve
from vae_enhance.hub import BUNDLED
from vae_enhance.regression import FIGURES_NAME, PHOTO, figures


@pytest.fixture(scope="module")
def bundled():
    return ve.load_model(device="cpu")


@pytest.fixture(scope="module")
def measured(bundled):
    return figures(bundled)


def test_figures_match_the_ones_recorded_with_the_weights(measured):
    recorded = json.loads((BUNDLED / FIGURES_NAME).read_text())
    assert measured.keys() == recorded.keys()
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, abs=0.02), f"{key}: run python -m vae_enhance.regression --write"


def test_the_weights_restore(measured):
    assert measured["denoise_sigma25"] > measured["denoise_sigma25_input"] + 6
    for scale in (2, 4):
        assert measured[f"sr_x{scale}"] > measured[f"sr_x{scale}_input"]


@pytest.mark.parametrize(("scale", "tile"), [(1, 64), (2, 40), (4, 24)])
def test_tiles_leave_no_seams(bundled, scale, tile):
    img = ve.read_image(PHOTO)[: 192 // scale, : 256 // scale]
    whole = ve.enhance(bundled, img, scale, tile=0).astype(np.int16)
    tiled = ve.enhance(bundled, img, scale, tile=tile).astype(np.int16)
    assert np.abs(whole - tiled).max() <= 1  # within 1/255, as the API promises
