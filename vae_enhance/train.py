"""Training: the loop, optimiser, validation, logging and checkpoints (the model knows none of this).

Runs on one device, or on several under `torchrun` (DDP: NCCL on CUDA, gloo on CPU). On CUDA it uses
bf16 autocast and channels_last. `--out` ends up holding config.json + model.safetensors (the EMA
weights with the best validation score, loadable by load_model), checkpoint.pt (for --resume),
log.csv and curves.png.

A resumed run continues exactly where the checkpoint left it: model, EMA, optimiser, schedule and
every random generator are restored, so an interrupted run and an uninterrupted one give the same
weights (tests/test_train.py checks it).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from vae_enhance.config import PRESETS, ModelConfig
from vae_enhance.data import CropSampler, list_images, load_images, split
from vae_enhance.degrade import (
    Degradation,
    add_noise,
    camera_noise,
    degrade,
    downscale,
    grey_grain,
    quantize8,
    zoom_in,
)
from vae_enhance.hub import load_model, save_model
from vae_enhance.metrics import psnr, psnr_y
from vae_enhance.model import VAEEnhancer


@dataclass
class TrainConfig:
    """Everything a run needs besides the model shape; saved in checkpoint.pt and train_config.json."""

    data: str
    out: str
    steps: int = 20_000  # the whole campaign: the cosine schedule spans it, across resumes
    stop_at: int = 0  # end this leg at this step (checkpointed), 0 = at `steps`
    time_limit: float = 0.0  # end this leg after this many minutes (checkpointed), 0 = no limit
    preset: str = "small"
    shape: dict = field(default_factory=dict)  # ModelConfig fields that override the preset's
    init: str = (
        ""  # warm start: weights folders (comma-separated, later ones win) whose same-shaped tensors seed the model
    )
    batch: int = 16  # per process
    patch: int = 96  # hq crop side, a multiple of 32
    sr_lq_patch: int = 0  # SR crops: this lq side (hq = it x scale), so x4 inputs are not tiny; 0 = --patch
    lr: float = 5e-4
    weight_decay: float = 1e-4
    beta: float = 1e-3  # KL weight per latent element, against the per-pixel Charbonnier loss
    free_bits: float = 0.1  # nats per latent channel and position below which KL is not penalised
    kl_warmup: int = 2000  # steps over which beta ramps up from 0
    det_weight: float = 0.5  # weight of the loss on the temperature-0 output (z = prior mean)
    sample_weight: float = 1.0  # weight of the loss on the posterior sample (0 with beta 0: no latent)
    best_of: int = 0  # K prior samples per image whose best one is also scored (0 = off)
    best_of_weight: float = 0.5
    level_known: float = 0.5  # fraction of inputs whose noise level the model is told (noise_input models)
    over_tell: float = 0.0  # fraction of the told inputs told more than their level (see `over_tell`)
    over_tell_max: float = 2.0  # the most they are told: their level times this (plus OVER_TELL_MARGIN)
    estimator_only: bool = False  # train only the noise estimator (the rest from --init, frozen)
    luma_reader: bool = False  # train only the denoising estimator's grey-grain reader, on grey grain (zoomed crops)
    zoom_max: float = 3.0  # --luma-reader (and --smooth-fraction): crops zoomed up to this (degrade.zoom_in) ...
    zoom_fraction: float = 0.5  # ... on this fraction of them
    smooth_fraction: float = 0.0  # other runs: this fraction of the denoising crops zoomed up to zoom_max
    reading_weight: float = 0.0  # --estimator-only / --luma-reader: weight of the photo's pooled reading in the loss
    scales: tuple[int, ...] = (1, 1, 2, 4)  # cycled per step: denoising gets half the steps
    clean_fraction: float = 0.05
    sr_clean_fraction: float = 0.5
    sr_sigma_max: float = 55.0  # on the 0-255 scale
    camera_fraction: float = 0.0
    correlated_fraction: float = 0.0
    jpeg_fraction: float = 0.0
    luma_fraction: float = 0.0
    grey_fraction: float = 0.0
    zero_mean: bool = False  # camera noise without its tone-curve bias (degrade.unbias)
    edge_fraction: float = 0.0  # camera noise reduction that spares edges (degrade.spare_edges)
    blur_max: float = 0.0
    ema: float = 0.999
    val_every: int = 1000
    val_count: int = 16
    seed: int = 0
    device: str = ""  # "" = CUDA if available
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.patch % 32 or self.patch < 32:
            raise ValueError(f"--patch must be a multiple of 32 (>= 32), got {self.patch}")
        if self.sr_lq_patch < 0 or self.sr_lq_patch % 8:
            raise ValueError(f"--sr-lq-patch must be a multiple of 8 (0 = off), got {self.sr_lq_patch}")
        if min(self.steps, self.batch, self.val_every, self.log_every, self.val_count) < 1:
            raise ValueError("--steps, --batch, --val-every and --val-count must be at least 1")
        if self.stop_at < 0 or self.time_limit < 0:
            raise ValueError("--stop-at and --time-limit must be >= 0 (0 = none)")
        if self.best_of < 0 or not 0.0 <= self.level_known <= 1.0:
            raise ValueError("--best-of must be >= 0 and --level-known in [0, 1]")
        if not 0.0 <= self.over_tell <= 1.0 or self.over_tell_max < 1.0:
            raise ValueError("--over-tell must be in [0, 1] and --over-tell-max at least 1")
        if self.zoom_max < 1.0 or not 0.0 <= self.zoom_fraction <= 1.0:
            raise ValueError("--zoom-max must be at least 1 (1: no zoom) and --zoom-fraction in [0, 1]")
        if not 0.0 <= self.smooth_fraction <= 1.0 or (self.smooth_fraction and self.luma_reader):
            raise ValueError("--smooth-fraction must be in [0, 1], and is not for --luma-reader runs (--zoom-fraction)")
        if self.reading_weight < 0 or (self.reading_weight and not (self.estimator_only or self.luma_reader)):
            raise ValueError("--reading-weight must be >= 0, and is for --estimator-only or --luma-reader runs")
        self.scales = tuple(int(s) for s in self.scales)
        if not set(self.scales) <= set(self.model_config().scales):
            raise ValueError(f"--scales must be drawn from {self.model_config().scales}")
        self.degradation()  # validates the mix
        if self.estimator_only and not self.model_config().noise_estimator:
            raise ValueError(
                "--estimator-only needs a model with a noise estimator (--shape '{\"noise_estimator\": true}')"
            )
        if self.luma_reader and (self.estimator_only or self.scales != (1,) or not self.model_config().luma_estimator):
            raise ValueError(
                "--luma-reader trains alone (not with --estimator-only), at --scales 1, a model with a luma reader "
                '(--shape \'{"noise_estimator": true, "luma_estimator": true}\')'
            )

    def model_config(self) -> ModelConfig:
        """The preset, with `shape`'s fields replaced."""
        known = {f.name for f in fields(ModelConfig)} - {"format_version"}
        if set(self.shape) - known:
            raise ValueError(
                f"--shape sets unknown model fields {sorted(set(self.shape) - known)}; known: {sorted(known)}"
            )
        return replace(PRESETS[self.preset], **self.shape)

    def degradation(self) -> Degradation:
        return Degradation(
            clean_fraction=self.clean_fraction,
            sr_clean_fraction=self.sr_clean_fraction,
            sr_sigma_max=self.sr_sigma_max / 255.0,
            camera_fraction=self.camera_fraction,
            correlated_fraction=self.correlated_fraction,
            jpeg_fraction=self.jpeg_fraction,
            luma_fraction=self.luma_fraction,
            grey_fraction=self.grey_fraction,
            zero_mean=self.zero_mean,
            edge_fraction=self.edge_fraction,
            blur_max=self.blur_max,
        )

    @classmethod
    def defaults(cls) -> dict:
        """Field name -> default, for the command line (one source of truth)."""
        made = {f.name: f.default_factory() for f in fields(cls) if f.default_factory is not MISSING}
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING} | made


def charbonnier(out: torch.Tensor, hq: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss per image, (B,)."""
    return torch.sqrt((out - hq) ** 2 + eps**2).flatten(1).mean(dim=1)


@dataclass
class StepOutput:
    out_q: torch.Tensor  # (B, 3, H, W) decoded from a posterior sample
    out_p: torch.Tensor  # (B, 3, H, W) decoded from the prior mean: the temperature-0 output
    out_k: torch.Tensor | None  # (K * B, 3, H, W) decoded from K prior samples, or None
    kl: torch.Tensor  # (B, latent, h, w) KL(q || p) in nats
    est_loss: torch.Tensor | None  # the noise estimator's loss on this batch, for a model with one


def estimator_loss(estimator, lq: torch.Tensor, level: torch.Tensor, reading_weight: float = 0.0) -> torch.Tensor:
    """L1 of every position's estimate on log(255 * level + 0.5): a miss at low levels (a photo nearly
    clean) weighs as much as a relative miss at high ones. With `reading_weight`, plus that weight times
    the L1 of the photo's reading (the estimator's pool of its positions): the positions each learn their
    median, and a low quantile of them (LumaReader) reads below it wherever they agree, as on a smooth photo."""
    log_levels, target = estimator.log_levels(lq), torch.log(255 * level + 0.5)
    loss = (log_levels - target[:, None]).abs().mean()
    if reading_weight:
        loss = loss + reading_weight * (estimator.pool(log_levels) - target).abs().mean()
    return loss


# What an over-told input is told at most beyond level x factor: a clean photo is told a little too.
OVER_TELL_MARGIN = 2.0 / 255.0


def over_tell(level: torch.Tensor, fraction: float, most: float, generator: torch.Generator) -> torch.Tensor:
    """The levels to tell (B,): on `fraction` of the inputs, level x f + m (f log-uniform in [1, most], m uniform
    in [0, OVER_TELL_MARGIN]), elsewhere the level. A model always told the exact level reads a level above the
    grain it sees as blotches to smooth; told an upper bound now and then, it learns to judge the grain under
    it and stays gentle where a reading or a user's slider errs high, as a denoiser trained on white noise does."""
    batch, like = level.shape[0], dict(device=level.device, dtype=level.dtype)
    over = torch.rand(batch, generator=generator, **like) < fraction
    factor = (math.log(most) * torch.rand(batch, generator=generator, **like)).exp()
    margin = OVER_TELL_MARGIN * torch.rand(batch, generator=generator, **like)
    return torch.where(over, level * factor + margin, level)


class TrainStep(nn.Module):
    """One forward pass of the training objective; DDP wraps this so its hooks see every parameter."""

    def __init__(self, model: VAEEnhancer):
        super().__init__()
        self.model = model

    def forward(
        self, lq, hq, scale: int, level, told, eps_q: torch.Tensor, eps_k: torch.Tensor | None, shown=None
    ) -> StepOutput:
        """level: (B,) the true noise levels, which the estimator learns; the network is told `shown` (default:
        the level) where `told` is true, else NaN (blind)."""
        model = self.model
        estimator = model.estimator(scale)
        est_loss = None if estimator is None else estimator_loss(estimator, lq, level)
        if model.config.noise_input:
            shown = level if shown is None else shown
            level = torch.where(told, shown, torch.full_like(shown, math.nan))
        else:
            level = None
        prior = self.model.encode(lq, scale, level)
        post = self.model.posterior(prior, hq)
        # Decode the posterior sample (trains the latent), the prior mean (the temperature-0 output
        # the benchmarks see) and any prior samples in one batch.
        zs = [post.sample(eps_q), prior.dist.mean]
        if eps_k is not None:
            k = eps_k.shape[0] // lq.shape[0]
            zs.append(prior.dist.mean.repeat(k, 1, 1, 1) + prior.dist.std.repeat(k, 1, 1, 1) * eps_k)
        out = self.model.decode(prior, torch.cat(zs))
        batch = lq.shape[0]
        out_k = out[2 * batch :] if eps_k is not None else None
        return StepOutput(out[:batch], out[batch : 2 * batch], out_k, post.kl(prior.dist).float(), est_loss)


def objective(cfg: TrainConfig, step: int, hq: torch.Tensor, res: StepOutput) -> tuple[torch.Tensor, dict]:
    """The loss and its parts: Charbonnier terms + beta * KL above the free bits."""
    recon = cfg.det_weight * charbonnier(res.out_p.float(), hq).mean()
    if cfg.sample_weight:
        recon = recon + cfg.sample_weight * charbonnier(res.out_q.float(), hq).mean()
    if res.out_k is not None:
        k = res.out_k.shape[0] // hq.shape[0]
        per_sample = charbonnier(res.out_k.float(), hq.repeat(k, 1, 1, 1)).view(k, -1)  # (K, B)
        recon = recon + cfg.best_of_weight * per_sample.min(dim=0).values.mean()
    kl_per_channel = res.kl.mean(dim=(0, 2, 3))  # (latent,)
    beta = cfg.beta * min(1.0, (step + 1) / max(cfg.kl_warmup, 1))
    loss = recon + beta * kl_per_channel.clamp_min(cfg.free_bits).sum()
    parts = {"recon": recon.detach(), "kl_per_channel": kl_per_channel.detach()}
    if res.est_loss is not None:  # separate parameters: the sum trains each part on its own loss
        loss = loss + res.est_loss
        parts["level_loss"] = res.est_loss.detach()
    return loss, parts


# Validation inputs: sigma-25 Gaussian and simulated camera noise (blind), clean x2 and x4.
VAL_SIGMA = 25 / 255


@torch.no_grad()
def validate(model: VAEEnhancer, hq: torch.Tensor, scales: tuple[int, ...] | None = None) -> dict[str, float]:
    """Temperature-0 PSNR on held-out crops: denoise sigma 25 and camera noise (RGB), x2 and x4 (Y, border = scale).

    scales: the ones to score (default: the model's); a run validates the scales it trains. Also returned,
    outside val_score: grey camera grain (val_grey), the estimators' errors and readings.
    """
    scales = model.config.scales if scales is None else scales
    gen = torch.Generator(device=hq.device).manual_seed(1234)
    results, unscored = {}, {}

    def run(lq: torch.Tensor, scale: int) -> torch.Tensor:
        return torch.cat([model(lq[i : i + 8], scale) for i in range(0, len(lq), 8)]).clamp(0, 1)

    if 1 in scales:
        noisy = add_noise(hq, torch.full((hq.shape[0],), VAL_SIGMA, device=hq.device), gen)
        results["val_denoise25"] = psnr(run(noisy, 1), hq).mean().item()
        camera = quantize8(hq + camera_noise(hq, gen))
        results["val_camera"] = psnr(run(camera, 1), hq).mean().item()
        # Grey camera grain (default JPEG settings), not part of the score: later runs train on it.
        grey = quantize8(hq + camera_noise(hq, gen, luma=torch.ones(hq.shape[0], dtype=torch.bool, device=hq.device)))
        unscored["val_grey"] = psnr(run(grey, 1), hq).mean().item()
        if model.noise_estimator is not None:  # in 0-255 units
            error = model.noise_estimator(camera) - (camera - hq).square().mean(dim=(1, 2, 3)).sqrt()
            unscored["val_level_err"] = 255 * error.abs().mean().item()
    readings = {}
    for scale in sorted(s for s in set(scales) if s > 1):
        lq = downscale(hq, scale)
        results[f"val_x{scale}"] = psnr_y(run(lq, scale), hq, border=scale).mean().item()
        if model.estimator(scale) is not None:  # what it reads in clean inputs (0-255), not part of the score
            readings[f"val_level_x{scale}"] = 255 * model.estimator(scale)(lq).mean().item()
    results["val_score"] = sum(results.values()) / len(results)
    return {**results, **unscored, **readings}


def _setup_distributed(requested: str) -> tuple[int, int, torch.device]:
    """Rank, world size and device; initialises the process group under torchrun."""
    if "RANK" not in os.environ:
        device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
        return 0, 1, device
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available() and requested != "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def val_batches(images: list[torch.Tensor], size: int = 192) -> torch.Tensor:
    """Centre crops of the held-out images, (N, 3, size, size) float."""
    crops = []
    for img in images:
        h, w = img.shape[-2:]
        s = min(size, h, w) // 32 * 32
        y, x = (h - s) // 2, (w - s) // 2
        crop = img[:, y : y + s, x : x + s].float() / 255.0
        crops.append(torch.nn.functional.interpolate(crop[None], size=(size, size), mode="area")[0])
    return torch.stack(crops)


def warm_start(model: VAEEnhancer, sources: str) -> tuple[int, int]:
    """Copy every tensor whose name and shape match from the weights folders in `sources` (separated by
    commas; a later folder overrides an earlier one); returns (tensors copied, tensors in the model)."""
    own = model.state_dict()
    matched = {}
    for source in (s.strip() for s in sources.split(",") if s.strip()):
        donor = load_model(source, device="cpu").state_dict()
        if not any(k.startswith("sr_estimators.") for k in donor):
            # Upscaling estimators no earlier source gave start as this donor's denoising one: a fair judge of noise.
            photo = {k.split(".", 1)[1]: v for k, v in donor.items() if k.startswith("noise_estimator.")}
            seeded = {f"sr_estimators.{s}.{k}": v for s in model.sr_estimators or {} for k, v in photo.items()}
            donor = {**{k: v for k, v in seeded.items() if k not in matched}, **donor}
        matched.update({k: v for k, v in donor.items() if k in own and own[k].shape == v.shape})
    model.load_state_dict({**own, **matched})
    return len(matched), len(own)


def _plot(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log_path.open()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, keys, title in (
        (axes[0], ["loss"], "training loss"),
        (axes[1], ["kl"], "KL per latent element (nats)"),
        (axes[2], ["val_denoise25", "val_camera", "val_x2", "val_x4"], "validation PSNR (dB)"),
    ):
        for key in keys:
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key, marker="o" if key.startswith("val") else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if not keys[0].startswith("val"):
            ax.set_yscale("log")  # a single unstable step must not flatten the rest of the curve
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


class Run:
    """The state of one training run: model, EMA, optimiser, schedule, data and generators."""

    def __init__(self, cfg: TrainConfig, model_config: ModelConfig | None):
        self.cfg = cfg
        self.rank, self.world, self.device = _setup_distributed(cfg.device)
        self.is_main = self.rank == 0
        self.out_dir = Path(cfg.out)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)

        train_paths, val_paths = split(list_images(cfg.data), cfg.val_count, cfg.seed)
        images = load_images(train_paths, cfg.patch, self.device)
        self.val_hq = val_batches(load_images(val_paths, 32, self.device)).to(self.device)
        self.crop_gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + self.rank + 1)
        self.sampler = CropSampler(images, cfg.patch, self.crop_gen)
        self.mix = cfg.degradation()

        self.model = VAEEnhancer(model_config or cfg.model_config()).to(self.device)
        if cfg.init:
            copied, total = warm_start(self.model, cfg.init)
            if self.is_main:
                print(f"warm start from {cfg.init}: {copied} of {total} tensors copied, the rest initialised")
        self.use_cuda = self.device.type == "cuda"
        if self.use_cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        trained = self.model
        if cfg.estimator_only:
            if self.world > 1:
                raise ValueError("--estimator-only runs in one process: the estimator is small")
            self.model.requires_grad_(False)
            # Only the estimators that read this run's scales: an x2/x4-only run leaves the denoising one as it is.
            trained = nn.ModuleList(self.model.estimators(cfg.scales)).requires_grad_(True)
        if cfg.luma_reader:
            self.model.requires_grad_(False)
            trained = self.model.noise_estimator.luma.requires_grad_(True)
        self.opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.lr_factor)
        self.step_fn: nn.Module = TrainStep(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.use_cuda else None
            self.step_fn = nn.parallel.DistributedDataParallel(self.step_fn, device_ids=ids)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.use_cuda else nullcontext()
        self.step, self.best = 0, -math.inf

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def lr_factor(self, step: int) -> float:
        """Linear warm-up, then one cosine to 2% of the peak over the whole campaign (cfg.steps)."""
        warmup = min(500, self.cfg.steps // 10 + 1)
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(self.cfg.steps - warmup, 1), 1.0)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    def _update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.ema.update_parameters(self.model)
        self.step += 1

    def estimator_step(self, estimator: nn.Module, lq: torch.Tensor, level: torch.Tensor) -> dict:
        """One step of a noise estimator (or the luma reader) alone, the rest of the model frozen."""
        estimator.train()
        loss = estimator_loss(estimator, lq, level, self.cfg.reading_weight)
        self._update(loss)
        with torch.no_grad():
            error = 255 * (estimator(lq) - level).abs().mean()
        return {"loss": loss.detach(), "level_err": error}

    def train_step(self) -> dict:
        """One optimiser step at self.step; returns detached figures for the log."""
        cfg, step = self.cfg, self.step
        model = self.model
        model.train()
        scale = cfg.scales[step % len(cfg.scales)]
        side = cfg.sr_lq_patch * scale if scale > 1 else 0  # 0: the sampler's --patch
        hq = self.sampler.sample(cfg.batch, side).to(self.device)
        if cfg.luma_reader:
            # --camera-fraction: how much of the grain is the camera's (its level follows the brightness).
            # --zoom-max: how smooth the smoothest crops get (a full-resolution camera frame is smoother than 3x).
            hq = zoom_in(hq, self.noise_gen, fraction=cfg.zoom_fraction, most=cfg.zoom_max)
            # --edge-fraction: how much of it a camera's edge-aware noise reduction has damped on flat parts.
            lq, level = grey_grain(
                hq, self.noise_gen, camera_fraction=cfg.camera_fraction, edge_fraction=cfg.edge_fraction
            )
            return self.estimator_step(model.noise_estimator.luma, lq, level)
        if cfg.smooth_fraction and scale == 1:
            # Camera frames at full resolution are smooth at the pixel scale, the training photos dense texture:
            # on smooth crops the model learns to take fine grain away entirely.
            hq = zoom_in(hq, self.noise_gen, fraction=cfg.smooth_fraction, most=cfg.zoom_max)
        lq, level = degrade(hq, scale, self.noise_gen, self.mix)
        if cfg.estimator_only:
            return self.estimator_step(model.estimator(scale), lq, level)
        # Tell the level to some inputs; the rest learn to judge it (blind).
        told = torch.rand(level.shape, generator=self.noise_gen, device=self.device) < cfg.level_known
        shown = over_tell(level, cfg.over_tell, cfg.over_tell_max, self.noise_gen) if cfg.over_tell else None
        if self.use_cuda:
            hq, lq = hq.contiguous(memory_format=torch.channels_last), lq.contiguous(memory_format=torch.channels_last)
        stride = model.config.latent_stride
        grid = (model.config.latent_channels, hq.shape[-2] // stride, hq.shape[-1] // stride)
        eps_q = torch.randn((cfg.batch, *grid), generator=self.noise_gen, device=self.device)
        eps_k = None
        if cfg.best_of:
            eps_k = torch.randn((cfg.best_of * cfg.batch, *grid), generator=self.noise_gen, device=self.device)
        with self.autocast:
            res = self.step_fn(lq, hq, scale, level, told, eps_q, eps_k, shown)
        loss, parts = objective(cfg, step, hq, res)
        self._update(loss)
        with torch.no_grad():
            train_psnr = psnr(res.out_p.float().clamp(0, 1), hq).mean()
        return {"loss": loss.detach(), "psnr": train_psnr, **parts}

    def save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "crop_gen": self.crop_gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
            "step": self.step,
            "best": self.best,
            "config": self.model.config.to_dict(),
            "train_config": asdict(self.cfg),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> None:
        # Plain tensors, numbers and strings only: no pickled code runs on load.
        ckpt = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        if ModelConfig.from_dict(ckpt["config"]) != self.model.config:  # fields added since read as defaults
            raise ValueError(
                f"{self.checkpoint_path} is for model {ckpt['config']}, not {self.model.config.to_dict()}: "
                "resume with the same --preset, or start a new --out"
            )
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["opt"])
        self.sched.load_state_dict(ckpt["sched"])
        self.crop_gen.set_state(ckpt["crop_gen"])
        self.noise_gen.set_state(ckpt["noise_gen"].cpu())
        self.step, self.best = ckpt["step"], ckpt["best"]
        planned = ckpt["train_config"]["steps"]
        if self.is_main and planned != self.cfg.steps:
            print(f"note: the checkpoint planned {planned} steps, now {self.cfg.steps}: the cosine schedule changes")

    def validate_and_keep(self) -> dict[str, float]:
        """Validate the EMA weights; save them as the run's model when they are the best so far."""
        self.ema.module.eval()
        scores = validate(self.ema.module, self.val_hq, self.cfg.scales)
        if scores["val_score"] > self.best:
            self.best = scores["val_score"]
            save_model(self.ema.module, self.out_dir)
        return scores


def _agree(flag: bool, run: Run) -> bool:
    """rank 0's flag on every rank (a no-op without torchrun)."""
    if run.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=run.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


class Log:
    """log.csv: running means every `log_every` steps, validation scores when they are taken."""

    def __init__(self, run: Run, resume: bool):
        self.path = run.out_dir / "log.csv"
        latent = run.model.config.latent_channels
        self.fields = ["step", "loss", "recon", "kl", "psnr", "level_loss", "level_err", "lr", "seconds"]
        self.fields += [f"kl_c{c}" for c in range(latent)]
        self.fields += ["val_denoise25", "val_camera", "val_x2", "val_x4", "val_score", "val_level_err", "val_grey"]
        self.fields += ["val_level_x2", "val_level_x4"]
        self.t0 = time.time()
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        if not run.is_main:
            return
        rows = []
        if resume and self.path.exists():
            # Rows past the checkpoint are replayed after a resume: keep the log one curve.
            rows = [r for r in csv.DictReader(self.path.open()) if int(r["step"]) <= run.step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def add(self, figures: dict) -> None:
        for key, value in figures.items():
            self.sums[key] = self.sums.get(key, 0) + value
        self.count += 1

    def write(self, step: int, lr: float, scores: dict[str, float] | None) -> dict:
        n = max(self.count, 1)
        means = {k: v / n for k, v in self.sums.items()}
        row = {"step": step, "lr": lr, "seconds": round(time.time() - self.t0, 1)}
        if "kl_per_channel" in means:
            kl = means.pop("kl_per_channel").tolist()
            row.update({f"kl_c{c}": v for c, v in enumerate(kl)}, kl=sum(kl) / len(kl))
        row.update({k: v.item() for k, v in means.items()})
        row.update(scores or {})
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)
        self.sums, self.count = {}, 0
        return row


def train(cfg: TrainConfig, model_config: ModelConfig | None = None, resume: bool = False) -> Path:
    """Train and write the results to cfg.out; returns that directory."""
    run = Run(cfg, model_config)
    if resume and run.checkpoint_path.exists():
        run.load_checkpoint()
        if run.is_main:
            print(f"resumed from {run.checkpoint_path} at step {run.step}")
    if run.is_main:
        (run.out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = Log(run, resume)
    end = min(cfg.stop_at or cfg.steps, cfg.steps)
    deadline = time.time() + 60 * cfg.time_limit if cfg.time_limit else math.inf
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not run.is_main, dynamic_ncols=True)
    while run.step < end:
        log.add(run.train_step())
        bar.update()
        done = run.step
        # Under torchrun every rank must agree to stop; rank 0's clock decides.
        out_of_time = cfg.time_limit > 0 and _agree(time.time() > deadline, run)
        leg_ends = done == end or out_of_time
        validating = done % cfg.val_every == 0 or leg_ends
        if run.is_main and (validating or leg_ends or done % cfg.log_every == 0):
            scores = run.validate_and_keep() if validating else None
            if validating or leg_ends:
                run.save_checkpoint()
            if scores:
                line = ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
                bar.write(f"step {done}: {line} (best {run.best:.2f})")
            row = log.write(done, run.sched.get_last_lr()[0], scores)
            shown = {k: f"{row[k]:.4g}" for k in ("loss", "kl", "psnr", "level_err") if k in row}
            bar.set_postfix(shown)
        if out_of_time:
            break
    bar.close()
    if run.is_main:
        _plot(log.path, run.out_dir / "curves.png")
        status = "done" if run.step == cfg.steps else f"leg ended at step {run.step} of {cfg.steps} (--resume goes on)"
        print(f"{status}: {time.time() - log.t0:.0f} s; best validation score {run.best:.2f} dB; {run.out_dir}")
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run.out_dir


__all__ = ["TrainConfig", "train", "validate", "warm_start"]
