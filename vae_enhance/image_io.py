"""Reading and writing photos as numpy arrays, keeping bit depth and alpha.

Arrays are H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA), of dtype uint8, uint16 or float32
(float on a [0, 1] scale). Pillow decodes; OpenCV handles what Pillow flattens (16-bit and float
PNG/TIFF). Everything a user can get wrong raises ImageError, a ValueError, with what to do.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 100 megapixels: a 12 MP phone photo upscaled x2 is 48 MP, a x4 one would be refused.
DEFAULT_MAX_PIXELS = 100_000_000
DTYPES = (np.uint8, np.uint16, np.float32)
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageError(ValueError):
    """A photo could not be read, written or processed; the message says why and what to do."""


def _read_bytes(src: str | os.PathLike | bytes | BinaryIO) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "the image"
    if hasattr(src, "read"):
        return src.read(), getattr(src, "name", "the image")
    path = Path(src)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read the file ({err.strerror})") from None


def _high_depth(data: bytes, im: Image.Image) -> bool:
    """True when Pillow would flatten the pixels to 8 bits (16-bit PNG, 16-bit or float TIFF)."""
    if im.format == "PNG":
        return len(data) > 24 and data[24] == 16  # IHDR bit depth
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) > 8
    return False


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an array decoded without it."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transverse
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


def _decode_cv2(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError("the image data is damaged or truncated; re-export or re-download the file")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if arr.dtype not in DTYPES:
        arr = arr.astype(np.float32)
    return arr


def _pil_to_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def read_image(src: str | os.PathLike | bytes | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a photo (path, bytes or file object) into an array with EXIF orientation applied.

    Gray stays H x W, RGB is H x W x 3, anything with transparency H x W x 4; 16-bit stays uint16,
    float TIFF stays float32. The first frame of an animation is used. Raises ImageError.
    """
    data, name = _read_bytes(src)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); choose another file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name} is {width}x{height} = {width * height / 1e6:.0f} MP, over the limit of "
                    f"{max_pixels / 1e6:.0f} MP; downscale it first or raise the pixel limit"
                )
            orientation = im.getexif().get(0x0112, 1)
            if _high_depth(data, im):
                return _orient(_decode_cv2(data), orientation)
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            return _pil_to_array(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this tool can read; use JPEG, PNG, WebP, TIFF, BMP or GIF") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} claims an enormous size (a decompression bomb?); it was not decoded") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is damaged or truncated ({err}); re-export or re-download it") from None


def check_image(img: np.ndarray) -> np.ndarray:
    """Validate the array layout of the public API; returns the array unchanged."""
    if not isinstance(img, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(img).__name__}; use read_image() to load a file")
    if img.dtype not in DTYPES:
        raise ImageError(f"unsupported dtype {img.dtype}; use uint8, uint16 or float32 (on a [0, 1] scale)")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageError(f"unsupported shape {img.shape}; use H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA)")
    if min(img.shape[:2]) < 1:
        raise ImageError(f"the image is empty (shape {img.shape})")
    return img


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 on [0, 1]; float32 is returned as it is (not clipped)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32, copy=False)


def from_float(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float on [0, 1] -> dtype, clipped and rounded."""
    img = np.clip(img, 0.0, 1.0)
    if dtype == np.uint8:
        return np.rint(img * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(img * 65535.0).astype(np.uint16)
    return img.astype(np.float32, copy=False)


def encode_image(img: np.ndarray, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode to PNG, TIFF (both keep 16-bit, float becomes 16-bit PNG / float TIFF), JPEG or WebP (8-bit)."""
    img = check_image(img)
    fmt = fmt.upper()
    if fmt in ("PNG", "TIFF"):
        if fmt == "PNG" and img.dtype == np.float32:
            img = from_float(img, np.uint16)
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode("." + fmt.lower(), img)
        if not ok:
            raise ImageError(f"could not encode the image as {fmt}")
        return buf.tobytes()
    if fmt not in ("JPEG", "WEBP"):
        raise ImageError(f"unsupported output format {fmt!r}; use one of PNG, TIFF, JPEG, WEBP")
    if img.dtype != np.uint8:
        img = from_float(to_float(img), np.uint8)
    if fmt == "JPEG" and img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]  # JPEG has no alpha; PNG, TIFF and WebP keep it
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=int(quality))
    return buf.getvalue()


def write_image(path: str | os.PathLike, img: np.ndarray, quality: int = 95) -> None:
    """Write by extension (.png .tif .tiff .jpg .jpeg .webp), atomically: never a half-written file."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown extension; use one of {', '.join(WRITE_FORMATS)}")
    data = encode_image(img, fmt, quality)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
