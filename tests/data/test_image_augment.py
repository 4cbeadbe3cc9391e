"""Image augmentations: torchvision semantics, shapes and dtypes kept, deterministic per
generator."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from jaxdl.data import image_augment as aug


def _img(height=32, width=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


ALL = {
    "flip": lambda img, rng: aug.random_horizontal_flip(img, rng, 0.5),
    "crop": lambda img, rng: aug.random_crop_with_padding(img, rng, img.shape[:2], 4),
    "jitter": lambda img, rng: aug.color_jitter(img, rng, 0.2, 0.2, 0.2, 0.1),
    "rotation": lambda img, rng: aug.random_rotation(img, rng, 15),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_shape_dtype_and_determinism(name):
    img = _img(24, 40)
    outputs = [ALL[name](img, np.random.default_rng(seed)) for seed in (7, 7, 8, 9, 10)]
    for out in outputs:
        assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert any(not np.array_equal(outputs[0], other) for other in outputs[2:])


def test_flip():
    img = _img()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(aug.random_horizontal_flip(img, rng, 1.0), img[:, ::-1])
    np.testing.assert_array_equal(aug.random_horizontal_flip(img, rng, 0.0), img)


def test_crop_with_padding_is_a_shifted_window_with_zero_border():
    img = _img(8, 8) | 1  # no zero pixel, so padding is recognisable
    for seed in range(20):
        out = aug.random_crop_with_padding(img, np.random.default_rng(seed), 8, 4)
        padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
        matches = [
            (top, left)
            for top in range(9)
            for left in range(9)
            if np.array_equal(padded[top : top + 8, left : left + 8], out)
        ]
        assert matches
    assert aug.random_crop_with_padding(img, np.random.default_rng(0), (6, 5), 0).shape == (6, 5, 3)


def test_brightness_factor_by_hand():
    img = _img()
    rng = np.random.default_rng(3)
    out = aug.color_jitter(img, rng, brightness=0.5)
    replay = np.random.default_rng(3)
    replay.permutation(4)
    factor = replay.uniform(0.5, 1.5)
    expected = np.clip(np.floor(img * factor), 0, 255)  # Pillow blends with black, truncating
    np.testing.assert_allclose(out, expected, atol=1)


def test_jitter_matches_pillow_enhance_for_contrast_and_saturation():
    img = _img()
    for strength, enhancer, kwargs in (
        (0.3, ImageEnhance.Contrast, "contrast"),
        (0.3, ImageEnhance.Color, "saturation"),
    ):
        out = aug.color_jitter(img, np.random.default_rng(5), **{kwargs: strength})
        replay = np.random.default_rng(5)
        replay.permutation(4)
        factor = replay.uniform(1 - strength, 1 + strength)
        np.testing.assert_array_equal(
            out, np.asarray(enhancer(Image.fromarray(img)).enhance(factor))
        )


def test_saturation_zero_factor_gives_greyscale():
    img = _img()
    grey = np.asarray(Image.fromarray(img).convert("L"))
    out = aug.color_jitter(img, np.random.default_rng(0), saturation=1.0)  # factor in [0, 2]
    rng = np.random.default_rng(0)
    rng.permutation(4)
    factor = rng.uniform(0.0, 2.0)
    expected = np.clip(grey[..., None] + factor * (img.astype(float) - grey[..., None]), 0, 255)
    np.testing.assert_allclose(out, expected, atol=1.01)


def test_hue_shift_moves_hue_keeps_value():
    img = _img()
    out = aug.color_jitter(img, np.random.default_rng(1), hue=0.5)
    hsv_in = np.asarray(Image.fromarray(img).convert("HSV")).astype(int)
    hsv_out = np.asarray(Image.fromarray(out).convert("HSV")).astype(int)
    assert np.abs(hsv_out[..., 2] - hsv_in[..., 2]).max() <= 2  # value kept (up to rounding)
    assert np.abs(hsv_out[..., 0] - hsv_in[..., 0]).mean() > 5  # hue moved


def test_zero_strengths_are_identity_and_labels_untouched():
    img = _img()
    record = {"image": img, "label": np.array([1.0, 0.0], np.float32), "filename": "a.jpg"}
    out = aug.color_jitter(record["image"], np.random.default_rng(0), 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(aug.random_rotation(img, np.random.default_rng(0), 0), img)
    np.testing.assert_array_equal(record["label"], [1.0, 0.0])
    with pytest.raises(ValueError, match="hue"):
        aug.color_jitter(img, np.random.default_rng(0), hue=0.6)


def test_jitter_applies_operations_in_a_random_order():
    """As torchvision: a permutation of (brightness, contrast, saturation, hue) per call."""
    img = _img()
    ops = {0: ImageEnhance.Brightness, 1: ImageEnhance.Contrast}
    differs_from_fixed_order = False
    for seed in range(8):
        out = aug.color_jitter(img, np.random.default_rng(seed), brightness=0.5, contrast=0.5)
        replay = np.random.default_rng(seed)
        order = replay.permutation(4)
        factors = {0: replay.uniform(0.5, 1.5), 1: replay.uniform(0.5, 1.5)}

        def apply(sequence, factors=factors):
            pil = Image.fromarray(img)
            for index in sequence:
                pil = ops[index](pil).enhance(factors[index])
            return np.asarray(pil)

        np.testing.assert_array_equal(out, apply([i for i in order if i in ops]))
        differs_from_fixed_order |= not np.array_equal(out, apply([0, 1]))
    assert differs_from_fixed_order


def test_rotation_by_90_is_rot90_and_fill_is_zero():
    img = _img(16, 16)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(aug.random_rotation(img, rng, (90, 90)), np.rot90(img))
    rotated = aug.random_rotation(np.full((16, 16, 3), 200, np.uint8), rng, (45, 45))
    assert (rotated[0, 0] == 0).all() and (rotated[8, 8] == 200).all()
