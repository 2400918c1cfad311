"""read_image / write_image: exact round trips, bit depth, alpha, EXIF orientation and clear errors."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

import vae_enhance as ve
from vae_enhance.image_io import encode_image


def _random(rng, shape, dtype):
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _jpeg_with_orientation(rng, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(_random(rng, (20, 30, 3), np.uint8)).save(buf, "JPEG", exif=exif, quality=95)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 3), (17, 23, 4)])
@pytest.mark.parametrize(
    ("dtype", "ext"), [(np.uint8, "png"), (np.uint16, "png"), (np.uint16, "tif"), (np.uint8, "tif")]
)
def test_lossless_round_trip(tmp_path, rng, shape, dtype, ext):
    img = _random(rng, shape, dtype)
    ve.write_image(tmp_path / f"x.{ext}", img)
    back = ve.read_image(tmp_path / f"x.{ext}")
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, img)


def test_float32_gray_tiff_round_trip_keeps_values_outside_unit_range(tmp_path, rng):
    img = rng.random((11, 13), dtype=np.float32) * 1.6 - 0.3
    ve.write_image(tmp_path / "f.tiff", img)
    back = ve.read_image(tmp_path / "f.tiff")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("channels", [3, 4])
def test_float32_color_tiff_round_trip(tmp_path, rng, channels):
    img = rng.random((11, 13, channels), dtype=np.float32)
    ve.write_image(tmp_path / "f.tif", img)
    np.testing.assert_array_equal(ve.read_image(tmp_path / "f.tif"), img)


def test_float32_png_becomes_16_bit(tmp_path, rng):
    img = rng.random((9, 10, 3), dtype=np.float32)
    ve.write_image(tmp_path / "f.png", img)
    back = ve.read_image(tmp_path / "f.png")
    assert back.dtype == np.uint16
    np.testing.assert_allclose(back / 65535.0, img, atol=0.5 / 65535 + 1e-7)


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_lossy_formats_are_8_bit_and_close(tmp_path, ext):
    img = np.full((16, 16, 3), 100, np.uint16) * 257  # flat, so compression is nearly exact
    ve.write_image(tmp_path / f"x.{ext}", img)
    back = ve.read_image(tmp_path / f"x.{ext}")
    assert back.dtype == np.uint8 and back.shape == (16, 16, 3)
    assert np.abs(back.astype(int) - 100).max() <= 2


def test_jpeg_drops_alpha(tmp_path, rng):
    ve.write_image(tmp_path / "x.jpg", _random(rng, (8, 8, 4), np.uint8))
    assert ve.read_image(tmp_path / "x.jpg").shape == (8, 8, 3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(rng, orientation):
    data = _jpeg_with_orientation(rng, orientation)
    img = ve.read_image(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert img.shape == ((30, 20, 3) if orientation in (6, 8) else (20, 30, 3))
    np.testing.assert_array_equal(img, expected)


def test_exif_orientation_applied_to_16_bit_png(rng):
    gray = _random(rng, (20, 30), np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG", exif=exif)
    img = ve.read_image(buf.getvalue())
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img, np.rot90(gray, -1))


def test_palette_with_transparency_becomes_rgba():
    pal = Image.new("P", (5, 6))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    img = ve.read_image(buf.getvalue())
    assert img.shape == (6, 5, 4) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[1, 1], [255, 0, 0, 255])
    assert img[0, 0, 3] == 0


def test_bytes_path_and_file_object_agree(tmp_path, rng):
    img = _random(rng, (7, 9, 3), np.uint8)
    ve.write_image(tmp_path / "x.png", img)
    data = (tmp_path / "x.png").read_bytes()
    with open(tmp_path / "x.png", "rb") as f:
        from_file = ve.read_image(f)
    for got in (ve.read_image(data), ve.read_image(str(tmp_path / "x.png")), from_file):
        np.testing.assert_array_equal(got, img)


def test_write_leaves_no_temp_file_and_replaces_existing(tmp_path, rng):
    first, second = _random(rng, (5, 6), np.uint8), _random(rng, (5, 6), np.uint8)
    ve.write_image(tmp_path / "x.png", first)
    ve.write_image(tmp_path / "x.png", second)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    np.testing.assert_array_equal(ve.read_image(tmp_path / "x.png"), second)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ve.ImageError, match="dtype"):
        ve.write_image(tmp_path / "x.png", np.zeros((4, 4), np.int32))
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension(tmp_path):
    with pytest.raises(ve.ImageError, match="unknown extension"):
        ve.write_image(tmp_path / "x.xyz", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_folder_is_image_error(tmp_path):
    with pytest.raises(ve.ImageError):
        ve.write_image(tmp_path / "missing" / "x.png", np.zeros((4, 4), np.uint8))


def test_pixel_limit():
    data = encode_image(np.zeros((50, 40), np.uint8))
    with pytest.raises(ve.ImageError, match="limit"):
        ve.read_image(data, max_pixels=50 * 40 - 1)
    assert ve.read_image(data, max_pixels=50 * 40).shape == (50, 40)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ve.ImageError, match="empty"):
        ve.read_image(tmp_path / "empty.png")


def test_random_bytes(rng):
    with pytest.raises(ve.ImageError, match="not an image"):
        ve.read_image(rng.integers(0, 256, 1000, dtype=np.uint8).tobytes())


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ve.ImageError, match="no such file"):
        ve.read_image(tmp_path / "nope.png")
    with pytest.raises(ve.ImageError, match="folder"):
        ve.read_image(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_truncated_png(rng, dtype):
    data = encode_image(_random(rng, (40, 50, 3), dtype), "PNG")
    with pytest.raises(ve.ImageError, match="truncated|damaged|not an image"):
        ve.read_image(data[: len(data) // 2])


def test_truncated_jpeg(rng):
    data = _jpeg_with_orientation(rng, 1)
    with pytest.raises(ve.ImageError):
        ve.read_image(data[: len(data) // 2])


def test_read_image_of_wrong_type():
    with pytest.raises(ValueError):
        ve.read_image(np.zeros((4, 4), np.uint8))


def test_image_error_is_value_error():
    assert issubclass(ve.ImageError, ValueError)
