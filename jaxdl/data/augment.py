"""SpecAugment-style training augmentation of one log-mel spectrogram, as the reference applies it.

Per example, in this order (docs/reference-projects.md#esc-50): a circular time shift, one frequency
mask, one time mask, each with its own probability. Masks are filled with 0, the band mean after
standardisation. Mask widths and starts follow torchaudio's `mask_along_axis`.
"""

import ml_collections
import numpy as np


def spec_augment(
    features: np.ndarray, rng: np.random.Generator, cfg: ml_collections.ConfigDict
) -> np.ndarray:
    """`features` (n_mels, T) augmented; the input is never modified in place.

    `cfg` is `config.augment`; with `cfg.enabled` false the input is returned as is. The time
    shift is k ~ U{-K..K} frames with K = int(time_shift_max_fraction * T) (25 for T = 501).
    """
    if not cfg.enabled:
        return features
    out = features
    if rng.random() < cfg.time_shift_p:
        max_shift = int(cfg.time_shift_max_fraction * features.shape[1])
        out = np.roll(out, rng.integers(-max_shift, max_shift + 1), axis=1)
    if rng.random() < cfg.freq_mask_p:
        out = _mask(out, rng, cfg.freq_mask_param, axis=0)
    if rng.random() < cfg.time_mask_p:
        out = _mask(out, rng, cfg.time_mask_param, axis=1)
    return out


def _mask(features: np.ndarray, rng: np.random.Generator, mask_param: int, axis: int) -> np.ndarray:
    """Copy of `features` with one band of `axis` zeroed, drawn as torchaudio's `mask_along_axis`.

    w ~ U[0, mask_param) (capped at the axis size), width = floor(w), start = floor(U[0, size - w)):
    so start + width < size and, as in torchaudio, the last index is never masked.
    """
    size = features.shape[axis]
    width = rng.uniform(0.0, min(mask_param, size))
    start = int(rng.uniform(0.0, size - width))
    masked = features.copy()
    index = [slice(None)] * features.ndim
    index[axis] = slice(start, start + int(width))
    masked[tuple(index)] = 0.0
    return masked
