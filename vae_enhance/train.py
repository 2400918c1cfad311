"""Training: the loop, optimiser, validation, logging and checkpoints (the model knows none of this).

Runs on one device, or on several under `torchrun` (DDP: NCCL on CUDA, gloo on CPU). On CUDA it uses
bf16 autocast and channels_last. `--out` ends up holding config.json + model.safetensors (the EMA
weights with the best validation score, loadable by load_model), checkpoint.pt (for --resume),
log.csv and curves.png.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from vae_enhance.config import PRESETS, ModelConfig
from vae_enhance.data import CropSampler, list_images, load_images, split
from vae_enhance.degrade import add_noise, degrade, downscale
from vae_enhance.hub import save_model
from vae_enhance.metrics import psnr, psnr_y
from vae_enhance.model import VAEEnhancer


@dataclass
class TrainConfig:
    """Everything a run needs besides the model shape; saved in checkpoint.pt and log.json."""

    data: str
    out: str
    steps: int = 20_000
    preset: str = "small"
    batch: int = 16  # per process
    patch: int = 96  # hq crop side, a multiple of 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    beta: float = 1e-3  # KL weight per latent element, against the per-pixel Charbonnier loss
    free_bits: float = 0.1  # nats per latent channel and position below which KL is not penalised
    kl_warmup: int = 2000  # steps over which beta ramps up from 0
    det_weight: float = 0.5  # weight of the loss on the temperature-0 output (z = prior mean)
    scales: tuple[int, ...] = (1, 1, 2, 4)  # cycled per step: denoising gets half the steps
    blur_max: float = 0.0
    jpeg_fraction: float = 0.0
    ema: float = 0.999
    val_every: int = 1000
    val_count: int = 16
    seed: int = 0
    device: str = ""  # "" = CUDA if available
    log_every: int = 50
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.patch % 32 or self.patch < 32:
            raise ValueError(f"--patch must be a multiple of 32 (>= 32), got {self.patch}")
        if min(self.steps, self.batch, self.val_every, self.log_every, self.val_count) < 1:
            raise ValueError("--steps, --batch, --val-every and --val-count must be at least 1")
        self.scales = tuple(int(s) for s in self.scales)
        if not set(self.scales) <= set(PRESETS[self.preset].scales):
            raise ValueError(f"--scales must be drawn from {PRESETS[self.preset].scales}")


def charbonnier(out: torch.Tensor, hq: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((out - hq) ** 2 + eps**2).mean()


class TrainStep(nn.Module):
    """One forward pass of the training objective; DDP wraps this so its hooks see every parameter."""

    def __init__(self, model: VAEEnhancer):
        super().__init__()
        self.model = model

    def forward(self, lq: torch.Tensor, hq: torch.Tensor, scale: int, eps: torch.Tensor):
        prior = self.model.encode(lq, scale)
        post = self.model.posterior(prior, hq)
        # Decode the posterior sample (trains the latent) and the prior mean (the temperature-0
        # output the benchmarks see) in one batch.
        z = torch.cat([post.sample(eps), prior.dist.mean])
        out_q, out_p = self.model.decode(prior, z).chunk(2)
        kl = post.kl(prior.dist).float()  # (B, latent, h, w)
        return out_q, out_p, kl


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


def _val_batches(images: list[torch.Tensor], size: int = 192) -> torch.Tensor:
    """Centre crops of the held-out images, (N, 3, size, size) float."""
    crops = []
    for img in images:
        h, w = img.shape[-2:]
        s = min(size, h, w) // 32 * 32
        y, x = (h - s) // 2, (w - s) // 2
        crop = img[:, y : y + s, x : x + s].float() / 255.0
        crops.append(torch.nn.functional.interpolate(crop[None], size=(size, size), mode="area")[0])
    return torch.stack(crops)


@torch.no_grad()
def validate(model: VAEEnhancer, hq: torch.Tensor) -> dict[str, float]:
    """Temperature-0 PSNR on held-out crops: denoise sigma 25 (RGB), x2 and x4 (Y, border = scale)."""
    gen = torch.Generator(device=hq.device).manual_seed(1234)
    results = {}
    for scale in model.config.scales:
        lq = downscale(hq, scale)
        if scale == 1:
            lq = add_noise(lq, torch.full((hq.shape[0],), 25 / 255, device=hq.device), gen)
        out = torch.cat([model(lq[i : i + 8], scale) for i in range(0, len(lq), 8)]).clamp(0, 1)
        if scale == 1:
            results["val_denoise25"] = psnr(out, hq).mean().item()
        else:
            results[f"val_x{scale}"] = psnr_y(out, hq, border=scale).mean().item()
    results["val_score"] = sum(results.values()) / len(results)
    return results


def _plot(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log_path.open()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, keys, title in (
        (axes[0], ["loss"], "training loss"),
        (axes[1], ["kl"], "KL per latent element (nats)"),
        (axes[2], ["val_denoise25", "val_x2", "val_x4"], "validation PSNR (dB)"),
    ):
        for key in keys:
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key, marker="o" if key.startswith("val") else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if not keys[0].startswith("val"):
            ax.set_yscale("log")  # a single unstable step must not flatten the rest of the curve
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig, model_config: ModelConfig | None = None, resume: bool = False) -> Path:
    """Train and write the results to cfg.out; returns that directory."""
    rank, world, device = _setup_distributed(cfg.device)
    out_dir = Path(cfg.out)
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    train_paths, val_paths = split(list_images(cfg.data), cfg.val_count, cfg.seed)
    images = load_images(train_paths, cfg.patch, device)
    val_hq = _val_batches(load_images(val_paths, 32, device)).to(device)
    crop_gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + rank + 1)
    sampler = CropSampler(images, cfg.patch, crop_gen)

    model = VAEEnhancer(model_config or PRESETS[cfg.preset]).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = min(500, cfg.steps // 10 + 1)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to 2% of the peak
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(cfg.steps - warmup, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start, best = 0, -math.inf
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        crop_gen.set_state(ckpt["crop_gen"])
        if "noise_gen" in ckpt:  # absent from checkpoints of older runs
            noise_gen.set_state(ckpt["noise_gen"].cpu())
        start, best = ckpt["step"], ckpt["best"]
        if is_main:
            print(f"resumed from {ckpt_path} at step {start}")

    step_fn = TrainStep(model)
    if world > 1:
        step_fn = nn.parallel.DistributedDataParallel(step_fn, device_ids=[device.index] if use_cuda else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else nullcontext()

    log_path = out_dir / "log.csv"
    latent = model.config.latent_channels
    fields = ["step", "loss", "recon", "kl", "psnr", "lr", "seconds"]
    fields += [f"kl_c{c}" for c in range(latent)] + ["val_denoise25", "val_x2", "val_x4", "val_score"]
    if is_main:
        (out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if resume and log_path.exists():
            # Rows past the checkpoint are replayed after a resume: keep the log one curve.
            rows = [r for r in csv.DictReader(log_path.open()) if int(r["step"]) <= start]
        else:
            rows = []
        with log_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)

    def save_checkpoint(step: int) -> None:
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "crop_gen": crop_gen.get_state(),
            "noise_gen": noise_gen.get_state(),
            "step": step,
            "best": best,
            "config": model.config.to_dict(),
            "train_config": asdict(cfg),
        }
        torch.save(state, ckpt_path.with_suffix(".tmp"))
        os.replace(ckpt_path.with_suffix(".tmp"), ckpt_path)

    t0 = time.time()
    running = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "psnr": 0.0, "n": 0}
    kl_channels = torch.zeros(latent, device=device)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not is_main, dynamic_ncols=True)
    for step in bar:
        model.train()
        scale = cfg.scales[step % len(cfg.scales)]
        hq = sampler.sample(cfg.batch)
        lq = degrade(hq, scale, noise_gen, cfg.blur_max, cfg.jpeg_fraction)
        if use_cuda:
            hq, lq = hq.contiguous(memory_format=torch.channels_last), lq.contiguous(memory_format=torch.channels_last)
        h8, w8 = hq.shape[-2] // 8, hq.shape[-1] // 8
        eps = torch.randn((cfg.batch, latent, h8, w8), generator=noise_gen, device=device)
        with autocast:
            out_q, out_p, kl = step_fn(lq, hq, scale, eps)
        recon = charbonnier(out_q.float(), hq) + cfg.det_weight * charbonnier(out_p.float(), hq)
        kl_per_channel = kl.mean(dim=(0, 2, 3))  # (latent,)
        beta = cfg.beta * min(1.0, (step + 1) / max(cfg.kl_warmup, 1))
        loss = recon + beta * kl_per_channel.clamp_min(cfg.free_bits).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(model)

        with torch.no_grad():
            running["loss"] += loss.item()
            running["recon"] += recon.item()
            running["kl"] += kl_per_channel.mean().item()
            running["psnr"] += psnr(out_p.float().clamp(0, 1), hq).mean().item()
            running["n"] += 1
            kl_channels += kl_per_channel.detach()
        done = step + 1
        last = done == cfg.steps
        if is_main and (done % cfg.log_every == 0 or last or done % cfg.val_every == 0):
            n = max(running["n"], 1)
            row = {k: running[k] / n for k in ("loss", "recon", "kl", "psnr")}
            row.update(step=done, lr=sched.get_last_lr()[0], seconds=round(time.time() - t0, 1))
            row.update({f"kl_c{c}": v for c, v in enumerate((kl_channels / n).tolist())})
            if done % cfg.val_every == 0 or last:
                ema.module.eval()
                scores = validate(ema.module, val_hq)
                row.update(scores)
                if scores["val_score"] > best:
                    best = scores["val_score"]
                    save_model(ema.module, out_dir)
                save_checkpoint(done)
                bar.write(
                    f"step {done}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) + f" (best {best:.2f})"
                )
            with log_path.open("a", newline="") as f:
                csv.DictWriter(f, fields).writerow(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", kl=f"{row['kl']:.3f}", psnr=f"{row['psnr']:.2f}")
            running = dict.fromkeys(running, 0.0)
            kl_channels.zero_()
    if is_main:
        _plot(log_path, out_dir / "curves.png")
        print(f"done: {cfg.steps} steps in {time.time() - t0:.0f} s; best validation score {best:.2f} dB; {out_dir}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out_dir
