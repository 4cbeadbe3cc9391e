"""Value checks shared by every module that validates its own config keys (config, optim, the
models, the tasks): one message shape, `key=value is invalid: expected …`, raised as ConfigError."""

import math
from typing import Any

import ml_collections

from jaxdl.errors import ConfigError


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}")


def get(config: ml_collections.ConfigDict, key: str) -> Any:
    """`config["a.b.c"]` for a dotted key."""
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def check_choice(config: ml_collections.ConfigDict, key: str, allowed: tuple) -> None:
    value = get(config, key)
    check(value in allowed, key, value, f"one of {list(allowed)}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_range(
    config: ml_collections.ConfigDict,
    key: str,
    low: float,
    high: float = float("inf"),
    low_inclusive: bool = True,
) -> None:
    value = get(config, key)
    above = is_number(value) and (value >= low if low_inclusive else value > low)
    opening, closing = "[" if low_inclusive else "(", "]" if math.isfinite(high) else ")"
    check(above and value <= high, key, value, f"a number in {opening}{low}, {high}{closing}")
