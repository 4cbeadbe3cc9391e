"""Where a batch's input work runs: in the host pipeline, or inside the jitted step
(`data.augment_on`).

On the host path (CPU by default) the pipeline augments every example and normalises it to
float32, as the reference projects did. On the device path (accelerators by default) the pipeline
sends what the task stores — uint8 pixels, a quarter of float32's bytes — and the step normalises
them and makes the augmentation draws it can make with the host's distribution (a task's
`device_share` says which). Those draws are keyed by the step's dropout key folded with
`AUGMENT_FOLD`: a function of the run's seed and the step number, so a resumed run draws what the
uninterrupted one drew. Host and device streams differ, so the two paths train on equally
distributed, not identical, batches.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

AUGMENT_ON = ("auto", "host", "device")  # data.augment_on
AUGMENT_FOLD = 0x617567  # separates the augmentation key from the dropout key it is folded from


def on_device(config: ml_collections.ConfigDict, backend: str | None = None) -> bool:
    """`data.augment_on` resolved: `auto` is the device path off CPU and the host path on CPU,
    where the step already keeps every core busy and the host draws are the tested reference.
    `backend` defaults to this process's."""
    setting = config.data.augment_on
    if setting == "auto":
        return (backend or jax.default_backend()) != "cpu"
    return setting == "device"


@dataclasses.dataclass(frozen=True)
class Normalize:
    """uint8 pixels -> float32 (x/255 - mean)/std per channel, as `image.normalize` on the host.

    Float input is taken as already normalised and passed through (e.g. bench's random input)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.dtype != jnp.uint8:
            return x
        mean, std = jnp.asarray(self.mean, jnp.float32), jnp.asarray(self.std, jnp.float32)
        return (x.astype(jnp.float32) / 255.0 - mean) / std


@dataclasses.dataclass(frozen=True)
class DeviceInputs:
    """What a step does to a batch's x before the model: training steps augment (when `augment`
    is set), every step normalises (when `normalize` is set). Hashable and compared by value."""

    normalize: Normalize | None = None
    # (x, key) -> x, a frozen dataclass such as `device_augment.FlipCrop`
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None) -> jax.Array:
        if train and self.augment is not None:
            x = self.augment(x, jax.random.fold_in(key, AUGMENT_FOLD))
        return x if self.normalize is None else self.normalize(x)


@dataclasses.dataclass(frozen=True)
class DeviceShare:
    """A task's split of the input work on the device path."""

    # record, config -> x as the pipeline sends it (e.g. the stored uint8 image)
    host_input: Callable[[dict, ml_collections.ConfigDict], np.ndarray]
    # (augment.* key, value) pairs the host pipeline runs with instead: the draws the step makes
    host_augment: tuple[tuple[str, Any], ...]
    inputs: DeviceInputs  # what the step does


@dataclasses.dataclass(frozen=True)
class InputApply:
    """A model's `apply` preceded by `inputs`: a TrainState's `apply_fn` on the device path.

    Called as the steps call `apply_fn` (`train=` by keyword, the dropout key in `rngs`)."""

    apply: Callable
    inputs: DeviceInputs

    def __call__(self, variables: Any, x: jax.Array, *, train: bool, rngs=None, **kwargs) -> Any:
        key = rngs["dropout"] if train and rngs else None
        return self.apply(variables, self.inputs(x, train, key), train=train, rngs=rngs, **kwargs)
