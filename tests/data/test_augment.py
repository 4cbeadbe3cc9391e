"""SpecAugment: probabilities, mask geometry (torchaudio's sampling), determinism, no mutation."""

import ml_collections
import numpy as np
import pytest

from jaxdl.data.augment import spec_augment


def _cfg(**overrides) -> ml_collections.ConfigDict:
    cfg = dict(
        enabled=True,
        time_shift_p=0.3,
        time_shift_max_fraction=0.05,
        freq_mask_p=0.5,
        freq_mask_param=8,
        time_mask_p=0.5,
        time_mask_param=20,
    )
    return ml_collections.ConfigDict({**cfg, **overrides})


ALL_STEPS = dict(time_shift_p=1, freq_mask_p=1, time_mask_p=1)


def _features(seed: int = 0) -> np.ndarray:
    # Strictly positive, so every zero in the output comes from a mask.
    return np.random.default_rng(seed).uniform(1.0, 2.0, size=(64, 501)).astype(np.float32)


def test_shape_dtype_and_input_untouched():
    features = _features()
    before = features.copy()
    out = spec_augment(features, np.random.default_rng(0), _cfg(**ALL_STEPS))
    assert out.shape == (64, 501) and out.dtype == np.float32
    np.testing.assert_array_equal(features, before)


def test_same_seed_same_output_different_seeds_differ():
    features = _features()
    cfg = _cfg(**ALL_STEPS)
    first = spec_augment(features, np.random.default_rng(7), cfg)
    np.testing.assert_array_equal(first, spec_augment(features, np.random.default_rng(7), cfg))
    others = [spec_augment(features, np.random.default_rng(seed), cfg) for seed in range(8, 12)]
    assert not any(np.array_equal(first, other) for other in others)


def test_disabled_returns_input():
    features = _features()
    assert spec_augment(features, np.random.default_rng(0), _cfg(enabled=False)) is features


def test_time_shift_is_a_circular_roll_within_bounds():
    features = _features()
    shifts = set()
    cfg = _cfg(time_shift_p=1, freq_mask_p=0, time_mask_p=0)
    for seed in range(300):
        out = spec_augment(features, np.random.default_rng(seed), cfg)
        matches = [k for k in range(-25, 26) if np.array_equal(out, np.roll(features, k, axis=1))]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert min(shifts) == -25 and max(shifts) == 25  # K = int(0.05 * 501)


def _masked_rows_and_columns(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zero = out == 0
    return np.flatnonzero(zero.all(axis=1)), np.flatnonzero(zero.all(axis=0))


def test_masks_are_contiguous_zero_bands_of_bounded_width():
    features = _features()
    freq_widths, time_widths = [], []
    cfg = _cfg(time_shift_p=0, freq_mask_p=1, time_mask_p=1)
    for seed in range(500):
        out = spec_augment(features, np.random.default_rng(seed), cfg)
        rows, columns = _masked_rows_and_columns(out)
        zeros = out == 0
        expected = np.zeros_like(zeros)
        expected[rows, :] = True
        expected[:, columns] = True
        np.testing.assert_array_equal(zeros, expected)  # only whole rows and columns are zeroed
        for band, widths in ((rows, freq_widths), (columns, time_widths)):
            if band.size:
                assert np.array_equal(band, np.arange(band[0], band[-1] + 1))  # one contiguous band
            widths.append(band.size)
    assert max(freq_widths) == 7 and max(time_widths) == 19  # floor(U[0, param)) < param
    assert min(freq_widths) == 0 and min(time_widths) == 0


def test_mask_positions_span_the_axis_as_torchaudio():
    features = _features()[:, :30]
    starts, ends = set(), set()
    cfg = _cfg(time_shift_p=0, freq_mask_p=0, time_mask_p=1)
    for seed in range(2000):
        out = spec_augment(features, np.random.default_rng(seed), cfg)
        _, columns = _masked_rows_and_columns(out)
        if columns.size:
            starts.add(columns[0])
            ends.add(columns[-1])
    # start < size - width, so, as in torchaudio, the last frame is never masked.
    assert min(starts) == 0 and max(ends) == 28


@pytest.mark.parametrize("key", ["time_shift_p", "freq_mask_p", "time_mask_p"])
def test_each_step_applied_with_its_probability(key):
    features = _features()[:, :100]
    probabilities = dict(time_shift_p=0.0, freq_mask_p=0.0, time_mask_p=0.0)
    probabilities[key] = 0.3
    cfg = _cfg(**probabilities, freq_mask_param=9, time_mask_param=9, time_shift_max_fraction=0.5)
    rng = np.random.default_rng(0)
    draws = [spec_augment(features, rng, cfg) for _ in range(4000)]
    changed = np.mean([not np.array_equal(out, features) for out in draws])
    # A drawn width of 0 (1/9) or shift of 0 (1/101) leaves the input unchanged.
    no_op = {"time_shift_p": 1 / 101, "freq_mask_p": 1 / 9, "time_mask_p": 1 / 9}[key]
    assert changed == pytest.approx(0.3 * (1 - no_op), abs=0.03)
