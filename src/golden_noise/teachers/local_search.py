"""A model-agnostic teacher: search a few noises around x_T and keep the best-scoring one.

Candidates are `x_T cos(angle) + eps sin(angle)` with fresh standard Gaussian `eps`: when
x_T and eps are independent N(0, I), so is every candidate, so targets stay exactly the kind
of noise the pipeline expects (no re-standardising). Each row's `eps` come from a generator
seeded by (seed, prompt_index), so a resumed or re-sharded run draws the same candidates.
Cost: K + 1 generations per row, all in one batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import keyed_generator
from golden_noise.teachers.base import Rows, Taught, Teacher
from golden_noise.teachers.sampler import CollectionSampler, tile_rows


def candidate_noise(
    source: torch.Tensor, seed: int, prompt_index: int, k: int, *more: int
) -> torch.Tensor:
    """`k` fresh standard Gaussian draws shaped like one row of `source`, fixed by the row key
    (and `more` integers of it, when given)."""
    generator = keyed_generator(seed, prompt_index, *more)
    return torch.randn((k, *source.shape), generator=generator, dtype=torch.float32)


def row_candidates(rows: Rows, k: int) -> torch.Tensor:
    """`[k, n, C, H, W]`: block j holds candidate draw j of every row (see `candidate_noise`)."""
    source = rows.source.float().cpu()
    return torch.stack(
        [
            candidate_noise(source[i], rows.seeds[i], rows.prompt_index[i], k)
            for i in range(len(rows))
        ],
        dim=1,
    )


class LocalSearchTeacher(Teacher):
    """Best of K candidates around x_T (by the collection scorer) becomes the target."""

    name = "local-search"

    def __init__(self, candidates: int = 4, angle: float = 0.5) -> None:
        if candidates < 1:
            raise GoldenNoiseError(f"local search needs >= 1 candidate; got {candidates}")
        if not 0.0 < angle <= math.pi / 2:
            raise GoldenNoiseError(f"local search angle must be in (0, pi/2] radians; got {angle}")
        self.candidates = candidates
        self.angle = angle

    def options(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "angle": self.angle}

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        n, k = len(rows), self.candidates
        source = rows.source.float().cpu()
        eps = row_candidates(rows, k)
        candidates = source * math.cos(self.angle) + eps * math.sin(self.angle)
        latents = torch.cat([source[None], candidates]).reshape(-1, *source.shape[1:])
        scores = sampler.score(
            latents.to(rows.source.device),
            tile_rows(rows.call_kwargs, k + 1),
            rows.prompts * (k + 1),
            rows.seeds * (k + 1),
        ).reshape(k + 1, n)
        best = scores[1:].argmax(dim=0)
        pick = torch.arange(n)
        return Taught(
            target=candidates[best, pick],
            score_source=scores[0],
            score_target=scores[1:][best, pick],
        )

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        return (self.candidates + 1) * sampler.settings.model_calls_per_image()
