"""The before/after comparison slider, drawn in the browser (Streamlit components v2, inline HTML/CSS/JS).

Dragging moves a clip on the input image over the result in the page itself: nothing is sent back to the
server, so the script does not rerun. Both images arrive as lossless PNG data URLs of the same size.
"""

from __future__ import annotations

import streamlit as st

HTML = """
<div class="compare" tabindex="0" role="slider" aria-valuemin="0" aria-valuemax="100" aria-valuenow="50"
     aria-label="Comparison: drag, or use the arrow keys">
  <img class="after" alt="result" draggable="false">
  <img class="before" alt="input" draggable="false">
  <div class="handle"><span class="grip"></span></div>
  <span class="tag left">input</span><span class="tag right">result</span>
</div>
"""

CSS = """
.compare { position: relative; width: 100%; user-select: none; touch-action: none; cursor: ew-resize;
           line-height: 0; --pos: 50%; outline: none; }
.compare img { width: 100%; height: auto; display: block; }
.compare img.before { position: absolute; inset: 0; clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.compare.pixels img { image-rendering: pixelated; }
.handle { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px; margin-left: -1px; background: #fff;
          box-shadow: 0 0 3px rgba(0, 0, 0, 0.6); pointer-events: none; }
.grip { position: absolute; top: 50%; left: 50%; width: 28px; height: 28px; margin: -14px 0 0 -14px;
        border-radius: 50%; background: var(--st-primary-color, #4f9dff); border: 2px solid #fff; }
.compare:focus-visible .grip { box-shadow: 0 0 0 3px rgba(255, 255, 255, 0.6); }
.tag { position: absolute; top: 8px; padding: 2px 8px; line-height: 1.4; font: 12px sans-serif; color: #fff;
       background: rgba(0, 0, 0, 0.55); border-radius: 4px; pointer-events: none; }
.tag.left { left: 8px; }
.tag.right { right: 8px; }
"""

JS = """
export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".compare");
  const before = root.querySelector("img.before");
  const after = root.querySelector("img.after");
  if (before.src !== data.before) before.src = data.before;
  if (after.src !== data.after) after.src = data.after;
  root.classList.toggle("pixels", Boolean(data.pixels));
  root.querySelector(".tag.left").textContent = data.left;
  root.querySelector(".tag.right").textContent = data.right;

  const place = (percent) => {
    const p = Math.min(100, Math.max(0, percent));
    root.style.setProperty("--pos", p + "%");
    root.setAttribute("aria-valuenow", String(Math.round(p)));
  };
  const fromPointer = (event) => {
    const box = root.getBoundingClientRect();
    place(((event.clientX - box.left) / box.width) * 100);
  };
  const down = (event) => { root.setPointerCapture(event.pointerId); fromPointer(event); };
  const move = (event) => { if (root.hasPointerCapture(event.pointerId)) fromPointer(event); };
  const key = (event) => {
    const step = { ArrowLeft: -5, ArrowRight: 5 }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    place(Number(root.getAttribute("aria-valuenow")) + step);
  };
  root.addEventListener("pointerdown", down);
  root.addEventListener("pointermove", move);
  root.addEventListener("keydown", key);
  return () => {
    root.removeEventListener("pointerdown", down);
    root.removeEventListener("pointermove", move);
    root.removeEventListener("keydown", key);
  };
}
"""

_compare = st.components.v2.component("vae_enhance_compare", html=HTML, css=CSS, js=JS)


def compare_slider(before_png: str, after_png: str, *, pixels: bool = False, key: str = "compare") -> None:
    """Show two PNG data URLs of one size (png_data_url) with a draggable divider; pixels: no smoothing."""
    data = {"before": before_png, "after": after_png, "pixels": pixels, "left": "input", "right": "result"}
    _compare(data=data, key=key)
