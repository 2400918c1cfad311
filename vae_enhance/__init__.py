"""vae-enhance: photo denoising and super-resolution with a conditional VAE.

import vae_enhance as ve
model = ve.load_model()                 # bundled weights/, no network
img = ve.read_image("photo.jpg")
out = ve.enhance(model, img, scale=2)   # noise_level=None: measured (ve.estimate_noise), or set it
samples, std = ve.variations(model, img, n=8, temperature=1.0, seed=0)
ve.write_image("out.png", out)
"""

from vae_enhance.config import ModelConfig
from vae_enhance.hub import ModelLoadError, load_model
from vae_enhance.image_io import ImageError, read_image, write_image
from vae_enhance.inference import enhance, estimate_noise, variations
from vae_enhance.model import VAEEnhancer

__version__ = "0.3.0"

__all__ = [
    "ImageError",
    "ModelConfig",
    "ModelLoadError",
    "VAEEnhancer",
    "enhance",
    "estimate_noise",
    "load_model",
    "read_image",
    "variations",
    "write_image",
]
