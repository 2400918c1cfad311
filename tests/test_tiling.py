"""Tiled processing equals untiled: exactly for pointwise functions, within 1/255 for the tiny model."""

import numpy as np
import pytest
import torch

import vae_enhance as ve
from vae_enhance import inference
from vae_enhance.tiling import tile_grid, tiled

SIZES = [(37, 53), (64, 40), (9, 100)]


def _x(h, w, batch=2):
    return torch.rand((batch, 3, h, w), generator=torch.Generator().manual_seed(h * 1000 + w))


def _upsample_nearest(t, origin):
    return t.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize(("fn", "scale"), [(lambda t, origin: t * 2 + 1, 1), (_upsample_nearest, 2)])
def test_pointwise_tiled_equals_untiled(h, w, fn, scale):
    x = _x(h, w)
    calls = []
    out = tiled(fn, x, scale, tile=16, overlap=8, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1] == len(calls)
    assert torch.equal(out, fn(x, (0, 0)))


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize(("tile", "overlap", "align"), [(16, 8, 8), (13, 5, 8), (12, 0, 4)])
def test_origin_is_correct_and_aligned(h, w, tile, overlap, align):
    x = _x(h, w, batch=1)
    origins = []

    def fn(t, origin):
        oy, ox = origin
        assert oy % align == 0 and ox % align == 0
        assert torch.equal(t, x[..., oy : oy + t.shape[-2], ox : ox + t.shape[-1]])
        origins.append(origin)
        return t.repeat(3, 1, 1, 1)  # more outputs than inputs, as variations() does

    out = tiled(fn, x, 1, tile, overlap, align=align)
    assert len(origins) > 1
    assert torch.equal(out, x.repeat(3, 1, 1, 1))


def test_grid_covers_image_once():
    cover = np.zeros((37, 53), int)
    for y0, y1, x0, x1 in tile_grid(37, 53, 16):
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("tile", [0, -1, 200])
def test_no_tiling_runs_once_whole(tile):
    x = _x(20, 30)
    seen = []
    out = tiled(lambda t, origin: seen.append(t.shape) or t + 1, x, 1, tile, overlap=8)
    assert seen == [x.shape] and torch.equal(out, x + 1)


# Images large enough that tiles plus the shipped overlap (64 output pixels) do not cover them,
# so the comparison really crosses tile seams.
MODEL_CASES = [(1, (150, 163), 24), (2, (77, 90), 16), (4, (40, 45), 8)]


def _count_tiles(model, img, scale, tile):
    calls = []
    ve.enhance(model, img, scale, tile=tile, progress=lambda done, total: calls.append(total))
    return calls[-1]


@pytest.mark.parametrize(("scale", "size", "tile"), MODEL_CASES)
def test_enhance_tiled_within_1_255_of_untiled(tiny_model, scale, size, tile):
    img = np.random.default_rng(scale).random((*size, 3), dtype=np.float32)
    whole = ve.enhance(tiny_model, img, scale, tile=0)
    tiles = ve.enhance(tiny_model, img, scale, tile=tile)
    assert _count_tiles(tiny_model, img, scale, tile) > 4
    assert np.abs(tiles - whole).max() <= 1 / 255


@pytest.mark.parametrize(("scale", "size", "tile"), MODEL_CASES)
def test_variations_tiled_within_1_255_of_untiled(tiny_model, scale, size, tile):
    img = np.random.default_rng(scale).random((*size, 3), dtype=np.float32)
    whole, whole_std = ve.variations(tiny_model, img, n=2, scale=scale, temperature=1.0, seed=5, tile=0)
    tiles, tiles_std = ve.variations(tiny_model, img, n=2, scale=scale, temperature=1.0, seed=5, tile=tile)
    assert np.abs(tiles - whole).max() <= 1 / 255
    assert np.abs(tiles_std - whole_std).max() <= 1 / 255
    assert whole_std.max() > 0.01  # the samples really differ, so the noise slicing is exercised


def test_too_little_overlap_would_show_seams(tiny_model, monkeypatch):
    """Guards the two tests above: with a tiny overlap the same comparison fails."""
    img = np.random.default_rng(0).random((64, 70, 3), dtype=np.float32)
    whole = ve.enhance(tiny_model, img, 1, tile=0)
    monkeypatch.setattr(inference, "OVERLAP_OUTPUT", 8)
    assert np.abs(ve.enhance(tiny_model, img, 1, tile=16) - whole).max() > 1 / 255
