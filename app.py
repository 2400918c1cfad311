"""vae-enhance web app: denoise or upscale a photo, compare, draw variations, look at the latent, download.

A thin Streamlit front end: the work is done by the public API (`vae_enhance`) and by
vae_enhance/app_helpers.py; this file lays out widgets and keeps results in st.session_state.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch

import vae_enhance as ve
from vae_enhance import app_helpers as ah
from vae_enhance.hub import MODEL_ENV, default_source, parse_source

ENHANCE, SIMULATE = "Enhance a photo", "Simulate on a clean photo"


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def get_model(source: str | None, revision: str | None, class_id: int) -> ve.VAEEnhancer:
    """One model per source for every session: enhance() never changes it.

    class_id is id(ve.VAEEnhancer): when Streamlit reloads the package after a source change (a git pull
    on Community Cloud, an edit locally), the cached model would be of the old class and fail enhance()'s
    type check; a new class id loads a fresh model instead.
    """
    return ve.load_model(source, revision=revision)


def secret_model() -> str:
    """VAE_ENHANCE_MODEL from .streamlit/secrets.toml (Community Cloud's secrets), or ''."""
    try:
        return str(st.secrets.get(MODEL_ENV, "") or "")
    except Exception:  # no secrets file, or an unreadable one: secrets are optional here
        return ""


def memo(name: str, key: tuple, compute):
    """Session-scoped cache of one value: recomputed only when `key` changes."""
    slot = st.session_state.get(name)
    if slot is None or slot[0] != key:
        slot = (key, compute())
        st.session_state[name] = slot
    return slot[1]


def progress_bar(text: str):
    bar = st.progress(0.0, text=text)
    return bar, lambda fraction: bar.progress(min(max(fraction, 0.0), 1.0), text=f"{text} {fraction:.0%}")


def new_seed() -> None:
    st.session_state["seed"] = random.randrange(2**31)


st.set_page_config(page_title="vae-enhance", page_icon=":material/auto_fix_high:", layout="wide")

with st.sidebar:
    st.header("vae-enhance")
    model_text = st.text_input(
        "Model (folder or user/name@revision)",
        value=os.environ.get(MODEL_ENV, "") or secret_model(),
        placeholder="bundled weights",
        key="model_source",
        help="Empty: the weights bundled with the app. A folder written by `vae-enhance train`, "
        "or a Hugging Face Hub repo such as user/name@<commit sha>.",
    )
    source, revision = parse_source(model_text) if model_text.strip() else default_source()
    try:
        model = get_model(source, revision, id(ve.VAEEnhancer))
    except ValueError as err:
        st.error(f"The model could not be loaded: {err}. Clear the field to use the bundled weights.")
        st.stop()
    device = next(model.parameters()).device
    threads = torch.get_num_threads()
    device_text = f"cpu ({threads} thread{'s' if threads > 1 else ''})" if device.type == "cpu" else str(device)
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("posterior_net"))
    st.caption(
        f"Model in use: **{ah.model_label(source, revision)}**, {n_params / 1e6:.2f} M parameters, {device_text}"
    )

    mode = st.radio("Mode", [ENHANCE, SIMULATE], key="mode", help="Simulate: degrade a clean photo, restore, score")
    tasks = [name for name, s in ah.TASKS.items() if s in model.config.scales]
    task = st.radio("Task", tasks, key="task", help="Upscaling also removes noise.")
    scale = ah.TASKS[task]
    sigma = 0
    if mode == SIMULATE:
        sigma = st.slider("Noise to add (sigma, 0-255 scale)", 0, 50, 25, key="sigma")
        st.caption(
            f"The app downscales the photo x{scale} (bicubic), adds noise, restores it and scores the result "
            "against the original, beside the classical methods."
            if scale > 1
            else "The app adds Gaussian noise, restores the photo and scores it against the original, "
            "beside OpenCV's non-local means."
        )

st.title("vae-enhance")
st.caption(
    "Denoise and upscale photos with a conditional VAE, draw several plausible restorations, and see where they "
    "disagree."
)

upload = st.file_uploader(
    "Drop a photo (JPEG, PNG, WebP, TIFF, BMP, GIF; 16-bit, gray and alpha are kept)",
    type=ah.UPLOAD_TYPES,
    key="upload",
)
if upload is None:
    st.info(
        "Upload a photo to start: a noisy one to denoise, a small one to upscale, or a clean one in Simulate "
        "mode (sidebar) to see how well the model does."
    )
    st.stop()

photo_id = getattr(upload, "file_id", None) or f"{upload.name}-{upload.size}"
try:
    img = memo("photo", (photo_id,), lambda: ve.read_image(upload.getvalue(), max_pixels=ah.MAX_INPUT_PIXELS))
except ve.ImageError as err:
    st.session_state.pop("photo", None)
    st.error(f"{upload.name} could not be used: {err}")
    st.stop()
st.caption(f"**{upload.name}**: {ah.describe_image(img)}")

model_key = (source, revision)
run_key = (photo_id, scale, model_key, mode, sigma)
label = "Degrade and restore" if mode == SIMULATE else f"Enhance ({task.lower()})"
if st.button(label, key="enhance", type="primary"):
    for stale in ("result", "comparison"):  # free the previous result before making the next one
        st.session_state.pop(stale, None)
    try:
        t0 = time.perf_counter()
        if mode == SIMULATE:
            sim = ah.simulate(img, sigma, scale)
            bar, report = progress_bar("Restoring...")
            out = ve.enhance(model, sim.lq, scale, progress=lambda done, total: report(done / total))
            bar.progress(1.0, text="Running the classical baselines...")
            rows = ah.score_rows(sim, out, others := ah.baselines(sim))
            result = {"lq": sim.lq, "out": out, "sim": sim, "baselines": others, "rows": rows}
        else:
            ah.check_output_size(img.shape, scale)
            bar, report = progress_bar("Enhancing...")
            result = {"lq": img, "out": ah.enhance_tiled(model, img, scale, progress=report)}
        bar.empty()
        result.update(key=run_key, seconds=time.perf_counter() - t0, device=device_text, token=time.time_ns())
        st.session_state["result"] = result
    except (ValueError, MemoryError, torch.OutOfMemoryError) as err:
        message = str(err) if isinstance(err, ValueError) else "out of memory: try a smaller photo or scale"
        if isinstance(err, torch.OutOfMemoryError):
            message = "out of GPU memory: try a smaller photo or scale"
        st.error(f"Could not {label.lower()}: {message}")
    finally:
        ah.release_memory()

result = st.session_state.get("result")
if result is not None and result["key"] != run_key:
    result = None  # made for another photo, task, model or mode
zoom_center = (st.session_state.get("zoom_y", 50) / 100, st.session_state.get("zoom_x", 50) / 100)

before_after, variations_tab, latent_tab = st.tabs(
    ["Before / after", "Random variations", "Latent view"], key="view", on_change="rerun"
)  # keyed: a rerun (e.g. Generate variations) stays on the open tab


@st.fragment
def show_comparison(lq: np.ndarray, out: np.ndarray, scale: int, token: int) -> None:
    """Comparison slider and shared zoom window; a fragment, so dragging reruns only this part."""
    before, after = memo("comparison", (token,), lambda: ah.comparison_pair(lq, out))
    position = st.slider("Drag to compare: input on the left, result on the right", 0, 100, 50, key="split")
    st.image(ah.split_view(before, after, position / 100))

    st.markdown("**Zoom window**: the same pixels of the input and the result, side by side")
    c1, c2, c3 = st.columns(3)
    zx = c1.slider("Horizontal position (%)", 0, 100, 50, key="zoom_x")
    zy = c2.slider("Vertical position (%)", 0, 100, 50, key="zoom_y")
    side = c3.select_slider("Window (result pixels)", [64, 128, 256, 512], 256, key="zoom_side")
    crop_lq, crop_out = ah.zoom_pair(lq, out, scale, (zy / 100, zx / 100), side)
    left, right = st.columns(2)
    left.image(crop_lq, caption="Input (enlarged pixels)" if scale > 1 else "Input", width="stretch")
    right.image(crop_out, caption="Result", width="stretch")


@st.fragment
def show_download(out: np.ndarray, stem: str) -> None:
    """Full-resolution download in the chosen format; the file is encoded only when clicked."""
    c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
    fmt = c1.segmented_control("Format", ["PNG", "JPEG", "WEBP"], default="PNG", key="fmt", required=True)
    quality = c2.slider("Quality", 50, 100, 92, key="quality", disabled=fmt == "PNG")
    c3.download_button(
        f"Download {fmt} ({out.shape[1]}x{out.shape[0]})",
        data=lambda: ah.encode_download(out, fmt, quality),
        file_name=f"{stem}_enhanced.{ah.EXTENSION[fmt]}",
        mime=ah.MIME[fmt],
        key="download",
        on_click="ignore",
        type="primary",
    )
    st.caption(ah.download_note(out, fmt))


with before_after:
    if result is None:
        st.info(f"Press **{label}** to see the result here.")
    else:
        lq, out = result["lq"], result["out"]
        st.success(
            f"{ah.describe_image(lq).split(',')[0]} -> {out.shape[1]}x{out.shape[0]} in {result['seconds']:.1f} s "
            f"on {result['device']}"
        )
        if "rows" in result:
            sim = result["sim"]
            st.markdown(
                f"**Scores against the original** ({sim.hq.shape[1]}x{sim.hq.shape[0]} central crop; "
                f"noise sigma {sim.sigma:g}, downscale x{sim.scale})"
            )
            st.dataframe(result["rows"], hide_index=True)
            shown = {"Original": sim.hq, "Degraded input": sim.lq, **result["baselines"], "vae-enhance": out}
            cols = st.columns(len(shown))
            for col, (name, picture) in zip(cols, shown.items(), strict=True):
                col.image(ah.fit(ah.as_rgb8(picture), 800), caption=name, width="stretch")
        show_comparison(lq, out, scale, result["token"])
        if "rows" not in result:
            show_download(out, Path(upload.name).stem)

with variations_tab:
    st.markdown(
        "A VAE draws its answer from a distribution: each sample is a different plausible restoration. "
        "Where the samples disagree the photo alone does not tell, which is the model's uncertainty."
    )
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    n = c1.slider("Samples", 2, 8, 4, key="n_samples")
    temperature = c2.slider("Temperature", 0.0, 2.0, 1.0, 0.1, key="temperature", help="0 = the best estimate")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="seed", help="The same seed gives the same samples.")
    c4.button("New seed", key="new_seed", on_click=new_seed)
    vlq = result["lq"] if result is not None and "sim" in result else img
    window = ah.region(vlq, scale, zoom_center)
    if window.shape[:2] != vlq.shape[:2]:
        st.caption(
            f"This photo is large: variations are drawn on a {window.shape[1]}x{window.shape[0]} window around the "
            "zoom position (Before / after tab)."
        )
    if st.button("Generate variations", key="variations", type="primary"):
        try:
            bar, report = progress_bar("Sampling...")
            t0 = time.perf_counter()
            samples, std = ve.variations(
                model, window, n=n, scale=scale, temperature=temperature, seed=int(seed),
                progress=lambda done, total: report(done / total),
            )  # fmt: skip
            bar.empty()
            st.session_state["variations_result"] = {
                "key": (photo_id, scale, model_key, mode, sigma),
                "samples": samples,
                "std": std,
                "about": f"{n} samples, temperature {temperature:g}, seed {int(seed)}, "
                f"{time.perf_counter() - t0:.1f} s on {device_text}",
            }
        except (ValueError, MemoryError, torch.OutOfMemoryError) as err:
            st.error(f"Could not draw variations: {err}")
        finally:
            ah.release_memory()
    drawn = st.session_state.get("variations_result")
    if drawn is not None and drawn["key"] == (photo_id, scale, model_key, mode, sigma):
        st.caption(drawn["about"])
        samples = drawn["samples"]
        cols = st.columns(min(len(samples), 4))
        for i, sample in enumerate(samples):
            with cols[i % len(cols)]:
                st.image(ah.fit(ah.as_rgb8(sample), 600), caption=f"sample {i}", width="stretch")
                st.download_button(
                    "Download PNG",
                    data=lambda sample=sample: ah.encode_download(sample, "PNG"),
                    file_name=f"{Path(upload.name).stem}_sample{i}.png",
                    mime="image/png",
                    key=f"sample_{i}",
                    on_click="ignore",
                )
        heat, top = ah.uncertainty_heatmap(drawn["std"])
        st.image(
            ah.fit(heat, 900),
            caption="Uncertainty: per-pixel standard deviation across the samples "
            f"(black 0, yellow {top * 255:.1f}/255 or more)",
            width=600,
        )

with latent_tab:
    st.markdown(
        "**Encode -> sample -> decode.** The prior network *encodes* the photo into a small grid (1/8 of the "
        "output size) holding a Gaussian per cell: a mean and a standard deviation.  \n"
        "Enhancing *decodes* the means; variations *sample* z = mean + temperature x std x noise and decode each "
        "sample, so bright std cells are where the samples may differ."
    )
    lq_for_latent = ah.region(vlq, scale, zoom_center)
    try:
        maps = memo(
            "latents",
            (photo_id, scale, model_key, mode, sigma, lq_for_latent.shape, zoom_center),
            lambda: ah.latent_maps(model, lq_for_latent, scale),
        )
    except (ValueError, MemoryError, torch.OutOfMemoryError) as err:
        st.error(f"Could not compute the latent maps: {err}")
    else:
        c = maps.mean.shape[0]
        st.image(
            ah.channel_grid(maps.mean, "coolwarm", symmetric=True),
            caption=f"Latent mean: {c} channels of {maps.mean.shape[2]}x{maps.mean.shape[1]} cells, each on its own "
            f"scale (blue below its median, red above; overall range {maps.mean.min():.2f} to {maps.mean.max():.2f})",
        )
        st.image(
            ah.channel_grid(maps.std, "viridis", symmetric=False),
            caption="Latent standard deviation, each channel on its own scale (dark low, yellow high; overall "
            f"{maps.std.min():.2f} to {maps.std.max():.2f})",
        )
        if lq_for_latent.shape[:2] != vlq.shape[:2]:
            st.caption(f"Computed on the {lq_for_latent.shape[1]}x{lq_for_latent.shape[0]} window around the zoom.")
