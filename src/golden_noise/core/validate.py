"""Checks for user-given settings, shared by every config dataclass's `__post_init__`.

The CLI and the Python API build the same dataclasses, so a value is refused the same way
whichever door it came through: one GoldenNoiseError naming the setting, the value and what
is allowed. Booleans are not integers here (`True` is no batch size), strings are not numbers
(`height="8"` from a JSON file), and NaN or infinity is never a valid float setting.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from golden_noise.core.errors import GoldenNoiseError

# The most images or rows one call may batch: far above any accelerator's memory, low enough
# that a typo (--batch-size 10000000) is refused instead of trying to allocate it.
MAX_BATCH = 65536


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` if it is an int within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoldenNoiseError(f"{name} must be an integer; got {value!r}")
    _in_range(name, value, minimum, maximum)
    return value


def number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
) -> float:
    """`value` as a float if it is a finite number within the bounds (`above`: strictly)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GoldenNoiseError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise GoldenNoiseError(f"{name} must be a finite number; got {value!r}")
    if above is not None and not value > above:
        raise GoldenNoiseError(f"{name} must be greater than {above}; got {value!r}")
    _in_range(name, value, minimum, maximum)
    return float(value)


def choice(name: str, value: Any, allowed: Collection[Any]) -> Any:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise GoldenNoiseError(f"{name} must be one of {shown}; got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise GoldenNoiseError(f"{name} must be true or false; got {value!r}")
    return value


def _in_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise GoldenNoiseError(f"{name} must be at least {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        raise GoldenNoiseError(f"{name} must be at most {maximum}; got {value!r}")


def pipeline_call(
    steps: int | None, guidance: float | None, height: int | None, width: int | None
) -> None:
    """Sampler settings a pipeline call would otherwise take silently: 0 or -5 steps (pure
    noise, or a ZeroDivisionError deep in the scheduler), a negative or NaN guidance (CFG
    quietly off), a zero size (the pipeline's default size instead)."""
    if steps is not None:
        integer("steps", steps, 1, 1000)  # schedulers have 1000 training timesteps
    if guidance is not None:
        number("guidance", guidance, 0)
    for name, value in (("height", height), ("width", width)):
        if value is not None:
            integer(name, value, 1)
