"""vae-enhance web app: denoise or upscale a photo, compare, draw variations, look at the latent, download.

The page, top to bottom: the operator's settings, the sidebar (model, task), the photo (an upload or an
example), the enhance button, then three tabs: before/after, random variations, latent view. The work is
done by the public API (`vae_enhance`) and vae_enhance/app_helpers.py; enhance and variation jobs wait
for one of the server's job slots (vae_enhance/jobs.py), so the server's memory stays bounded under load.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st
import torch

import vae_enhance as ve
from vae_enhance import app_helpers as ah
from vae_enhance.image_io import encode_image
from vae_enhance.jobs import JobQueue, server_queue
from vae_enhance.settings import Settings, apply_threads
from vae_enhance.slider import compare_slider

ENHANCE, SIMULATE = "Enhance a photo", "Simulate on a clean photo"
JOB_ERRORS = (ValueError, MemoryError, torch.OutOfMemoryError)
MEASURED = "measured_level"  # the noise level auto last used (session state)


class Choice(NamedTuple):
    """What the sidebar asks for. With the photo's id it keys every result, so a change shows none stale.

    A tuple, so that it compares equal across reruns: Streamlit runs this file afresh each time, which
    makes a new class each time.
    """

    model: str
    mode: str
    task: str
    sigma: int
    noise_level: float | None

    @property
    def scale(self) -> int:
        return ah.TASKS[self.task]


@dataclass(frozen=True)
class Photo:
    id: str
    name: str
    img: np.ndarray


# Settings and models


def read_settings() -> Settings:
    """The operator's settings: environment variables first, then Streamlit secrets."""
    try:
        secrets = dict(st.secrets)
    except Exception:  # no secrets file, or an unreadable one: secrets are optional
        secrets = {}
    try:
        return Settings.read(os.environ, secrets)
    except ValueError as err:
        st.error(f"This server is misconfigured: {err}")
        st.stop()


@st.cache_resource(show_spinner="Loading the model...", max_entries=16)
def listed_model(source: str, class_id: int) -> ve.VAEEnhancer:
    """A model of the operator's list, shared by every session ('' = bundled weights).

    The list is closed, so these do not evict each other (max_entries drops the models of an old class
    after code reloads, while fewer than 16 are listed). class_id is id(ve.VAEEnhancer): when Streamlit
    reloads the package after a source change, a model of the old class would fail enhance()'s type check.
    """
    return ve.load_model(source or None)


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def typed_model(source: str, class_id: int) -> ve.VAEEnhancer:
    """A model typed in by a visitor, where the operator allows that; these evict only each other."""
    return ve.load_model(source)


def model_name(source: str) -> str:
    return source or "bundled weights"


def device_text(model: ve.VAEEnhancer) -> str:
    device = next(model.parameters()).device
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})" if device.type == "cpu" else str(device)


def choose_model(settings: Settings) -> tuple[ve.VAEEnhancer, str]:
    """The sidebar's model picker: the operator's choices, plus free text only where the operator allows it."""
    choices = settings.model_choices()
    source = st.selectbox("Model", choices, format_func=model_name, key="model_choice", disabled=len(choices) == 1)
    typed = ""
    if settings.allow_any_model:
        typed = st.text_input(
            "Or another model (folder or user/name@revision)",
            key="model_source",
            placeholder="empty: the model above",
            help="A folder written by `vae-enhance train`, or a Hugging Face Hub repo such as user/name@<commit sha>.",
        ).strip()
    try:
        model = typed_model(typed, id(ve.VAEEnhancer)) if typed else listed_model(source, id(ve.VAEEnhancer))
    except ValueError as err:
        st.error(
            f"The model could not be loaded: {err}" + (" Clear the field to use the model above." if typed else "")
        )
        st.stop()
    params = sum(p.numel() for p in model.inference_parameters())
    st.caption(f"Model in use: **{model.origin}**, {params / 1e6:.2f} M parameters, {device_text(model)}")
    return model, typed or source


def choose_task(model: ve.VAEEnhancer, source: str) -> Choice:
    mode = st.radio("Mode", [ENHANCE, SIMULATE], key="mode", help="Simulate: degrade a clean photo, restore, score")
    task = st.radio("Task", tasks_of(model), key="task", help="Upscaling also removes noise.")
    sigma = 0
    if mode == SIMULATE:
        sigma = st.slider("Noise to add (sigma, 0-255 scale)", 0, 50, 25, key="sigma")
        st.caption(
            f"The app downscales the photo x{ah.TASKS[task]} (bicubic), adds noise, restores it and scores the "
            "result against the original, beside the classical methods."
            if ah.TASKS[task] > 1
            else "The app adds Gaussian noise, restores the photo and scores it against the original, "
            "beside OpenCV's non-local means."
        )
    return Choice(source, mode, task, sigma, choose_noise_level(model))


def tasks_of(model: ve.VAEEnhancer) -> list[str]:
    return [name for name, scale in ah.TASKS.items() if scale in model.config.scales]


def choose_noise_level(model: ve.VAEEnhancer) -> float | None:
    """The strength control, for models that take a noise level; None lets the model judge the noise."""
    if not model.config.noise_input:
        return None
    auto_help = (
        "The model measures the photo's noise (its noise estimator) and removes that much. It reads the "
        "grain of full-size camera photos low (the release model about half of it), so if grain remains, "
        "turn auto off and raise the level: on the real camera photos of the benchmark (CC15), any level "
        "from 7 to 15 scored 1.7-2 dB better than auto."
        if model.noise_estimator is not None
        else "The model judges the noise itself."
    )
    auto = st.checkbox("Noise level: auto", value=True, key="noise_auto", help=auto_help, on_change=_slider_at_measured)
    st.session_state.setdefault("noise_level", 15)
    if auto:
        _slider_at_measured()  # the disabled slider shows what auto used
    level = st.slider(
        "Noise level (sigma, 0-255 scale)",
        0,
        50,
        key="noise_level",
        disabled=auto,
        help="Higher removes more noise and more fine detail; lower keeps more of both. It starts at the "
        "level last measured. Set well above a photo's own level, the model smooths somewhat more, not "
        "much: it was trained with levels set too high.",
    )
    return None if auto else float(level)


def _slider_at_measured() -> None:
    """Put the strength slider at the level auto last measured, so that turning auto off starts there."""
    measured = st.session_state.get(MEASURED)
    if measured is not None:
        st.session_state["noise_level"] = slider_value(measured)


def slider_value(level: float) -> int:
    """Where the strength slider (0-50, whole steps) shows a level."""
    return min(50, max(0, round(level)))


# The photo


def memo(name: str, key: tuple, compute: Callable):
    """Session-scoped cache of one value: recomputed only when `key` changes."""
    slot = st.session_state.get(name)
    if slot is None or slot[0] != key:
        slot = (key, compute())
        st.session_state[name] = slot
    return slot[1]


def pick_example(example: ah.Example, tasks: list[str]) -> None:
    """Button callback: open an example with the settings it is meant for."""
    st.session_state["example"] = example.file
    st.session_state["mode"] = SIMULATE if example.simulate else ENHANCE
    if example.task in tasks:
        st.session_state["task"] = example.task


def show_examples(tasks: list[str]) -> None:
    st.markdown("**Try an example** (small photos that ship with the app):")
    for col, example in zip(st.columns(len(ah.EXAMPLES)), ah.EXAMPLES, strict=True):
        col.button(example.label, key=f"example_{example.file}", on_click=pick_example, args=(example, tasks))


def get_photo(tasks: list[str]) -> Photo:
    """The uploaded photo, else the example picked; stops the page with a hint or an error otherwise."""
    upload = st.file_uploader(
        "Drop a photo (JPEG, PNG, WebP, TIFF, BMP, GIF; 16-bit, gray and alpha are kept)",
        type=ah.UPLOAD_TYPES,
        key="upload",
    )
    if upload is not None:
        photo_id, name, read = upload.file_id, upload.name, upload.getvalue
    else:
        show_examples(tasks)
        example = next((e for e in ah.EXAMPLES if e.file == st.session_state.get("example")), None)
        if example is None:
            st.info(
                "Upload a photo to start: a noisy one to denoise, a small one to upscale, or a clean one in "
                "Simulate mode (sidebar) to see how well the model does."
            )
            st.stop()
        photo_id, name, read = f"example:{example.file}", example.file, example.read
    try:
        img = memo("photo", (photo_id,), lambda: ve.read_image(read(), max_pixels=ah.MAX_INPUT_PIXELS))
    except ve.ImageError as err:
        st.session_state.pop("photo", None)
        st.error(f"{name} could not be used: {err}")
        st.stop()
    st.caption(f"**{name}**: {ah.describe_image(img)}")
    return Photo(photo_id, name, img)


# Jobs: queued for a slot, then run with a progress bar


@contextmanager
def job_request(name: str):
    """Keep st.session_state[name] (a requested job) until the job ends, with a result or an error.

    Streamlit interrupts a script to rerun it (another click, a widget) by raising a BaseException that
    passes through here: the request then stays, and the rerun takes the job up again.
    """
    try:
        yield
    except Exception:
        st.session_state.pop(name, None)
        raise
    st.session_state.pop(name, None)


def run_queued(queue: JobQueue, text: str, work: Callable) -> tuple[object, float, float]:
    """work(progress) in one of the server's job slots; returns (its value, seconds queued, seconds working)."""
    status = st.empty()

    def waiting(ahead: int) -> None:
        status.info(
            f"Queued: {ahead} job{'s' if ahead != 1 else ''} ahead of yours on this server (up to {queue.limit} "
            "run at once). Keep this page open: yours starts by itself."
        )

    with queue.slot(on_wait=waiting) as waited:
        bar = status.progress(0.0, text=text)
        start = time.perf_counter()
        try:
            value = work(lambda done, total: bar.progress(done / total, text=f"{text} {done / total:.0%}"))
        finally:
            ah.release_memory()
    status.empty()
    return value, waited, time.perf_counter() - start


def error_text(err: Exception) -> str:
    if isinstance(err, torch.OutOfMemoryError):
        return "out of GPU memory: try a smaller photo or scale"
    return str(err) if isinstance(err, ValueError) else "out of memory: try a smaller photo or scale"


def timing(waited: float, seconds: float, model: ve.VAEEnhancer) -> str:
    queued = f", after {waited:.0f} s in the queue" if waited >= 1 else ""
    return f"{seconds:.1f} s on {device_text(model)}{queued}"


def resolve_level(model: ve.VAEEnhancer, lq: np.ndarray, choice: Choice) -> tuple[float | None, str]:
    """The level enhance is told and the text that reports it: the user's, or the photo's, measured once."""
    if choice.noise_level is not None:
        return choice.noise_level, f"; noise level {choice.noise_level:g} (set)"
    measured = ve.estimate_noise(model, lq, choice.scale)  # None for a model that judges the noise itself
    return measured, "" if measured is None else f"; noise level {measured:.1f} (measured)"


def choose_best() -> bool:
    return st.checkbox(
        "Best quality (8 passes, about 8x slower)",
        key="self_ensemble",
        help="Restores the photo in its eight flips and quarter turns and averages them: about 0.1-0.25 dB "
        "better (docs/benchmarks.md). Random variations are drawn as before.",
    )


def restore(model: ve.VAEEnhancer, photo: Photo, choice: Choice, best: bool, progress) -> dict:
    """The enhance button's job: the result, or in simulate mode the degraded input, result and scores."""
    quality = "; best quality (8 passes)" if best else ""
    if choice.mode == SIMULATE:
        sim = ah.simulate(photo.img, choice.sigma, choice.scale)
        level, text = resolve_level(model, sim.lq, choice)
        text += quality
        out = ve.enhance(model, sim.lq, choice.scale, noise_level=level, progress=progress, self_ensemble=best)
        others = ah.baselines(sim)
        rows = ah.score_rows(sim, out, others)
        return {
            "lq": sim.lq,
            "out": out,
            "sim": sim,
            "baselines": others,
            "rows": rows,
            "level": text,
            "noise_level": level,
        }
    ah.check_output_size(photo.img.shape, choice.scale)
    level, text = resolve_level(model, photo.img, choice)
    text += quality
    out = ve.enhance(model, photo.img, choice.scale, noise_level=level, progress=progress, self_ensemble=best)
    return {"lq": photo.img, "out": out, "level": text, "noise_level": level}


def enhance_section(
    model: ve.VAEEnhancer, photo: Photo, choice: Choice, best: bool, key: tuple, queue: JobQueue
) -> str:
    label = "Degrade and restore" if choice.mode == SIMULATE else f"Enhance ({choice.task.lower()})"
    if st.button(label, key="enhance", type="primary"):
        st.session_state["enhance_request"] = key
    if st.session_state.get("enhance_request") == key:
        for stale in ("result", "comparison"):  # free the previous result before making the next one
            st.session_state.pop(stale, None)
        measured = None
        with job_request("enhance_request"):
            try:
                result, waited, seconds = run_queued(
                    queue, "Restoring...", lambda p: restore(model, photo, choice, best, p)
                )
                result.update(key=key, about=timing(waited, seconds, model), token=time.time_ns())
                st.session_state["result"] = result
                if choice.noise_level is None and result["noise_level"] is not None:  # auto measured it
                    st.session_state[MEASURED] = measured = result["noise_level"]
            except JOB_ERRORS as err:
                st.error(f"Could not {label.lower()}: {error_text(err)}")
        if measured is not None and slider_value(measured) != st.session_state.get("noise_level"):
            st.rerun()  # the sidebar was drawn before the measurement: draw it again, its slider at that level
    return label


# Before / after


def comparison_previews(lq: np.ndarray, out: np.ndarray) -> tuple[str, str, bool]:
    """Lossless previews of one size for the slider, and whether they are enlarged (then drawn pixelated)."""
    before, after = ah.comparison_pair(lq, out)
    return ah.png_data_url(before), ah.png_data_url(after), after.shape[1] > out.shape[1]


@st.fragment
def show_zoom(lq: np.ndarray, out: np.ndarray, scale: int) -> None:
    """The same pixels of input and result side by side; a fragment, so its sliders rerun only this part."""
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
        data=lambda: encode_image(out, fmt, quality),
        file_name=f"{stem}_enhanced.{ah.EXTENSION[fmt]}",
        mime=ah.MIME[fmt],
        key="download",
        on_click="ignore",
        type="primary",
    )
    st.caption(ah.download_note(out, fmt))


def show_scores(result: dict) -> None:
    sim = result["sim"]
    st.markdown(
        f"**Scores against the original** ({sim.hq.shape[1]}x{sim.hq.shape[0]} central crop; "
        f"noise sigma {sim.sigma:g}, downscale x{sim.scale})"
    )
    st.dataframe(result["rows"], hide_index=True)
    shown = {"Original": sim.hq, "Degraded input": sim.lq, **result["baselines"], "vae-enhance": result["out"]}
    for col, (name, picture) in zip(st.columns(len(shown)), shown.items(), strict=True):
        col.image(ah.fit(ah.as_rgb8(picture), 800), caption=name, width="stretch")


def show_result(result: dict | None, photo: Photo, choice: Choice, label: str) -> None:
    if result is None:
        st.info(f"Press **{label}** to see the result here.")
        return
    lq, out = result["lq"], result["out"]
    size = ah.describe_image(lq).split(",")[0]
    st.success(f"{size} -> {out.shape[1]}x{out.shape[0]} in {result['about']}{result.get('level', '')}")
    if "rows" in result:
        show_scores(result)
    before, after, pixels = memo("comparison", (result["token"],), lambda: comparison_previews(lq, out))
    st.caption("Drag across the picture (or use the arrow keys) to compare: input left, result right.")
    compare_slider(before, after, pixels=pixels)
    show_zoom(lq, out, choice.scale)
    if "rows" not in result:
        show_download(out, Path(photo.name).stem)


# Random variations


def new_seed() -> None:
    st.session_state["seed"] = random.randrange(2**31)


def show_variations(model: ve.VAEEnhancer, lq: np.ndarray, stem: str, choice: Choice, key: tuple, queue: JobQueue):
    st.markdown(
        "A VAE draws its answer from a distribution: each sample is a different plausible restoration. "
        "Where the samples disagree the photo alone does not tell, which is the model's uncertainty."
    )
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    n = c1.slider("Samples", 2, 8, 4, key="n_samples")
    scale = model.config.prior_scale
    help_text = "0 = the best estimate; 1 = the spread the model was calibrated to"
    if scale != 1.0:
        help_text += f" (its prior at {scale:g} of its trained width; {1 / scale:.1f} = the prior as trained)"
    temperature = c2.slider("Temperature", 0.0, 2.0, 1.0, 0.1, key="temperature", help=help_text)
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key="seed", help="The same seed gives the same samples."))
    c4.button("New seed", key="new_seed", on_click=new_seed)
    window = ah.region(lq, choice.scale, zoom_center())
    if window.shape[:2] != lq.shape[:2]:
        st.caption(
            f"This photo is large: variations are drawn on a {window.shape[1]}x{window.shape[0]} window around the "
            "zoom position (Before / after tab)."
        )
    if st.button("Generate variations", key="variations", type="primary"):
        st.session_state["variations_request"] = key
    if st.session_state.get("variations_request") == key:

        def draw(progress):
            level = choice.noise_level
            return ve.variations(
                model, window, n, choice.scale, temperature, seed, noise_level=level, progress=progress
            )

        with job_request("variations_request"):
            try:
                (samples, std), waited, seconds = run_queued(queue, "Sampling...", draw)
                about = f"{n} samples, temperature {temperature:g}, seed {seed}, {timing(waited, seconds, model)}"
                st.session_state["variations_result"] = {"key": key, "samples": samples, "std": std, "about": about}
            except JOB_ERRORS as err:
                st.error(f"Could not draw variations: {error_text(err)}")
    drawn = st.session_state.get("variations_result")
    if drawn is not None and drawn["key"] == key:
        show_samples(drawn, stem)


def show_samples(drawn: dict, stem: str) -> None:
    st.caption(drawn["about"])
    samples = drawn["samples"]
    cols = st.columns(min(len(samples), 4))
    for i, sample in enumerate(samples):
        with cols[i % len(cols)]:
            st.image(ah.fit(ah.as_rgb8(sample), 600), caption=f"sample {i}", width="stretch")
            st.download_button(
                "Download PNG",
                data=lambda sample=sample: encode_image(sample, "PNG"),
                file_name=f"{stem}_sample{i}.png",
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


# Latent view


def zoom_center() -> tuple[float, float]:
    return st.session_state.get("zoom_y", 50) / 100, st.session_state.get("zoom_x", 50) / 100


def show_latent(model: ve.VAEEnhancer, lq: np.ndarray, choice: Choice, key: tuple) -> None:
    st.markdown(
        "**Encode -> sample -> decode.** The prior network *encodes* the photo into a small grid "
        f"(1/{model.config.latent_stride} of the output size) holding a Gaussian per cell: a mean and a standard "
        "deviation.  \nEnhancing *decodes* the means; variations *sample* z = mean + temperature x std x noise and "
        "decode each sample, so bright std cells are where the samples may differ."
    )
    window = ah.region(lq, choice.scale, zoom_center())
    try:
        maps = memo("latents", (*key, window.shape, zoom_center()), lambda: ah.latent_maps(model, window, choice.scale))
    except JOB_ERRORS as err:
        st.error(f"Could not compute the latent maps: {error_text(err)}")
        return
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
    if window.shape[:2] != lq.shape[:2]:
        st.caption(f"Computed on the {window.shape[1]}x{window.shape[0]} window around the zoom.")


# The page

st.set_page_config(page_title="vae-enhance", page_icon=":material/auto_fix_high:", layout="wide")
settings = read_settings()
apply_threads(settings.threads)
queue = server_queue(settings.max_jobs)

with st.sidebar:
    st.header("vae-enhance")
    model, source = choose_model(settings)
    choice = choose_task(model, source)
    best = choose_best()

st.title("vae-enhance")
st.caption(
    "Denoise and upscale photos with a conditional VAE, draw several plausible restorations, and see where they "
    "disagree."
)
photo = get_photo(tasks_of(model))
key = (photo.id, choice)
# The result is made for the quality setting too; variations and the latent view are not, and are kept.
label = enhance_section(model, photo, choice, best, (*key, best), queue)

result = st.session_state.get("result")
if result is not None and result["key"] != (*key, best):
    result = None  # made for another photo, model or setting
# In simulate mode, variations and the latent view work on the degraded input the scores were made from.
lq = result["lq"] if result is not None and "sim" in result else photo.img

before_after, variations_tab, latent_tab = st.tabs(
    ["Before / after", "Random variations", "Latent view"], key="view", on_change="rerun"
)  # keyed: a rerun (e.g. Generate variations) stays on the open tab
with before_after:
    show_result(result, photo, choice, label)
with variations_tab:
    show_variations(model, lq, Path(photo.name).stem, choice, key, queue)
with latent_tab:
    show_latent(model, lq, choice, key)
