"""Input work inside the jitted step (`data.augment_on`): the device twins of the host
augmentations draw with the host's distributions, normalisation matches the host's to float
rounding, the draws follow the step (resume), and each task moves only what commutes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.data import augment, device_augment, image, image_augment
from jaxdl.data.device_inputs import DeviceInputs, InputApply, Normalize, on_device
from jaxdl.errors import ConfigError
from tests.data.test_augment import _cfg as spec_config
from tests.helpers import load_config

N = 4000  # examples per distribution check: a one-off bug moves a histogram far past chance
MIN_P_VALUE = 1e-4  # fixed seeds make every check deterministic; this only sizes the bands


def _run(op, x: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.asarray(jax.jit(op)(jnp.asarray(x), jax.random.key(seed)))


def _same_distribution(host: np.ndarray, device: np.ndarray, values: range) -> None:
    """Host and device samples of one discrete quantity: every value of `values` seen, none
    outside, and a chi-square test of homogeneity that does not tell them apart."""
    counts = np.array([[np.sum(s == v) for v in values] for s in (host, device)])
    assert counts.sum() == len(host) + len(device), "a value outside the expected range"
    assert (counts > 0).all(), f"a value never drawn: {counts}"
    assert stats.chi2_contingency(counts).pvalue > MIN_P_VALUE, counts


# ------------------------------------------------------------------------------ normalisation


def test_normalize_matches_the_host_to_float_rounding():
    """Every pixel value, per channel: within a few float32 steps of the float64 formula and of
    the host's normalisation (XLA multiplies by 1/std where numpy divides: not bitwise)."""
    pixels = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (2, 4, 256, 3))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    device = np.asarray(jax.jit(Normalize(mean, std))(pixels))
    exact = (pixels / 255.0 - np.array(mean)) / np.array(std)  # float64, per RGB channel
    assert device.dtype == np.float32
    np.testing.assert_allclose(device, exact, rtol=0, atol=1e-6)  # float32 steps are 2.4e-7 here
    np.testing.assert_allclose(device, image.normalize(pixels, mean, std), rtol=0, atol=1e-6)


def test_normalize_passes_float_input_through():
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(Normalize((0.5,) * 3, (0.5,) * 3)(x), x)


# ------------------------------------------------------------------------------ image draws


def _distinct_image(height: int = 6, width: int = 7) -> np.ndarray:
    """No zero pixel and no two equal ones, so every flip and crop offset is recognisable."""
    return (1 + np.arange(height * width * 3) % 250).reshape(height, width, 3).astype(np.uint8)


def test_flip_mirrors_the_width_axis_with_probability_p():
    img = _distinct_image()
    out = _run(device_augment.FlipCrop(0.3, 0), np.broadcast_to(img, (N, *img.shape)))
    flipped = np.array([np.array_equal(o, img[:, ::-1]) for o in out])
    kept = np.array([np.array_equal(o, img) for o in out])
    assert (flipped ^ kept).all()  # only left-right mirrors: an up-down flip matches neither
    host = np.array(
        [
            np.array_equal(
                image_augment.random_horizontal_flip(img, np.random.default_rng(s), 0.3), img
            )
            for s in range(N)
        ]
    )
    _same_distribution(~host, flipped, range(2))  # p = 0.3, not 1 - p


def _crop_offsets(out: np.ndarray, img: np.ndarray, padding: int) -> np.ndarray:
    """(top, left) of each crop as one index top·(2p+1) + left; -1 where no window matches."""
    height, width = img.shape[:2]
    padded = np.pad(img, ((padding, padding), (padding, padding), (0, 0)))
    side = 2 * padding + 1
    windows = [
        padded[t : t + height, left : left + width] for t in range(side) for left in range(side)
    ]
    return np.array(
        [next((i for i, w in enumerate(windows) if np.array_equal(o, w)), -1) for o in out]
    )


def test_crop_offsets_are_uniform_like_the_host_ones():
    img, padding = _distinct_image(), 2
    out = _run(device_augment.FlipCrop(0.0, padding), np.broadcast_to(img, (N, *img.shape)))
    host = [
        image_augment.random_crop_with_padding(
            img, np.random.default_rng(s), img.shape[:2], padding
        )
        for s in range(N)
    ]
    cells = range((2 * padding + 1) ** 2)  # top and left in 0..2p, both ends included
    _same_distribution(
        _crop_offsets(np.array(host), img, padding), _crop_offsets(out, img, padding), cells
    )


# ------------------------------------------------------------------------------ SpecAugment


def _spec_cfg(**overrides) -> ml_collections.ConfigDict:
    """The reference SpecAugment settings with every draw off unless asked for."""
    return spec_config(**{**dict(time_shift_p=0.0, freq_mask_p=0.0, time_mask_p=0.0), **overrides})


def _spec_op(cfg: ml_collections.ConfigDict) -> device_augment.SpecAugment:
    return device_augment.SpecAugment(
        cfg.time_shift_p,
        cfg.time_shift_max_fraction,
        cfg.freq_mask_p,
        cfg.freq_mask_param,
        cfg.time_mask_p,
        cfg.time_mask_param,
    )


FEATURES = 1.0 + np.arange(16 * 101, dtype=np.float32).reshape(16, 101)  # (n_mels, T), no zero


def _host_and_device(cfg: ml_collections.ConfigDict, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    host = np.array(
        [augment.spec_augment(FEATURES, np.random.default_rng(s), cfg) for s in range(n)]
    )
    batch = np.broadcast_to(FEATURES[None, :, :, None], (n, *FEATURES.shape, 1))
    return host, _run(_spec_op(cfg), batch)[..., 0]


def test_time_shift_is_a_roll_by_the_host_distribution():
    host, device = _host_and_device(_spec_cfg(time_shift_p=0.3))
    max_shift = int(0.05 * 101)  # 5

    def shifts(outputs):
        rolls = {k: np.roll(FEATURES, k, axis=1) for k in range(-max_shift, max_shift + 1)}
        return np.array(
            [next(k for k, r in rolls.items() if np.array_equal(o, r)) for o in outputs]
        )

    # k = 0 holds the examples left unshifted (p = 0.3) and a 1/11 share of the shifted ones.
    _same_distribution(
        shifts(host) + max_shift, shifts(device) + max_shift, range(2 * max_shift + 1)
    )


def _bands(outputs: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Width and last index of each output's zeroed band along `axis` (1 mel bands, 2 time); -1
    as last index where nothing is masked. Asserts the zeros form one full band."""
    zero = outputs == 0
    full = zero.all(axis=3 - axis)  # a mel band zero over all times, or a frame over all bands
    assert np.array_equal(zero, np.expand_dims(full, 3 - axis) & np.ones_like(zero))
    widths = full.sum(axis=1)
    last = np.where(widths > 0, full.shape[1] - 1 - np.argmax(full[:, ::-1], axis=1), -1)
    first = np.argmax(full, axis=1)
    assert np.array_equal(np.where(widths > 0, last - first + 1, 0), widths)  # contiguous
    return widths, last


@pytest.mark.parametrize("axis, name, param", [(1, "freq", 8), (2, "time", 20)])
def test_mask_width_and_position_follow_the_host(axis, name, param):
    host, device = _host_and_device(_spec_cfg(**{f"{name}_mask_p": 0.7}))  # 0.3 would differ
    (host_widths, host_last), (device_widths, device_last) = (
        _bands(host, axis),
        _bands(device, axis),
    )
    _same_distribution(host_widths, device_widths, range(param))  # widths 0..param-1
    size = FEATURES.shape[axis - 1]
    assert device_last.max() <= size - 2  # as torchaudio: the last index is never masked
    _same_distribution(host_last // 4, device_last // 4, range(-1, (size - 2) // 4 + 1))
    # the last positions in detail: where a start drawn below size - floor(w) would show
    _same_distribution(
        np.minimum(size - 2 - host_last, 3), np.minimum(size - 2 - device_last, 3), range(4)
    )


def test_spec_augment_order_shift_then_masks():
    """A mask drawn after the roll is a band of the rolled features (zeros never wrap around)."""
    cfg = _spec_cfg(time_shift_p=1.0, time_mask_p=1.0)
    _, device = _host_and_device(cfg, n=200)
    widths, _ = _bands(device, 2)
    assert (widths <= 19).all() and (widths > 0).mean() > 0.8


# ------------------------------------------------------------------------------ in the step


def _apply_identity(variables, x, *, train, rngs=None, mutable=False):
    del variables, train, rngs, mutable
    return x


def test_draws_follow_the_step_key_not_the_call():
    inputs = DeviceInputs(Normalize((0.5,) * 3, (0.5,) * 3), device_augment.FlipCrop(0.5, 2))
    apply = jax.jit(InputApply(_apply_identity, inputs), static_argnames="train")
    x = np.broadcast_to(_distinct_image(), (64, 6, 7, 3))
    key = jax.random.key(3)

    def at_step(step: int) -> np.ndarray:
        return np.asarray(apply({}, x, train=True, rngs={"dropout": jax.random.fold_in(key, step)}))

    first = at_step(5)
    np.testing.assert_array_equal(first, at_step(5))  # a resumed step draws the same
    assert not np.array_equal(first, at_step(6))
    evaluated = np.asarray(apply({}, x, train=False))  # eval: normalised, never augmented
    np.testing.assert_allclose(evaluated, image.normalize(x, (0.5,) * 3, (0.5,) * 3), atol=1e-6)


def test_members_apply_fns_are_equal_so_they_share_a_program():
    one, two = (load_config("tiny_imagenet") for _ in range(2))
    two.seed, two.train.lr = 7, 0.5
    for config in (one, two):
        config.data.augment_on = "device"
    task = tasks.get(one)
    a, b = (InputApply(_apply_identity, task.step_inputs(c)) for c in (one, two))
    assert a == b and hash(a) == hash(b)


# ------------------------------------------------------------------------------ per task


def _config(task: str, augment_on: str = "device", **augment) -> ml_collections.ConfigDict:
    config = load_config(task)
    config.data.augment_on = augment_on
    config.augment.update(augment)
    return config


def test_auto_is_the_host_on_cpu_and_the_device_elsewhere():
    config = _config("esc50", "auto")
    assert not on_device(config) and on_device(config, backend="gpu")
    assert on_device(config, "tpu") and not on_device(_config("esc50", "host"), "gpu")
    task = tasks.get(config)
    assert task.host_view(config) == (task, config) and task.step_inputs(config) is None


def test_image_tasks_send_pixels_and_move_what_commutes():
    config = _config("tiny_imagenet")  # contrast 0.1: the crop stays on the host
    task = tasks.get(config)
    host_task, host = task.host_view(config)
    record = {"image": _distinct_image(), "label": 0}
    assert host_task.model_input(record, host).dtype == np.uint8
    assert (host.augment.flip_p, host.augment.crop_padding) == (0.0, 4)
    assert config.augment.flip_p == 0.5  # the run's own config is left as it was
    inputs = task.step_inputs(config)
    assert inputs.augment == device_augment.FlipCrop(0.5, 0)
    assert inputs.normalize == Normalize(
        tuple(config.preprocess.mean), tuple(config.preprocess.std)
    )

    no_contrast = _config("tiny_imagenet", contrast=0.0)
    assert tasks.get(no_contrast).step_inputs(no_contrast).augment == device_augment.FlipCrop(
        0.5, 4
    )
    assert tasks.get(no_contrast).host_view(no_contrast)[1].augment.crop_padding == 0

    rotated = _config("celeba")  # rotation: flip and jitter stay on the host, only normalising
    assert tasks.get(rotated).step_inputs(rotated).augment is None
    assert tasks.get(rotated).host_view(rotated)[1].augment.flip_p == 0.5


def test_esc50_moves_all_of_spec_augment():
    config = _config("esc50")
    task = tasks.get(config)
    assert task.host_view(config)[1].augment.enabled is False
    assert task.step_inputs(config) == DeviceInputs(augment=_spec_op(config.augment))


def test_no_draws_in_the_step_without_augmentation():
    disabled, overfit = _config("cub200", enabled=False), _config("cub200")
    overfit.train.overfit_n = 8  # trains on a fixed subset, augmentation off
    for config in (disabled, overfit):
        assert tasks.get(config).step_inputs(config).augment is None  # still normalises
    assert (
        tasks.get(_config("esc50", enabled=False)).step_inputs(_config("esc50", enabled=False))
        is None
    )


def test_augment_on_is_validated():
    config = _config("esc50", "gpu")
    with pytest.raises(ConfigError, match=r"data.augment_on='gpu' is invalid: expected one of "):
        config_lib.validate(config)


# ------------------------------------------------------------------------------ why these move


def _jitter(img: np.ndarray, seed: int, **strengths) -> np.ndarray:
    return image_augment.color_jitter(img, np.random.default_rng(seed), **strengths)


def test_flip_commutes_with_colour_jitter_and_crop_with_all_but_contrast():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 10, 9, 3), dtype=np.uint8)
    no_contrast = dict(brightness=0.3, saturation=0.3, hue=0.1)
    every = dict(no_contrast, contrast=0.3)

    def crop(img, seed):
        return image_augment.random_crop_with_padding(img, np.random.default_rng(seed), (10, 9), 3)

    for seed, img in enumerate(imgs):
        np.testing.assert_array_equal(
            _jitter(img, seed, **every)[:, ::-1], _jitter(img[:, ::-1], seed, **every)
        )
        np.testing.assert_array_equal(
            crop(_jitter(img, seed, **no_contrast), seed),
            _jitter(crop(img, seed), seed, **no_contrast),
        )
    moved = [crop(_jitter(img, s, contrast=0.3), s) for s, img in enumerate(imgs)]
    kept = [_jitter(crop(img, s), s, contrast=0.3) for s, img in enumerate(imgs)]
    assert not all(np.array_equal(a, b) for a, b in zip(moved, kept, strict=True))


def test_flip_does_not_commute_exactly_with_rotation():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def rotate(a, angle):
        pil = Image.fromarray(np.ascontiguousarray(a))
        return np.asarray(pil.rotate(angle, resample=Image.Resampling.NEAREST))

    pairs = [(rotate(img, a)[:, ::-1], rotate(img[:, ::-1], -a)) for a in (-11.8, -5.9, 12.4)]
    assert not all(np.array_equal(a, b) for a, b in pairs)  # so celeba keeps its flip on the host
