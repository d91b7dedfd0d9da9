"""Stage I teachers: how a target noise is made for each source noise, by name."""

from __future__ import annotations

from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.base import Rows, Taught, Teacher
from golden_noise.teachers.evolution import EvolutionTeacher
from golden_noise.teachers.local_search import LocalSearchTeacher
from golden_noise.teachers.prompt_offset import PromptOffsetTeacher
from golden_noise.teachers.redenoise import RedenoiseTeacher
from golden_noise.teachers.reward_gradient import RewardGradientTeacher
from golden_noise.teachers.sampler import CollectionSampler, SamplerSettings

TEACHERS: dict[str, type[Teacher]] = {
    RedenoiseTeacher.name: RedenoiseTeacher,
    LocalSearchTeacher.name: LocalSearchTeacher,
    EvolutionTeacher.name: EvolutionTeacher,
    RewardGradientTeacher.name: RewardGradientTeacher,
    PromptOffsetTeacher.name: PromptOffsetTeacher,
}


def get_teacher(name: str, **options: Any) -> Teacher:
    """Build a teacher by registry name with its options."""
    if name not in TEACHERS:
        raise GoldenNoiseError(f"unknown teacher {name!r}; expected one of {', '.join(TEACHERS)}")
    return TEACHERS[name](**options)


__all__ = [
    "TEACHERS",
    "CollectionSampler",
    "EvolutionTeacher",
    "LocalSearchTeacher",
    "PromptOffsetTeacher",
    "RedenoiseTeacher",
    "RewardGradientTeacher",
    "Rows",
    "SamplerSettings",
    "Taught",
    "Teacher",
    "get_teacher",
]
