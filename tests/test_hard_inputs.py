"""What people really send: every awkward file either works (layout, dtype and alpha kept) or raises a clear
ImageError, quickly and without decoding more than the pixel limit allows; through the API and the app."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import vae_enhance as ve
from vae_enhance import image_io
from vae_enhance.image_io import MAX_PIXELS_ENV, check_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
RGBA = np.dstack([RGB, RGB[..., 0]])


def pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def cv2_bytes(arr: np.ndarray, ext: str = ".tiff") -> bytes:
    """Encode with OpenCV (BGR order, as it expects), for the 16-bit and float TIFFs Pillow cannot write."""
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    return cv2.imencode(ext, arr)[1].tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(arr: np.ndarray, color_type: int) -> bytes:
    """A PNG written by hand, for layouts no encoder here writes (16-bit gray + alpha)."""
    h, w = arr.shape[:2]
    bits = 16 if arr.dtype == np.uint16 else 8
    rows = arr.astype(">u2" if bits == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height RGB, with a few rows of compressed zeros."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (min(width, 4096) * 3 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def jpeg_bomb(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 claims width x height (real JPEG dimensions top out at 65535)."""
    data = bytearray(pil_bytes(Image.fromarray(RGB), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_bomb(width: int, height: int) -> bytes:
    """A float RGB TIFF (the OpenCV fallback path) whose header claims width x height."""
    data = bytearray(cv2.imencode(".tiff", np.zeros((4, 4, 3), np.float32))[1].tobytes())
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        if tag in (256, 257):
            fmt = "<H" if kind == 3 else "<I"
            data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, width if tag == 256 else height)
    return bytes(data)


def swapped_profile() -> bytes:
    """An RGB ICC profile that is sRGB with the red and green primaries exchanged (and not named sRGB)."""
    prof = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    for i in range(struct.unpack(">I", prof[128:132])[0]):
        entry = 132 + 12 * i
        if prof[entry : entry + 4] in (b"rXYZ", b"gXYZ"):
            prof[entry : entry + 4] = b"gXYZ" if prof[entry : entry + 4] == b"rXYZ" else b"rXYZ"
    return bytes(prof).replace("sRGB".encode("utf-16-be"), "xRGB".encode("utf-16-be"))


def smooth_rgb(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(np.uint8)


def animated(fmt: str) -> tuple[bytes, np.ndarray]:
    first, second = smooth_rgb(), 255 - smooth_rgb()
    frames = [Image.fromarray(first), Image.fromarray(second)]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    return pil_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw), first


def _gif_with_transparency() -> bytes:
    pal = Image.new("P", (6, 5))
    pal.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    pal.putpixel((2, 2), 1)
    return pil_bytes(pal, "GIF", transparency=0)


def _png_16_bit(shape) -> bytes:
    return ve.image_io.encode_image(RNG.integers(0, 65536, shape, dtype=np.uint16), "PNG")


# Files that must decode: name -> (bytes, expected shape, expected dtype).
GOOD = {
    "gray png": (pil_bytes(Image.fromarray(RGB).convert("L"), "PNG"), (20, 30), np.uint8),
    "1-bit png": (pil_bytes(Image.fromarray(RGB).convert("1"), "PNG"), (20, 30), np.uint8),
    "gray+alpha png": (pil_bytes(Image.fromarray(RGB).convert("LA"), "PNG"), (20, 30, 4), np.uint8),
    "16-bit gray+alpha png": (raw_png(RNG.integers(0, 65536, (20, 30, 2), dtype=np.uint16), 4), (20, 30, 4), np.uint16),
    "palette gif with transparency": (_gif_with_transparency(), (5, 6, 4), np.uint8),
    "palette png": (pil_bytes(Image.fromarray(RGB).convert("P"), "PNG"), (20, 30, 3), np.uint8),
    "rgba png": (pil_bytes(Image.fromarray(RGBA), "PNG"), (20, 30, 4), np.uint8),
    "rgba webp": (
        pil_bytes(Image.fromarray(RGBA), "WEBP", lossless=True),
        (20, 30, 4),
        np.uint8,
    ),
    "cmyk jpeg": (pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG"), (20, 30, 3), np.uint8),
    "cmyk tiff": (pil_bytes(Image.fromarray(RGB).convert("CMYK"), "TIFF"), (20, 30, 3), np.uint8),
    "16-bit rgb png": (_png_16_bit((20, 30, 3)), (20, 30, 3), np.uint16),
    "16-bit rgba tiff": (
        cv2_bytes(RNG.integers(0, 65536, (20, 30, 4), dtype=np.uint16)),
        (20, 30, 4),
        np.uint16,
    ),
    "float gray tiff": (
        cv2_bytes(RNG.random((20, 30), dtype=np.float32)),
        (20, 30),
        np.float32,
    ),
    "float rgb tiff": (
        cv2_bytes(RNG.random((20, 30, 3), dtype=np.float32)),
        (20, 30, 3),
        np.float32,
    ),
    "float rgba tiff": (
        cv2_bytes(RNG.random((20, 30, 4), dtype=np.float32)),
        (20, 30, 4),
        np.float32,
    ),
    "animated gif": (animated("GIF")[0], (24, 32, 3), np.uint8),
    "animated webp": (animated("WEBP")[0], (24, 32, 3), np.uint8),
    "animated png": (animated("PNG")[0], (24, 32, 3), np.uint8),
    "bmp": (pil_bytes(Image.fromarray(RGB), "BMP"), (20, 30, 3), np.uint8),
    "1x1 png": (pil_bytes(Image.fromarray(RGB[:1, :1]), "PNG"), (1, 1, 3), np.uint8),
    "1x10000 png": (
        pil_bytes(Image.fromarray(np.tile(RGB[:1], (1, 334, 1))[:, :10000]), "PNG"),
        (1, 10000, 3),
        np.uint8,
    ),
    "10000x1 gray png": (pil_bytes(Image.fromarray(np.tile(RGB[:, :1, 0], (500, 1))), "PNG"), (10000, 1), np.uint8),
    "odd 7x3 jpeg": (pil_bytes(Image.fromarray(RGB[:7, :3]), "JPEG"), (7, 3, 3), np.uint8),
}

_JPEG = pil_bytes(Image.fromarray(smooth_rgb(64, 64)), "JPEG", quality=90)
_PNG = pil_bytes(Image.fromarray(RGB), "PNG")
_PNG16 = _png_16_bit((32, 32, 3))

# Files that must be refused with an ImageError whose message matches.
BAD = {
    "empty": (b"", "empty"),
    "text": (b"Dear photo editor,\nplease make this sharper.\n" * 20, "not an image"),
    "random bytes": (RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not an image"),
    "png signature only": (_PNG[:8], "not an image|damaged|truncated"),
    "truncated jpeg (header)": (_JPEG[:200], "damaged|truncated"),
    "truncated jpeg (half)": (_JPEG[: len(_JPEG) // 2], "damaged|truncated"),
    "truncated png (half)": (_PNG[: len(_PNG) // 2], "damaged|truncated"),
    "truncated png (90%)": (_PNG[: len(_PNG) * 9 // 10], "damaged|truncated"),
    "truncated 16-bit png": (_PNG16[: len(_PNG16) // 2], "damaged|truncated"),
    "png bomb 60000x60000": (png_bomb(60000, 60000), "limit"),
    "png bomb 12000x12000": (png_bomb(12000, 12000), "limit"),
    "jpeg bomb 65000x65000": (jpeg_bomb(65000, 65000), "limit"),
    "float tiff bomb 60000x60000": (tiff_bomb(60000, 60000), "limit"),
    "signed int tiff": (cv2_bytes(RNG.integers(-5, 5, (8, 8), dtype=np.int32)), "int32"),
}


@pytest.mark.parametrize("name", GOOD)
def test_good_files_decode_to_the_api_layout(name):
    data, shape, dtype = GOOD[name]
    img = ve.read_image(data)
    assert img.shape == shape and img.dtype == dtype
    check_image(img)


@pytest.mark.parametrize("name", BAD)
def test_bad_files_raise_image_error_quickly(name, tmp_path):
    data, message = BAD[name]
    path = tmp_path / "photo.jpg"  # an image extension on every one of them
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(ve.ImageError, match=message) as info:
        ve.read_image(path)
    assert time.perf_counter() - start < 2.0
    assert "photo.jpg" in str(info.value)  # the message names the file


def test_bombs_are_refused_without_decoding(tmp_path):
    """Peak RSS of a fresh process barely moves while it refuses every bomb (a decode would need GBs)."""
    bombs = [name for name in BAD if "bomb" in name]
    for i, name in enumerate(bombs):
        (tmp_path / f"{i}.bin").write_bytes(BAD[name][0])
    code = f"""
import json, resource, vae_enhance as ve
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
for i in range({len(bombs)}):
    try:
        ve.read_image({str(tmp_path)!r} + f"/{{i}}.bin")
    except ve.ImageError as err:
        errors.append(str(err))
print(json.dumps([errors, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    errors, grown_mb = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(errors) == len(bombs) and all("limit" in e for e in errors)
    assert grown_mb < 50


def test_pixel_limit_message_names_the_setting():
    with pytest.raises(
        ve.ImageError, match=f"12000x12000 = 144.0 MP, over the pixel limit of 100.0 MP.*{MAX_PIXELS_ENV}"
    ):
        ve.read_image(png_bomb(12000, 12000))


def test_pixel_limit_from_the_environment(monkeypatch):
    data = pil_bytes(Image.fromarray(RGB), "PNG")  # 600 pixels
    monkeypatch.setenv(MAX_PIXELS_ENV, "599")
    with pytest.raises(ve.ImageError, match="30x20 = 600 pixels, over the pixel limit of 599 pixels"):
        ve.read_image(data)
    monkeypatch.setenv(MAX_PIXELS_ENV, "6e2")
    assert ve.read_image(data).shape == (20, 30, 3)
    assert ve.read_image(data, max_pixels=10_000).shape == (20, 30, 3)  # an explicit argument wins
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ve.ImageError, match=f"{MAX_PIXELS_ENV}='lots' is not a pixel count"):
        ve.read_image(data)


def test_pillows_own_bomb_guard_does_not_refuse_what_the_limit_allows(monkeypatch):
    monkeypatch.setattr(image_io.Image, "MAX_IMAGE_PIXELS", 1000)  # stricter than the limit
    data = pil_bytes(Image.fromarray(np.tile(RGB, (5, 5, 1))), "PNG")  # 100 x 150 = 15,000 pixels
    assert ve.read_image(data, max_pixels=20_000).shape == (100, 150, 3)
    with pytest.raises(ve.ImageError, match="over the pixel limit of 14,999 pixels"):
        ve.read_image(data, max_pixels=14_999)


def test_result_over_the_pixel_limit_is_refused_before_any_work(tiny_model, monkeypatch):
    img = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(30 * 40 * 4))
    assert ve.enhance(tiny_model, img, 2).shape == (60, 80, 3)
    with pytest.raises(ve.ImageError, match="the result is 160x120 = 19,200 pixels, over the pixel limit"):
        ve.enhance(tiny_model, img, 4)
    with pytest.raises(ve.ImageError, match="the result is 2 x 80x60.*fewer samples"):
        ve.variations(tiny_model, img, n=2, scale=2)


def test_gray_alpha_becomes_rgba_with_the_gray_repeated():
    la = np.dstack([RGB[..., 0], RGB[..., 1]])
    for data in (pil_bytes(Image.fromarray(la, "LA"), "PNG"), raw_png(la.astype(np.uint16) * 257, 4)):
        img = ve.read_image(data)
        scale = 257 if img.dtype == np.uint16 else 1
        np.testing.assert_array_equal(img[..., :3], np.repeat(la[..., :1], 3, axis=2).astype(img.dtype) * scale)
        np.testing.assert_array_equal(img[..., 3], la[..., 1].astype(img.dtype) * scale)


def test_cmyk_jpeg_comes_back_as_rgb():
    rgb = smooth_rgb()
    img = ve.read_image(pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100))
    assert np.abs(img.astype(int) - rgb).mean() < 3


def test_animations_give_the_first_frame():
    for fmt in ("GIF", "WEBP", "PNG"):
        data, first = animated(fmt)
        img = ve.read_image(data)
        to_first, to_second = (np.abs(img.astype(int) - frame).mean() for frame in (first, 255 - first))
        assert to_first <= (10 if fmt == "GIF" else 0) and to_second > 50, fmt  # GIF quantises to a palette


# The displayed image for each EXIF orientation, from the stored one (the EXIF 2.32 definitions).
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirror, then rotate 90 degrees clockwise
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["jpeg", "png", "16-bit png", "8-bit tiff", "16-bit tiff", "float tiff"])
def test_exif_orientation(orientation, kind):
    stored = smooth_rgb(12, 20)
    exif = Image.Exif()
    exif[0x0112] = orientation
    if kind == "jpeg":
        data = pil_bytes(Image.fromarray(stored), "JPEG", exif=exif, quality=100)
    elif kind == "png":
        data = pil_bytes(Image.fromarray(stored), "PNG", exif=exif)
    elif kind == "16-bit png":
        stored = stored[..., 0].astype(np.uint16) * 100 + stored[..., 1].astype(np.uint16) * 150  # no symmetry
        data = pil_bytes(Image.fromarray(stored), "PNG", exif=exif)
    else:  # TIFF tags written by hand: 8-bit is Pillow's, 16-bit and float (RGB, which Pillow cannot open) OpenCV's
        stored = {"8-bit tiff": stored, "16-bit tiff": stored.astype(np.uint16) * 257}.get(
            kind, stored / np.float32(255)
        )
        data = _with_tiff_orientation(cv2_bytes(stored), orientation)
    img = ve.read_image(data)
    assert img.dtype == stored.dtype
    # Of the eight ways to display the stored image, the one read is the one the tag asks for.
    errors = {
        o: np.abs(img.astype(float) - f(stored)).mean() for o, f in DISPLAY.items() if f(stored).shape == img.shape
    }
    assert min(errors, key=errors.get) == orientation
    if kind != "jpeg":
        np.testing.assert_array_equal(img, DISPLAY[orientation](stored))
    if kind == "png":  # agrees with Pillow's own reading of the tag
        np.testing.assert_array_equal(img, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))


def _with_tiff_orientation(data: bytes, orientation: int) -> bytes:
    """Append an Orientation (274) entry to the first IFD of a little-endian TIFF."""
    data = bytearray(data)
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd : ifd + 2])[0]
    entries = [bytes(data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]) for i in range(count)]
    entries.append(struct.pack("<HHIHH", 274, 3, 1, orientation, 0))
    entries.sort(key=lambda e: struct.unpack("<H", e[:2])[0])
    new_ifd = len(data) + (len(data) % 2)
    table = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    out = data + b"\0" * (new_ifd - len(data)) + table
    out[4:8] = struct.pack("<I", new_ifd)
    return bytes(out)


def test_icc_profile_is_converted_to_srgb():
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[:, :3, 0] = 255  # "red" in a profile whose red primary is sRGB's green
    stored[:, 3:, 2] = 255
    profile = swapped_profile()
    for fmt, tolerance in (("PNG", 0), ("TIFF", 0), ("JPEG", 3), ("WEBP", 4)):
        img = ve.read_image(pil_bytes(Image.fromarray(stored), fmt, icc_profile=profile, quality=100))
        assert np.abs(img[0, 0].astype(int) - [0, 255, 0]).max() <= tolerance, fmt
        assert np.abs(img[0, 5].astype(int) - [0, 0, 255]).max() <= tolerance, fmt
    rgba = np.dstack([stored, np.full((4, 6), 77, np.uint8)])
    img = ve.read_image(pil_bytes(Image.fromarray(rgba), "PNG", icc_profile=profile))
    np.testing.assert_array_equal(img[0, 0], [0, 255, 0, 77])  # alpha untouched


def test_icc_profiles_kept_where_documented():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(ve.read_image(pil_bytes(Image.fromarray(RGB), "PNG", icc_profile=srgb)), RGB)
    broken = b"not an icc profile at all" * 10
    assert np.array_equal(ve.read_image(pil_bytes(Image.fromarray(RGB), "PNG", icc_profile=broken)), RGB)
    gray = RGB[..., 0]
    assert np.array_equal(ve.read_image(pil_bytes(Image.fromarray(gray), "PNG", icc_profile=swapped_profile())), gray)
    deep = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)  # 16-bit: values as stored
    assert np.array_equal(ve.read_image(pil_bytes(Image.fromarray(deep), "PNG", icc_profile=swapped_profile())), deep)


def test_read_image_rejects_what_is_not_a_file():
    with pytest.raises(ve.ImageError, match="path, bytes or a binary file"):
        ve.read_image(12345)
    with pytest.raises(ve.ImageError, match="text mode"):
        ve.read_image(io.StringIO("not bytes"))


def test_devices_are_not_read_forever():
    with pytest.raises(ve.ImageError, match="not a regular file"):
        ve.read_image("/dev/zero")


def test_a_file_larger_than_any_photo_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(image_io, "_max_file_bytes", lambda limit: 1000)
    (tmp_path / "big.png").write_bytes(b"\0" * 2000)
    with pytest.raises(ve.ImageError, match="larger than any photo"):
        ve.read_image(tmp_path / "big.png")
    with pytest.raises(ve.ImageError, match="larger than any photo"):
        ve.read_image(io.BytesIO(b"\0" * 2000))


@pytest.mark.parametrize("name", [n for n in GOOD if "10000" not in n])
@pytest.mark.parametrize("scale", [1, 2])
def test_every_good_file_enhances_with_its_layout(tiny_model, name, scale):
    img = ve.read_image(GOOD[name][0])
    out = ve.enhance(tiny_model, img, scale)
    assert out.dtype == img.dtype and out.shape == (img.shape[0] * scale, img.shape[1] * scale, *img.shape[2:])
    if img.ndim == 3 and img.shape[2] == 4 and scale == 1:
        np.testing.assert_array_equal(out[..., 3], img[..., 3])


@pytest.mark.parametrize("shape", [(1, 10000, 3), (10000, 1), (1, 1, 4), (3, 5, 3)])
@pytest.mark.parametrize("scale", [1, 4])
def test_extreme_sizes_enhance_and_vary(tiny_model, shape, scale):
    img = RNG.integers(0, 256, shape, dtype=np.uint8)
    out = ve.enhance(tiny_model, img, scale)
    assert out.shape == (shape[0] * scale, shape[1] * scale, *shape[2:]) and out.dtype == np.uint8
    samples, std = ve.variations(tiny_model, img, n=2, scale=scale)
    assert samples.shape == (2, *out.shape) and std.shape == out.shape[:2]
    assert np.isfinite(std).all()


def test_read_only_arrays_are_accepted(tiny_model):
    img = np.asarray(Image.fromarray(RGB))  # Pillow hands out read-only arrays
    assert not img.flags.writeable
    np.testing.assert_array_equal(ve.enhance(tiny_model, img), ve.enhance(tiny_model, RGB.copy()))


def test_write_image_makes_normal_files_and_cleans_up_on_interrupt(tmp_path, monkeypatch):
    ve.write_image(tmp_path / "a.png", RGB)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(image_io.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ve.write_image(tmp_path / "a.png", 255 - RGB)
    with pytest.raises(KeyboardInterrupt):
        ve.write_image(tmp_path / "b.png", RGB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no partial file, no temp file
    np.testing.assert_array_equal(ve.read_image(tmp_path / "a.png"), RGB)  # the old file intact


def test_write_errors_are_image_errors(tmp_path):
    with pytest.raises(ve.ImageError, match="does not exist"):
        ve.write_image(tmp_path / "missing" / "a.png", RGB)
    (tmp_path / "a.png").mkdir()  # a folder where the file should go
    with pytest.raises(ve.ImageError, match="cannot write"):
        ve.write_image(tmp_path / "a.png", RGB)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.png", b"", "empty"),
        ("notes.jpg", BAD["text"][0], "not an image"),
        ("half.jpg", BAD["truncated jpeg (half)"][0], "damaged|truncated"),
        ("bomb.png", BAD["png bomb 60000x60000"][0], "limit"),
    ],
)
def test_app_shows_a_clear_error_for_bad_uploads(name, data, message):
    app_test = pytest.importorskip("streamlit.testing.v1").AppTest
    app = app_test.from_file("../app.py", default_timeout=120)
    app.run()
    app.file_uploader(key="upload").set_value((name, data, "image/png")).run()
    assert not app.exception
    assert app.error and re.search(message, app.error[0].value)
