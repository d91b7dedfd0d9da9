"""The paper's teacher: re-denoise sampling (one guided DDIM step, one inversion back)."""

from __future__ import annotations

from typing import Any

import torch

from golden_noise.redenoise import RedenoiseSettings, redenoise
from golden_noise.teachers.base import Rows, Taught, Teacher
from golden_noise.teachers.sampler import CollectionSampler, tile_rows


class RedenoiseTeacher(Teacher):
    """x_T' = invert_{w_w}(step_{w_l}(x_T)); source and target images generated in one batch."""

    name = "redenoise"

    def __init__(self, settings: RedenoiseSettings | None = None) -> None:
        self.settings = settings or RedenoiseSettings()

    def options(self) -> dict[str, Any]:
        return self.settings.to_dict()

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        target = redenoise(sampler.pipe, rows.source, rows.call_kwargs, self.settings)
        scores = sampler.score(
            torch.cat([rows.source, target.to(rows.source.device)]),
            tile_rows(rows.call_kwargs, 2),
            rows.prompts * 2,
            rows.seeds * 2,
        )
        n = len(rows)
        return Taught(target=target, score_source=scores[:n], score_target=scores[n:])

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        return self.settings.model_calls_per_row() + 2 * sampler.settings.model_calls_per_image()
