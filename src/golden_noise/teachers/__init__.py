"""Stage I teachers: how a target noise is made for each source noise, by name.

Submodules load on first use: the CLI reads `teachers.settings` without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from golden_noise.core.errors import GoldenNoiseError

_HOMES = {
    "Rows": "base",
    "Taught": "base",
    "Teacher": "base",
    "EvolutionTeacher": "evolution",
    "LocalSearchTeacher": "local_search",
    "PromptOffsetTeacher": "prompt_offset",
    "RedenoiseTeacher": "redenoise",
    "RewardGradientTeacher": "reward_gradient",
    "ComposedOffsetTeacher": "composed_offset",
    "CollectionSampler": "sampler",
    "RedenoiseSettings": "settings",
    "SamplerSettings": "settings",
}
TEACHERS = {  # registry name -> class name
    "redenoise": "RedenoiseTeacher",
    "local-search": "LocalSearchTeacher",
    "evolution": "EvolutionTeacher",
    "reward-gradient": "RewardGradientTeacher",
    "prompt-offset": "PromptOffsetTeacher",
    "composed-offset": "ComposedOffsetTeacher",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_teacher(name: str, **options: Any) -> Any:
    """Build a teacher by registry name with its options."""
    if name not in TEACHERS:
        raise GoldenNoiseError(f"unknown teacher {name!r}; expected one of {', '.join(TEACHERS)}")
    return __getattr__(TEACHERS[name])(**options)


__all__ = ["TEACHERS", "get_teacher", *_HOMES]
