"""Training data: image folders decoded once into memory, random crops and flips on the training device."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from vae_enhance.image_io import READ_EXTENSIONS, ImageError, from_float, read_image, to_float


def list_images(root: str | Path) -> list[Path]:
    """Every image file below `root`, sorted, so that a split is the same on every machine."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--data {root}: no such folder; point it at a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in READ_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"--data {root}: no images ({', '.join(READ_EXTENSIONS)}) found below it")
    return paths


def split(paths: list[Path], val_count: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold out `val_count` images (chosen by seed) for validation; the rest train."""
    if len(paths) < 2:
        raise ValueError(f"need at least 2 images to hold one out for validation, found {len(paths)}")
    val_count = min(max(val_count, 1), len(paths) - 1)
    order = list(paths)
    random.Random(seed).shuffle(order)
    return sorted(order[val_count:]), sorted(order[:val_count])


def load_rgb8(path: Path) -> torch.Tensor:
    """One image as a uint8 (3, H, W) tensor: gray is repeated, alpha dropped, 16-bit rounded."""
    img = read_image(path)
    if img.dtype != np.uint8:
        img = from_float(to_float(img), np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(img[..., :3].transpose(2, 0, 1)))


def load_images(paths: list[Path], min_size: int, device: torch.device) -> list[torch.Tensor]:
    """Decode every image once onto `device`, skipping unreadable ones and ones smaller than min_size."""
    images = []
    for path in paths:
        try:
            img = load_rgb8(path)
        except ImageError:
            continue
        if min(img.shape[-2:]) >= min_size:
            images.append(img.to(device))
    if not images:
        raise ValueError(f"no readable training image is at least {min_size} px a side; lower --patch")
    return images


class CropSampler:
    """Random square crops (patch x patch unless asked for larger) with random flips and 90-degree
    rotations, as float (B, 3, P, P)."""

    def __init__(self, images: list[torch.Tensor], patch: int, generator: torch.Generator):
        self.images, self.patch, self.generator = images, patch, generator
        # Sample images in proportion to their area, so large photos are not under-used.
        self.weights = torch.tensor([float(im.shape[-1] * im.shape[-2]) for im in images])
        self._side_weights = {patch: self.weights}

    def _weights_for(self, side: int) -> torch.Tensor:
        """The sampling weights for `side` px crops: the images too small for them get none (cached per side)."""
        if side not in self._side_weights:
            fits = torch.tensor([float(min(im.shape[-2:]) >= side) for im in self.images])
            if not fits.any():
                raise ValueError(f"no training image is at least {side} px a side; lower --sr-lq-patch")
            self._side_weights[side] = self.weights * fits
        return self._side_weights[side]

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self, batch: int, side: int = 0) -> torch.Tensor:
        """`batch` crops of `side` px (default: the sampler's patch), from the images at least that large."""
        side = side or self.patch
        picks = torch.multinomial(self._weights_for(side), batch, replacement=True, generator=self.generator)
        crops = []
        for i in picks.tolist():
            img = self.images[i]
            y = self._randint(img.shape[-2] - side + 1)
            x = self._randint(img.shape[-1] - side + 1)
            crop = img[:, y : y + side, x : x + side]
            if self._randint(2):
                crop = crop.flip(-1)
            crops.append(torch.rot90(crop, self._randint(4), dims=(-2, -1)))
        return torch.stack(crops).float() / 255.0
