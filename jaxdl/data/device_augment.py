"""Batched twins of `image_augment` and `augment` that run inside the jitted train step.

Each operation draws what its host twin draws, per example and with the same distribution, but
from one JAX key for the whole batch instead of numpy's per-example generator: the streams differ,
so the outputs are equal in distribution, not bitwise. The ops are frozen dataclasses (their
parameters compared by value), so they can sit in a TrainState's static `apply_fn`: every member
of a grid builds an equal one and they share a compiled program.

Layouts are the model inputs': images (B, H, W, C) (uint8 or float), log-mels (B, n_mels, T, 1).
"""

import dataclasses

import jax
import jax.numpy as jnp


def random_horizontal_flip(x: jax.Array, key: jax.Array, p: float) -> jax.Array:
    """Each image mirrored left-right with probability p (as `image_augment`'s twin)."""
    flip = jax.random.uniform(key, (x.shape[0],)) < p
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


def random_crop_with_padding(x: jax.Array, key: jax.Array, padding: int) -> jax.Array:
    """Each image zero-padded by `padding` on every side, then cropped back to (H, W) at a uniform
    position: top and left ~ U{0..2·padding} (`image_augment.random_crop_with_padding`)."""
    _, height, width, channels = x.shape
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * padding + 1)
    return jax.vmap(
        lambda image, at: jax.lax.dynamic_slice(image, (at[0], at[1], 0), (height, width, channels))
    )(padded, offsets)


@dataclasses.dataclass(frozen=True)
class FlipCrop:
    """The flip, then the pad-and-crop (`images.augment`'s first two steps, in its order)."""

    flip_p: float
    crop_padding: int

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        flip_key, crop_key = jax.random.split(key)
        if self.flip_p:
            x = random_horizontal_flip(x, flip_key, self.flip_p)
        if self.crop_padding:
            x = random_crop_with_padding(x, crop_key, self.crop_padding)
        return x


def _applied(key: jax.Array, batch: int, p: float) -> jax.Array:
    """(B,) booleans, each true with probability p (the host's `rng.random() < p`)."""
    return jax.random.uniform(key, (batch,)) < p


def time_shift(x: jax.Array, key: jax.Array, p: float, max_fraction: float) -> jax.Array:
    """With probability p, a circular roll along time by k ~ U{-K..K}, K = int(max_fraction · T)
    (`augment.spec_augment`'s first step)."""
    apply_key, shift_key = jax.random.split(key)
    max_shift = int(max_fraction * x.shape[2])
    shifts = jax.random.randint(shift_key, (x.shape[0],), -max_shift, max_shift + 1)
    shifts = jnp.where(_applied(apply_key, x.shape[0], p), shifts, 0)
    frames = x.shape[2]
    source = (jnp.arange(frames)[None, :] - shifts[:, None]) % frames  # out[t] = in[t - k]
    return jnp.take_along_axis(x, source[:, None, :, None], axis=2)


def mask_along_axis(
    x: jax.Array, key: jax.Array, p: float, mask_param: int, axis: int
) -> jax.Array:
    """With probability p, one band of `axis` (1: mel bands, 2: time) zeroed, drawn as
    `augment._mask` (torchaudio's `mask_along_axis`): w ~ U[0, min(mask_param, size)),
    width = floor(w), start = floor(U[0, size - w))."""
    apply_key, width_key, start_key = jax.random.split(key, 3)
    batch, size = x.shape[0], x.shape[axis]
    widths = jax.random.uniform(width_key, (batch,), maxval=min(mask_param, size))
    starts = jnp.floor(jax.random.uniform(start_key, (batch,), maxval=size - widths))
    index = jnp.arange(size)[None, :]
    band = (index >= starts[:, None]) & (index < starts[:, None] + jnp.floor(widths)[:, None])
    band &= _applied(apply_key, batch, p)[:, None]
    shape = [batch, 1, 1, 1]
    shape[axis] = size
    return jnp.where(band.reshape(shape), jnp.zeros((), x.dtype), x)


@dataclasses.dataclass(frozen=True)
class SpecAugment:
    """Time shift, one frequency mask, one time mask, each with its own probability, in that order
    (`augment.spec_augment`)."""

    time_shift_p: float
    time_shift_max_fraction: float
    freq_mask_p: float
    freq_mask_param: int
    time_mask_p: float
    time_mask_param: int

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        shift_key, freq_key, time_key = jax.random.split(key, 3)
        x = time_shift(x, shift_key, self.time_shift_p, self.time_shift_max_fraction)
        x = mask_along_axis(x, freq_key, self.freq_mask_p, self.freq_mask_param, axis=1)
        return mask_along_axis(x, time_key, self.time_mask_p, self.time_mask_param, axis=2)
