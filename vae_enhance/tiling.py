"""Seamless tiled processing: split an input into overlapping tiles, run a function, paste the centres.

Pure function over tensors. Tiles start on multiples of `align` input pixels, so a function whose
internal grid is coarser than the pixels (the VAE's latent lives at 1/8) sees the same grid in every
tile, and noise drawn once for the whole image can be sliced per tile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TileFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_grid(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """The (y0, y1, x0, x1) cores that cover an h x w image with tiles of `tile` pixels."""
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


def tiled(
    fn: TileFn,
    x: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    align: int = 8,
    progress: Callable[[int, int], None] | None = None,
    paste: Callable[[torch.Tensor, tuple[int, int, int, int]], None] | None = None,
) -> torch.Tensor | None:
    """Apply `fn` to x (B, C, h, w) tile by tile; fn maps (B, C, th, tw) to (B', C', th*scale, tw*scale).

    fn also gets the tile's origin (y, x) in input pixels. `tile` and `overlap` are in input pixels and
    are rounded up to multiples of `align`; tile <= 0, or an image that fits in one tile, runs whole.
    The output is assembled on the CPU, so only one tile at a time lives on the device. With `paste`,
    each tile's centre goes to paste(centre, (y0, y1, x0, x1) in output pixels) instead, and tiled
    returns None: the caller stores the result in its own format without a full-size float copy.
    """
    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        out = fn(x, (0, 0)).cpu()
        if paste:
            paste(out, (0, h * scale, 0, w * scale))
            out = None
        if progress:
            progress(1, 1)
        return out
    tile, overlap = _round_up(tile, align), _round_up(max(overlap, 0), align)
    cores = tile_grid(h, w, tile)
    out = None
    for i, (y0, y1, x0, x1) in enumerate(cores):
        py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
        py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
        piece = fn(x[..., py0:py1, px0:px1], (py0, px0)).cpu()
        centre = piece[..., (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]
        if paste:
            paste(centre, (y0 * scale, y1 * scale, x0 * scale, x1 * scale))
        else:
            if out is None:
                out = piece.new_empty((*piece.shape[:-2], h * scale, w * scale))
            out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = centre
        if progress:
            progress(i + 1, len(cores))
    return out
