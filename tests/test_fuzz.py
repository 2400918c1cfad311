"""Property tests (hypothesis) of read_image and enhance, and a short fuzz run over random and mutated image bytes.

Bounded for CI: fixed example counts, a per-example deadline and derandomized (the same examples every run, so a
failure reproduces); the whole file takes about ten seconds. A longer, random run:
FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import vae_enhance as ve
from vae_enhance.image_io import check_image, encode_image

FUZZ = int(os.environ.get("FUZZ_EXAMPLES", "0"))
BOUNDED = settings(deadline=3000, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def examples(n: int) -> settings:
    return settings(BOUNDED, max_examples=max(n, FUZZ))


@st.composite
def arrays(draw, max_side: int = 24):
    """Any array of the API: 1..max_side a side, gray/RGB/RGBA, uint8/uint16/float32 (float may leave [0, 1])."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    channels = draw(st.sampled_from([None, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (h, w) if channels is None else (h, w, channels)
    if dtype == np.float32:
        return (rng.random(shape, dtype=np.float32) * 1.4 - 0.2).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@examples(60)
@given(img=arrays(), fmt=st.sampled_from(["PNG", "TIFF"]))
def test_lossless_round_trip(img, fmt):
    back = ve.read_image(encode_image(img, fmt))
    if img.dtype == np.float32 and fmt == "PNG":  # float PNG is written as 16-bit
        assert back.dtype == np.uint16 and back.shape == img.shape
        np.testing.assert_allclose(back / 65535.0, np.clip(img, 0, 1), atol=0.5 / 65535 + 1e-7)
    else:
        assert back.dtype == img.dtype and back.shape == img.shape
        np.testing.assert_array_equal(back, img)


@examples(30)
@given(img=arrays(), fmt=st.sampled_from(["JPEG", "WEBP"]))
def test_lossy_formats_keep_layout(img, fmt):
    back = ve.read_image(encode_image(img, fmt))
    assert back.dtype == np.uint8 and back.shape[:2] == img.shape[:2]
    check_image(back)
    if fmt == "JPEG":  # gray stays gray, RGB(A) becomes RGB; WebP has no gray and may drop an opaque alpha
        assert back.shape[2:] == (() if img.ndim == 2 else (3,))


@examples(60)
@given(img=arrays(max_side=20), scale=st.sampled_from([1, 2, 4]), tile=st.sampled_from([None, 0, 8]))
def test_enhance_keeps_layout_dtype_and_alpha(tiny_model, img, scale, tile):
    out = ve.enhance(tiny_model, img, scale, tile=tile)
    assert out.dtype == img.dtype and out.shape == (img.shape[0] * scale, img.shape[1] * scale, *img.shape[2:])
    if img.dtype == np.float32:
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if scale == 1 and img.ndim == 3 and img.shape[2] == 4:
        expected = np.clip(img[..., 3], 0, 1) if img.dtype == np.float32 else img[..., 3]
        np.testing.assert_array_equal(out[..., 3], expected)


@examples(20)
@given(img=arrays(max_side=16), n=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_variations_shape_and_reproducibility(tiny_model, img, n, seed):
    samples, std = ve.variations(tiny_model, img, n=n, seed=seed)
    assert samples.shape == (n, *img.shape) and samples.dtype == img.dtype
    assert std.shape == img.shape[:2] and std.dtype == np.float32 and (std >= 0).all()
    np.testing.assert_array_equal(samples, ve.variations(tiny_model, img, n=n, seed=seed)[0])


def _seed_files() -> list[bytes]:
    """Small valid files of every format and layout the readers handle: the starting points for mutation."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    files = [
        encode_image(rgb, "PNG"),
        encode_image(rgb[..., 0], "PNG"),
        encode_image(rgb.astype(np.uint16) * 257, "PNG"),
        encode_image(np.dstack([rgb, rgb[..., 0]]), "PNG"),
        encode_image(rgb, "JPEG"),
        encode_image(rgb, "WEBP"),
        encode_image(rgb.astype(np.uint16) * 257, "TIFF"),
        encode_image(rng.random((12, 16, 3), dtype=np.float32), "TIFF"),
    ]
    for fmt, kw in (("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True})):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt, **kw)
        files.append(buf.getvalue())
    return files


SEEDS = _seed_files()


def _length_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, byte order) of the size fields decoders trust: PNG chunk lengths, TIFF directory values."""
    fields = []
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(data):
            fields.append((pos, ">"))
            pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    elif data[:4] in (b"II*\0", b"MM\0*") and len(data) >= 8:
        order = "<" if data[:2] == b"II" else ">"
        ifd = struct.unpack_from(order + "I", data, 4)[0]
        if ifd + 2 <= len(data):
            count = struct.unpack_from(order + "H", data, ifd)[0]
            fields += [(ifd + 2 + 12 * i + 8, order) for i in range(count) if ifd + 14 + 12 * i <= len(data)]
    return fields


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """1-4 mutations: overwrite a byte, cut or insert a run, cut the tail, or set a size field to a large number."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(0, max(len(data), 1)))
        action = int(rng.integers(0, 5))
        if action == 0 and data:
            data[at] = int(rng.integers(0, 256))
        elif action == 1:
            del data[at : at + int(rng.integers(1, 65))]
        elif action == 2:
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 33)), dtype=np.uint8).tobytes()
        elif action == 3:
            del data[at:]
        elif fields := _length_fields(bytes(data)):
            pos, order = fields[int(rng.integers(0, len(fields)))]
            struct.pack_into(order + "I", data, pos, int(rng.integers(2**16, 2**31)))
    return bytes(data)


# A seed file and the numpy seed of its mutations: hypothesis explores, mutate() stays one implementation.
mutated = st.builds(
    lambda i, seed: mutate(np.random.default_rng(seed), SEEDS[i]),
    st.integers(0, len(SEEDS) - 1),
    st.integers(0, 2**32 - 1),
)


def _read_or_refuse(data: bytes) -> None:
    """The contract for any bytes: a valid API array, or an ImageError with a message; nothing else."""
    try:
        img = ve.read_image(data, max_pixels=4_000_000)  # mutated headers may claim large sizes: keep it small
    except ve.ImageError as err:
        assert str(err)
        return
    check_image(img)


@examples(1000)
@given(data=mutated)
def test_mutated_files_are_read_or_refused(data):
    _read_or_refuse(data)


@examples(300)
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused(data):
    """Bytes without any image signature are never taken for a picture: always an ImageError with a message."""
    with pytest.raises(ve.ImageError) as refused:
        ve.read_image(data, max_pixels=4_000_000)
    assert str(refused.value)


@examples(300)
@given(head=st.sampled_from([s[:8] for s in SEEDS]), tail=st.binary(max_size=1024))
def test_valid_signatures_with_random_bodies(head, tail):
    _read_or_refuse(head + tail)


MEMORY_PROBE = """
import resource, sys, time
from pathlib import Path
import vae_enhance as ve
ve.read_image(Path(sys.argv[1], "seed.bin"))  # warm up every decoder before the baseline
ve.read_image(Path(sys.argv[1], "seed16.bin"))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
slowest = 0.0
for path in sorted(Path(sys.argv[1]).glob("*.fuzz")):
    start = time.perf_counter()
    try:
        ve.read_image(path, max_pixels=1_000_000)
    except ve.ImageError:
        pass
    slowest = max(slowest, time.perf_counter() - start)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, slowest)
"""


def test_mutated_files_decode_in_bounded_memory_and_time(tmp_path):
    """800 mutated files in one fresh process: peak RSS grows by less than 150 MB and no file takes a second.

    With a 1 MP limit no legitimate decode needs more than 16 MB; this caught OpenCV allocating the 2 GB
    that a damaged PNG chunk header claimed.
    """
    rng = np.random.default_rng(1)
    (tmp_path / "seed.bin").write_bytes(SEEDS[0])
    (tmp_path / "seed16.bin").write_bytes(SEEDS[2])
    for i in range(800):
        (tmp_path / f"{i:04d}.fuzz").write_bytes(mutate(rng, SEEDS[i % len(SEEDS)]))
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb, slowest = map(float, done.stdout.split())
    assert grown_mb < 150 and slowest < 1.0, (grown_mb, slowest)
