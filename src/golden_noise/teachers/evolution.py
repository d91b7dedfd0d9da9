"""A teacher whose target a network can learn: an evolution-strategies step from x_T.

Local search keeps the best of K noises around x_T. Its target `x cos(a) + eps sin(a)` moves
mostly in a random direction that happens to suit this one x_T; regressed with MSE, what a
network can learn of it is the shrink `cos(a) x` plus a small mean direction. This teacher
instead estimates the improving direction itself and steps along it:

    d = 1/K sum_k (s(x cos a + eps_k sin a) - s(x cos a - eps_k sin a)) / 2 * eps_k
    x_T' = x_T + step * d

With antithetic pairs (+eps, -eps) the shared part of the two scores cancels, so `d` is the
standard evolution-strategies estimate of the score's gradient at x_T, smoothed over the
search radius. It is unbiased, so many rows regressed with MSE average its noise away and
leave the direction, with no shrink of the noise built into the target. Rows whose K pairs
all tie (nothing learned) keep x_T unchanged. Each row's `eps` come from a generator seeded by
(seed, prompt_index), so a resumed or re-sharded run draws the same candidates. Cost: 2K + 2
generations per row (the K pairs, source and target), all in one batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.base import Rows, Taught, Teacher
from golden_noise.teachers.local_search import row_candidates
from golden_noise.teachers.sampler import CollectionSampler, tile_rows


class EvolutionTeacher(Teacher):
    """x_T' = x_T + step * (antithetic evolution-strategies estimate of the score gradient)."""

    name = "evolution"

    def __init__(self, pairs: int = 2, angle: float = 0.5, step: float = 8.0) -> None:
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise GoldenNoiseError(f"evolution needs >= 1 antithetic pair; got {pairs!r}")
        if not 0.0 < angle <= math.pi / 2:
            raise GoldenNoiseError(f"evolution angle must be in (0, pi/2] radians; got {angle}")
        if not math.isfinite(step) or step <= 0:
            raise GoldenNoiseError(f"evolution step must be a positive number; got {step}")
        self.pairs = pairs
        self.angle = angle
        self.step = step

    def options(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "angle": self.angle, "step": self.step}

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        n, k = len(rows), self.pairs
        source = rows.source.float().cpu()
        eps = row_candidates(rows, k)  # [k, n, C, H, W]
        centre = source * math.cos(self.angle)
        spread = eps * math.sin(self.angle)
        candidates = torch.cat([centre + spread, centre - spread])  # [2k, n, ...]
        scores = self._score(torch.cat([source[None], candidates]), rows, sampler)
        plus, minus = scores[1 : k + 1], scores[k + 1 :]
        weights = (plus - minus) / 2  # [k, n]
        direction = (weights.view(k, n, *([1] * (source.dim() - 1))) * eps).mean(dim=0)
        target = source + self.step * direction
        score_target = self._score(target[None], rows, sampler)[0]
        return Taught(target=target, score_source=scores[0], score_target=score_target)

    @staticmethod
    def _score(latents: torch.Tensor, rows: Rows, sampler: CollectionSampler) -> torch.Tensor:
        """Scores of `[m, n, ...]` latents (m blocks of the n rows) as `[m, n]`."""
        m, n = latents.shape[:2]
        return sampler.score(
            latents.reshape(m * n, *latents.shape[2:]).to(rows.source.device),
            tile_rows(rows.call_kwargs, m),
            rows.prompts * m,
            rows.seeds * m,
        ).reshape(m, n)

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        return (2 * self.pairs + 2) * sampler.settings.model_calls_per_image()
