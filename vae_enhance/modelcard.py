"""The model card pushed with the weights: Hub YAML metadata (model-index from measured figures) plus Markdown.

The figures come from metrics.json beside the weights, written by whoever ran `vae-enhance eval`:

    {"CBSD68": {"denoise_sigma15": 30.1, "denoise_sigma25": 27.9}, "Set5": {"sr_x2": 33.2, "sr_x4": 28.1}}

dataset name -> {"denoise_sigma<N>": RGB PSNR in dB at noise sigma N/255, "sr_x<S>": Y-PSNR in dB at scale S},
measured with the benchmark protocol of the README. Nothing is invented: without the file the card says so.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

from vae_enhance.model import VAEEnhancer

METRICS_NAME = "metrics.json"
_KEY = re.compile(r"(?:denoise_sigma(?P<sigma>\d+)|(?P<real>denoise_real)|sr_x(?P<scale>[24]))")
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n---\r?\n", re.DOTALL)
TAGS = ["vae-enhance", "image-denoising", "super-resolution", "variational-autoencoder", "pytorch", "safetensors"]


class MetricsError(ValueError):
    """metrics.json is malformed; the message names the entry and the expected format."""


def read_metrics(folder: Path) -> dict[str, dict[str, float]]:
    """metrics.json of `folder` ({} when absent), validated: dataset -> {denoise_sigmaN | denoise_real | sr_xS: dB}.

    denoise_real is real camera noise: RGB PSNR against the mean of many shots of the scene (CC15)."""
    path = Path(folder) / METRICS_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MetricsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise MetricsError(f"{path}: expected {{dataset: {{metric: dB}}}}, got {type(data).__name__}")
    for dataset, figures in data.items():
        if not isinstance(figures, dict) or not figures:
            raise MetricsError(f"{path}: {dataset!r} must map metric names to dB, like {{'denoise_sigma25': 29.5}}")
        for key, value in figures.items():
            if not _KEY.fullmatch(key):
                raise MetricsError(
                    f"{path}: {dataset}.{key}: metric names are denoise_sigma<N>, denoise_real or sr_x2 / sr_x4"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MetricsError(f"{path}: {dataset}.{key} must be a number of dB, got {value!r}")
    return {dataset: {k: float(v) for k, v in figures.items()} for dataset, figures in data.items()}


def _describe(key: str) -> tuple[str, str, str]:
    """'denoise_sigma25' -> (task name, dataset config, metric name)."""
    match = _KEY.fullmatch(key)
    if match["sigma"]:
        return "Image denoising", f"sigma{match['sigma']}", f"PSNR (RGB, sigma {match['sigma']})"
    if match["real"]:
        return "Image denoising", "real", "PSNR (RGB, real camera noise)"
    return "Image super-resolution", f"x{match['scale']}", f"PSNR (Y, x{match['scale']})"


def _sort_key(key: str) -> tuple[int, int]:
    match = _KEY.fullmatch(key)
    if match["sigma"]:
        return (0, int(match["sigma"]))
    return (1, 0) if match["real"] else (2, int(match["scale"]))


def card_metadata(repo_id: str, metrics: dict[str, dict[str, float]]) -> ModelCardData:
    results = [
        EvalResult(
            task_type="image-to-image",
            task_name=_describe(key)[0],
            dataset_type=dataset.lower(),
            dataset_name=dataset,
            dataset_config=_describe(key)[1],
            metric_type="psnr",
            metric_name=_describe(key)[2],
            metric_value=round(value, 2),
        )
        for dataset, figures in metrics.items()
        for key, value in sorted(figures.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    return ModelCardData(
        library_name="vae-enhance",
        license="mit",
        tags=TAGS,
        pipeline_tag="image-to-image",
        model_name=repo_id,
        eval_results=results or None,
    )


def _table(metrics: dict[str, dict[str, float]], prefix: str, title: str) -> str:
    """One Markdown table: a row per dataset, a column per sigma or scale, blanks where not measured."""
    keys = sorted({k for figures in metrics.values() for k in figures if k.startswith(prefix)}, key=_sort_key)
    if not keys:
        return ""
    header = " | ".join(_describe(k)[1] for k in keys)
    lines = [f"| {title} | {header} |", "| --- |" + " --- |" * len(keys)]
    for dataset, figures in metrics.items():
        if any(k in figures for k in keys):
            cells = " | ".join(f"{figures[k]:.2f}" if k in figures else "" for k in keys)
            lines.append(f"| {dataset} | {cells} |")
    return "\n".join(lines) + "\n"


def card_body(repo_id: str, model: VAEEnhancer, metrics: dict[str, dict[str, float]]) -> str:
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    tables = _table(metrics, "denoise", "denoise, PSNR dB") + "\n" + _table(metrics, "sr", "SR, Y-PSNR dB")
    evaluation = (
        tables.strip() + "\n\nDenoising: unclipped Gaussian noise seeded per image, RGB PSNR; super-resolution: "
        "antialiased bicubic downscale, PSNR on Y with `scale` pixels cropped from every border."
        if metrics
        else f"No measured figures were supplied with these weights (no {METRICS_NAME} beside them)."
    )
    return f"""# {repo_id}

Photo denoising and x2 / x4 super-resolution with a conditional variational autoencoder (vae-enhance).
Besides its best estimate it draws random variations of a restoration and a per-pixel uncertainty map.

## Use

```python
import vae_enhance as ve

model = ve.load_model("{repo_id}", revision="<commit sha>")  # pin the commit you tested
out = ve.enhance(model, ve.read_image("photo.jpg"), scale=2)
samples, std = ve.variations(model, ve.read_image("photo.jpg"), n=8, seed=0)
```

or point the app at it: `VAE_ENHANCE_MODEL={repo_id}@<commit sha> streamlit run app.py`.

## Model

{params:,} parameters; widths {list(cfg.widths)}, blocks {list(cfg.blocks)}, {cfg.latent_channels} latent
channels at 1/8 resolution, scales {list(cfg.scales)}. Weights: `model.safetensors` (float32) with `config.json`
(format version {cfg.format_version}).

## Evaluation

{evaluation}
"""


def render_card(repo_id: str, model: VAEEnhancer, folder: Path) -> str:
    """README.md for the repo: generated metadata, and the folder's own README.md body if it has one."""
    metadata = card_metadata(repo_id, read_metrics(folder)).to_yaml()
    own = Path(folder) / "README.md"
    if own.is_file():
        # An old metadata block is dropped: the generated one replaces it.
        body = _FRONT_MATTER.sub("", own.read_text(), count=1).lstrip("\n")
    else:
        body = card_body(repo_id, model, read_metrics(folder))
    return f"---\n{metadata}\n---\n\n{body}"
