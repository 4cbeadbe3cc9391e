"""Image decoding (RGB conversion, corrupt files), resizing, normalisation, channel statistics."""

import io

import numpy as np
import pytest
from PIL import Image

from jaxdl.data import image
from jaxdl.errors import DataError


def _jpeg_bytes(pixels: np.ndarray, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _pixels(height=20, width=30, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGB"])
def test_decode_converts_to_rgb(mode):
    decoded = image.decode_image(_jpeg_bytes(_pixels(), mode), "x.jpg")
    assert decoded.mode == "RGB" and decoded.size == (30, 20)
    if mode == "L":
        rgb = np.asarray(decoded)
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_decode_png_with_alpha_and_from_path(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.dstack([_pixels(), np.full((20, 30), 128, np.uint8)]), "RGBA").save(path)
    decoded = image.decode_image(path, str(path))
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(
        np.asarray(decoded), _pixels()
    )  # alpha dropped, as convert("RGB")


def test_truncated_jpeg_names_the_file():
    data = _jpeg_bytes(_pixels(64, 64))
    with pytest.raises(DataError, match="broken.jpg: cannot decode"):
        image.decode_image(data[: len(data) // 2], "broken.jpg")


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "garbage.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="garbage.jpg: cannot decode"):
        image.decode_image(tmp_path / "garbage.jpg", "garbage.jpg")
    with pytest.raises(DataError, match="gone.jpg: image file is missing"):
        image.decode_image(tmp_path / "gone.jpg", "gone.jpg")


def test_resize_is_pillow_bilinear():
    img = Image.fromarray(_pixels(50, 40))
    resized = image.resize(img, (16, 24))
    assert resized.shape == (16, 24, 3) and resized.dtype == np.uint8
    np.testing.assert_array_equal(
        resized, np.asarray(img.resize((24, 16), Image.Resampling.BILINEAR))
    )
    np.testing.assert_array_equal(
        image.resize(img, (50, 40)), _pixels(50, 40)
    )  # same size: unchanged


def test_normalize_and_denormalize():
    pixels = _pixels()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = image.normalize(pixels, mean, std)
    assert x.dtype == np.float32 and x.shape == pixels.shape
    np.testing.assert_allclose(
        x[3, 4], (pixels[3, 4] / 255 - np.array(mean)) / np.array(std), rtol=1e-5
    )
    np.testing.assert_array_equal(image.denormalize(x, mean, std), pixels)


def test_channel_mean_std_over_a_sample():
    source = [{"image": np.full((4, 4, 3), value, np.uint8)} for value in (0, 255)]
    mean, std = image.channel_mean_std(source, n=10, seed=0)
    np.testing.assert_allclose(mean, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(std, [0.5, 0.5, 0.5])
    sample = [{"image": _pixels(seed=seed)} for seed in range(6)]
    first, _ = image.channel_mean_std(sample, n=3, seed=1)
    assert np.array_equal(first, image.channel_mean_std(sample, n=3, seed=1)[0])
    assert not np.array_equal(first, image.channel_mean_std(sample, n=3, seed=2)[0])
