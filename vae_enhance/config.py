"""Typed, validated configuration for the model, saved beside the weights as config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

FORMAT_VERSION = 2
# Versions this release reads: version 1 configs lack the fields added in 2 and get their defaults,
# which rebuild the version-1 network exactly.
READABLE_VERSIONS = (1, 2)
SCALES = (1, 2, 4)
LATENT_STRIDES = (4, 8)
# Upper bounds of the integer fields, checked before a model is built from a config.json, which may come
# from anyone: the largest config allowed makes a model of 107 M parameters (430 MB), never more. The
# base preset (64/128/256 wide, 2/2/4 blocks, 8 latent channels: 12.5 M parameters) sits well inside.
FIELD_LIMITS = {"widths": 384, "blocks": 6, "latent_channels": 64, "posterior_width": 256}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the conditional VAE.

    widths:         channels at 1/2, 1/4 and 1/8 of the working resolution (the pixel-unshuffle stem
                    starts at 1/2, so no convolution runs at full resolution).
    blocks:         residual blocks per level in the prior network (the decoder mirrors it).
    latent_channels: channels of the spatial latent z.
    latent_stride:  z lives at 1/latent_stride of the working resolution: 8, or 4 for finer detail.
    posterior_width: channels of the posterior network q(z | lq, hq), used in training only.
    scales:         the scales this model was trained for (1 = denoise, 2 and 4 = super-resolve).
    noise_input:    the model takes an optional noise level (the strength control); without one it
                    judges the noise itself (blind), as every model without this input does.
    noise_estimator: a small network that measures a photo's noise level, so that "automatic" means
                    "measured over the whole photo, then told" rather than blind (needs noise_input).
    sr_estimators:  a noise estimator of its own for each upscaling scale (needs noise_estimator): a
                    photo to upscale is small and most often clean, and the denoising estimator reads
                    its fine texture as noise; the denoising estimator is left as it is.
    luma_estimator: the denoising estimator also reads grey grain with a reader of its own (model.LumaReader)
                    and reports the larger reading (needs noise_estimator).
    prior_scale:    sampling multiplies the prior's std by this, so temperature 1 draws from the
                    calibrated prior (flow models sample at a reduced temperature for the same reason).
                    Chosen after training on held-out photos (scripts/calibrate_prior.py); training
                    ignores it, so a run started from calibrated weights needs calibrating again.
    format_version: bumped whenever the weights layout changes; loading refuses unknown versions.
    """

    widths: tuple[int, int, int] = (32, 64, 128)
    blocks: tuple[int, int, int] = (1, 1, 2)
    latent_channels: int = 4
    posterior_width: int = 32
    scales: tuple[int, ...] = SCALES
    latent_stride: int = 8
    noise_input: bool = False
    noise_estimator: bool = False
    sr_estimators: bool = False
    luma_estimator: bool = False
    prior_scale: float = 1.0
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare and hash.
        for name in ("widths", "blocks", "scales"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        _check_limits(self)
        if self.format_version not in READABLE_VERSIONS:
            raise ValueError(
                f"model config has format_version {self.format_version}, this vae-enhance reads "
                f"versions {READABLE_VERSIONS}: upgrade vae-enhance or re-export the weights"
            )
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {self.widths}")
        if len(self.blocks) != 3 or min(self.blocks) < 0:
            raise ValueError(f"blocks must be three non-negative counts, got {self.blocks}")
        if self.latent_channels < 1 or self.posterior_width < 1:
            raise ValueError("latent_channels and posterior_width must be at least 1")
        if not self.scales or not set(self.scales) <= set(SCALES):
            raise ValueError(f"scales must be a non-empty subset of {SCALES}, got {self.scales}")
        if self.latent_stride not in LATENT_STRIDES:
            raise ValueError(f"latent_stride must be one of {LATENT_STRIDES}, got {self.latent_stride}")
        for name in ("noise_input", "noise_estimator", "sr_estimators", "luma_estimator"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        scale = self.prior_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 4:
            raise ValueError(f"prior_scale must be a number in (0, 4], got {scale!r}")
        object.__setattr__(self, "prior_scale", float(scale))
        if self.noise_estimator and not self.noise_input:
            raise ValueError("noise_estimator needs noise_input: the measured level is told to the network")
        if self.sr_estimators and not self.noise_estimator:
            raise ValueError("sr_estimators needs noise_estimator: they start from it and stand beside it")
        if self.luma_estimator and not self.noise_estimator:
            raise ValueError("luma_estimator needs noise_estimator: its reading stands beside that one's")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config has unknown fields {sorted(unknown)}: is it from a newer vae-enhance?")
        return cls(**data)


def _check_limits(config: ModelConfig) -> None:
    """Each integer field is a whole number no larger than its FIELD_LIMITS entry."""
    for name, top in FIELD_LIMITS.items():
        value = getattr(config, name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, int) or v > top:
                raise ValueError(f"{name} must be whole numbers of at most {top}, got {value!r}")


# Presets for `vae-enhance train --preset`. tiny trains in seconds on a CPU (tests); small is the
# release shape, sized so that CPU inference stays faster than OpenCV's non-local means (512 x 512 in
# about 16 GMAC); small-v1 is the shape of the v0.1 weights; base is a GPU shape.
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        widths=(8, 12, 16),
        blocks=(0, 0, 1),
        latent_channels=2,
        posterior_width=8,
        latent_stride=4,
        noise_input=True,
        noise_estimator=True,
    ),
    "small": ModelConfig(
        widths=(32, 64, 128), blocks=(1, 2, 3), latent_channels=4, posterior_width=32, latent_stride=4, noise_input=True
    ),
    "small-v1": ModelConfig(widths=(32, 64, 128), blocks=(1, 1, 2), latent_channels=4, posterior_width=32),
    "base": ModelConfig(
        widths=(64, 128, 256),
        blocks=(2, 2, 4),
        latent_channels=8,
        posterior_width=64,
        latent_stride=4,
        noise_input=True,
    ),
}
