"""vae-enhance web app: upload a photo, denoise or upscale it, draw variations, download the result."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import streamlit as st

import vae_enhance as ve
from vae_enhance.image_io import encode_image, from_float, to_float

TASKS = {"Denoise": 1, "Upscale x2": 2, "Upscale x4": 4}


@st.cache_resource(show_spinner="Loading the model...")
def get_model():
    """One model for every session: enhance() never changes it."""
    return ve.load_model()


def preview(img: np.ndarray) -> np.ndarray:
    """8-bit version of any layout for st.image."""
    return from_float(to_float(img), np.uint8)


st.set_page_config(page_title="vae-enhance", layout="wide")
st.title("vae-enhance")
st.caption("Denoise and upscale photos with a conditional VAE, and see where it is unsure.")

try:
    model = get_model()
except ValueError as err:
    st.error(f"The model could not be loaded: {err}")
    st.stop()

with st.sidebar:
    task = st.radio("Task", list(TASKS), key="task")
    st.caption(f"Model: bundled weights ({ve.hub.BUNDLED.name}/), {next(model.parameters()).device}")

upload = st.file_uploader(
    "Drop a photo", type=["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"], key="upload"
)
if upload is None:
    st.info("Upload a photo to start.")
    st.stop()

try:
    img = ve.read_image(upload.getvalue())
except ve.ImageError as err:
    st.error(str(err))
    st.stop()

scale = TASKS[task]
if st.button("Enhance", key="enhance", type="primary"):
    bar = st.progress(0.0, text="Enhancing...")
    t0 = time.perf_counter()
    out = ve.enhance(model, img, scale, progress=lambda done, total: bar.progress(done / total, text="Enhancing..."))
    bar.empty()
    st.session_state["result"] = (upload.name, scale, out, time.perf_counter() - t0)

result = st.session_state.get("result")
left, right = st.columns(2)
left.image(preview(img), caption=f"Input {img.shape[1]}x{img.shape[0]}", width="stretch")
if result and result[0] == upload.name and result[1] == scale:
    _, _, out, seconds = result
    right.image(
        preview(out), caption=f"Enhanced {out.shape[1]}x{out.shape[0]} in {seconds:.1f} s", width="stretch"
    )
    st.download_button(
        "Download PNG",
        encode_image(out, "PNG"),
        file_name=f"{Path(upload.name).stem}_enhanced.png",
        mime="image/png",
        key="download",
    )

st.subheader("Random variations")
n = st.slider("Samples", 2, 8, 4, key="n")
temperature = st.slider("Temperature", 0.0, 2.0, 1.0, 0.1, key="temperature")
seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
if st.button("Generate variations", key="variations"):
    samples, std = ve.variations(model, img, n=n, scale=scale, temperature=temperature, seed=int(seed))
    cols = st.columns(min(n, 4))
    for i, sample in enumerate(samples):
        cols[i % len(cols)].image(preview(sample), caption=f"sample {i}", width="stretch")
    heat = std / max(float(std.max()), 1e-6)
    st.image(heat, caption=f"Uncertainty (per-pixel std, max {std.max() * 255:.1f}/255)", clamp=True)
