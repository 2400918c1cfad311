"""Reading and writing photos as numpy arrays, keeping bit depth and alpha.

Arrays are H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA), of dtype uint8, uint16 or float32
(float on a [0, 1] scale). Pillow decodes; OpenCV handles what Pillow flattens or cannot open (16-bit
and float PNG/TIFF). Everything a user can get wrong raises ImageError, a ValueError, with what to do.

What read_image does with awkward files:
- colour profiles: 8-bit RGB, RGBA and CMYK photos with an embedded ICC profile other than sRGB are
  converted to sRGB (LittleCMS through Pillow's ImageCms, perceptual intent), because the network and
  every screen assume sRGB. Gray photos, 16-bit and float photos keep their stored values (their
  profile is ignored), and so does a photo whose profile cannot be parsed.
- CMYK without a profile is converted with Pillow's plain formula; gray + alpha becomes RGBA (the API
  has no two-channel layout); a palette becomes RGB, or RGBA when it has transparency.
- animations (GIF, WebP, APNG): the first frame. EXIF orientation (1-8) is applied.
- the pixel limit (VAE_ENHANCE_MAX_PIXELS, default 100 MP) is checked on the header, before anything
  is decoded, so a "decompression bomb" costs nothing; enhance() applies the same limit to its result.
"""

from __future__ import annotations

import io
import math
import os
import struct
import uuid
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, TiffImagePlugin, UnidentifiedImageError

# 100 megapixels: a 12 MP phone photo upscaled x2 is 48 MP, a x4 one (192 MP) would be refused.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "VAE_ENHANCE_MAX_PIXELS"
DTYPES = (np.uint8, np.uint16, np.float32)
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
TIFF_MAGIC = (b"II*\0", b"MM\0*")
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageError(ValueError):
    """A photo could not be read, written or processed; the message says why and what to do."""


def max_pixels_setting() -> int:
    """The pixel limit: $VAE_ENHANCE_MAX_PIXELS (e.g. 50000000 or 5e7) when set, else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ImageError(
            f"{MAX_PIXELS_ENV}={text!r} is not a pixel count; set it to a whole number such as 100000000 "
            "(100 MP) or unset it"
        )
    return int(value)


def _megapixels(count: int) -> str:
    return f"{count / 1e6:,.1f} MP" if count >= 100_000 else f"{count:,} pixels"


def check_pixels(
    height: int, width: int, what: str, limit: int | None = None, count: int = 1, advice: str = "downscale it first"
) -> None:
    """Raise ImageError when `count` images of height x width exceed the pixel limit (None = the setting)."""
    limit = max_pixels_setting() if limit is None else limit
    total = height * width * count
    if total > limit:
        size = f"{count} x {width}x{height}" if count > 1 else f"{width}x{height}"
        raise ImageError(
            f"{what} is {size} = {_megapixels(total)}, over the pixel limit of {_megapixels(limit)}; "
            f"{advice}, or raise the limit with {MAX_PIXELS_ENV}"
        )


def _max_file_bytes(limit: int) -> int:
    """No photo within the pixel limit is larger than this (float32 RGBA, uncompressed, plus metadata)."""
    return limit * 16 + (64 << 20)


def _read_bytes(src: str | os.PathLike | bytes | BinaryIO, limit: int) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "the image"
    cap = _max_file_bytes(limit)
    if hasattr(src, "read"):
        name = str(getattr(src, "name", "the image"))
        data = src.read(cap + 1)
        if isinstance(data, str):
            raise ImageError(f"{name} was opened in text mode; open it with mode 'rb'")
        if len(data) > cap:
            raise ImageError(f"{name} is larger than any photo within the pixel limit; it was not read")
        return bytes(data), name
    if not isinstance(src, (str, os.PathLike)):
        raise ImageError(f"read_image takes a file path, bytes or a binary file, got {type(src).__name__}")
    path = Path(src)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IsADirectoryError
        if not path.is_file():  # a device or a pipe could be read forever
            raise ImageError(f"{path} is not a regular file; save the photo to a file first")
        if size > cap:
            raise ImageError(
                f"{path} is {size / 2**30:.1f} GiB, larger than any photo within the pixel limit; it was not read"
            )
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read the file ({err.strerror or err})") from None


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


def _check_png_chunks(data: bytes, name: str) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file.

    OpenCV's PNG reader allocates whatever a chunk header claims (up to 2 GB for a 2 kB file), so
    the structure is checked before it sees the bytes.
    """
    pos, chunks = 8, 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length > len(data) - pos - 12:
            raise ImageError(f"{name} is damaged or truncated (a PNG chunk runs past the end); re-export it")
        chunks += 1
        if data[pos + 4 : pos + 8] == b"IEND":
            return
        if chunks > 1_000_000:  # real encoders write chunks of 8 kB or more
            raise ImageError(f"{name} has over a million PNG chunks; re-export it")
        pos += 12 + length


def _decode_cv2(data: bytes, name: str) -> np.ndarray:
    """16-bit and float PNG/TIFF, whose pixel count has already been checked."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        _check_png_chunks(data, name)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{name} is damaged or truncated; re-export or re-download it")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype not in DTYPES:
        raise ImageError(
            f"{name} stores {arr.dtype} samples; save it with 8- or 16-bit unsigned or 32-bit float samples"
        )
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels == 1:
        return arr.reshape(arr.shape[:2])
    if channels == 2:  # gray + alpha -> RGBA
        return np.ascontiguousarray(arr[..., [0, 0, 0, 1]])
    if channels not in (3, 4):
        raise ImageError(f"{name} has {channels} channels; save it as gray, RGB or RGBA")
    return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if channels == 4 else cv2.COLOR_BGR2RGB)


def _tiff_orientation_off(data: bytes) -> tuple[bytes, int]:
    """(the TIFF with its Orientation tag set to 1, the orientation it had).

    Some OpenCV versions apply the tag while decoding and others do not, so OpenCV is shown an
    upright file and the orientation is applied here, once.
    """
    order = "<" if data[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(order + "I", data, 4)[0]
        for i in range(struct.unpack_from(order + "H", data, ifd)[0]):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack_from(order + "HH", data, entry)
            if tag == 274 and kind == 3:  # Orientation, a SHORT stored in the entry itself
                patched = bytearray(data)
                struct.pack_into(order + "H", patched, entry + 8, 1)
                return bytes(patched), struct.unpack_from(order + "H", data, entry + 8)[0]
    except struct.error:
        pass  # a damaged directory: OpenCV will say so
    return data, 1


def _decode_tiff_cv2(data: bytes, name: str, limit: int) -> np.ndarray:
    """TIFFs Pillow cannot identify (3- and 4-channel float): size from the header, pixels by OpenCV."""
    fp = io.BytesIO(data)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(fp.read(8))
    fp.seek(ifd.next)
    ifd.load(fp)
    width, height = ifd.get(256), ifd.get(257)
    if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
        raise ImageError(f"{name} is a TIFF without a valid size; re-export it")
    check_pixels(height, width, name, limit)
    data, orientation = _tiff_orientation_off(data)
    return _orient(_decode_cv2(data, name), orientation)


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block must not cost the photo: ignore it
        return 1


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert 8-bit RGB/RGBA/CMYK with an embedded non-sRGB ICC profile to sRGB; anything else as it is."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(profile).lower():
            return im
        return ImageCms.profileToProfile(im, profile, _SRGB, outputMode="RGBA" if im.mode == "RGBA" else "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im  # an unusable profile: keep the stored values rather than refuse the photo


def _pil_to_array(im: Image.Image, name: str) -> np.ndarray:
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
    try:
        im = im.convert("RGBA" if has_alpha else "RGB")
    except ValueError:
        raise ImageError(f"{name} uses the {mode} colour mode, which cannot be converted; save it as RGB") from None
    return np.asarray(im)


def _decode(data: bytes, name: str, limit: int) -> np.ndarray:
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[:4] in TIFF_MAGIC:
            return _decode_tiff_cv2(data, name, limit)
        raise
    width, height = im.size
    check_pixels(height, width, name, limit)
    orientation = _exif_orientation(im)
    if _high_depth(data, im):
        if im.format == "TIFF":
            data, orientation = _tiff_orientation_off(data)
        return _orient(_decode_cv2(data, name), orientation)
    im.seek(0)  # the first frame of an animation
    im.load()
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    return _pil_to_array(_to_srgb(im), name)


def read_image(src: str | os.PathLike | bytes | BinaryIO, max_pixels: int | None = None) -> np.ndarray:
    """Decode a photo (path, bytes or binary file object) into an array with EXIF orientation applied.

    Gray stays H x W, RGB is H x W x 3, anything with transparency H x W x 4; 16-bit stays uint16,
    float TIFF stays float32. The first frame of an animation is used; 8-bit photos with an ICC profile
    are converted to sRGB (see the module docstring). max_pixels: None = $VAE_ENHANCE_MAX_PIXELS or
    100 MP; the size is checked before decoding. Raises ImageError.
    """
    limit = max_pixels_setting() if max_pixels is None else int(max_pixels)
    data, name = _read_bytes(src, limit)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); choose another file")
    # Pillow's own bomb guard must not refuse what the limit allows; the limit is checked on the header.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        return _decode(data, name, limit)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this tool can read; use JPEG, PNG, WebP, TIFF, BMP or GIF") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"{name} claims an enormous size, far over the pixel limit of {_megapixels(limit)} (a decompression "
            "bomb?); it was not decoded"
        ) from None
    except MemoryError:
        raise ImageError(f"not enough memory to decode {name}; close other programs or use a smaller photo") from None
    except Exception as err:  # any decoder failure on these bytes means the file is unusable
        raise ImageError(f"{name} is damaged or truncated ({err}); re-export or re-download it") from err


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


def to_rgb_float(img: np.ndarray) -> np.ndarray:
    """float32 RGB (H, W, 3) of any layout: gray repeated, alpha dropped, float left unclipped."""
    flt = to_float(img)
    if flt.ndim == 2:
        flt = np.repeat(flt[..., None], 3, axis=2)
    return flt[..., :3]


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
    """Write by extension (.png .tif .tiff .jpg .jpeg .webp), atomically: never a half-written file.

    The image goes to a hidden temporary file in the same folder, is flushed to disk, then renamed
    over `path`; an interrupt or a full disk leaves the old file (or none), never a partial one.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown extension; use one of {', '.join(WRITE_FORMATS)}")
    if not path.parent.is_dir():
        raise ImageError(f"{path}: the folder {path.parent} does not exist; create it first")
    data = encode_image(img, fmt, quality)
    # O_EXCL with a random name, not mkstemp: the file gets the usual umask permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            reason = err.strerror or err
            raise ImageError(f"{path}: cannot write the file ({reason}); check the folder and free space") from None
        raise
