"""The paper's teacher: re-denoise sampling (one guided DDIM step, one inversion back)."""

from __future__ import annotations

from typing import Any

from golden_noise.teachers.base import Rows, Taught, Teacher, score_source_and_target
from golden_noise.teachers.redenoise_step import RedenoiseSettings, redenoise
from golden_noise.teachers.sampler import CollectionSampler


class RedenoiseTeacher(Teacher):
    """x_T' = invert_{w_w}(step_{w_l}(x_T)); source and target images generated in one batch."""

    name = "redenoise"

    def __init__(self, settings: RedenoiseSettings | None = None) -> None:
        self.settings = settings or RedenoiseSettings()

    def options(self) -> dict[str, Any]:
        return self.settings.to_dict()

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        target = redenoise(
            sampler.pipe, rows.source, rows.call_kwargs, self.settings, adapter=sampler.adapter
        )
        return score_source_and_target(rows, target, sampler)

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        return self.settings.model_calls_per_row() + 2 * sampler.settings.model_calls_per_image()
