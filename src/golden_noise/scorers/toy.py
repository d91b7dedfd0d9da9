"""The toy world's exact scorer (`golden_noise.toy.score`) behind the scorer interface."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers.base import Scorer


class ToySoft(Scorer):
    """Graded alignment of a toy image with its prompt (objects, relation, cleanliness)."""

    name = "toy-soft"
    scale = "0-1: matched objects' colour/shape/IoU, relation and cleanliness; 1 is perfect"
    field = "soft"

    def check_prompts(self, prompts: Sequence[str]) -> None:
        from golden_noise.toy.grammar import parse

        for number, prompt in enumerate(prompts):
            try:
                parse(prompt)
            except GoldenNoiseError as error:
                raise GoldenNoiseError(
                    f"{self.name} judges toy-world prompts only; prompt #{number}: {error}"
                ) from None

    def _load(self) -> None:
        from golden_noise.toy import score

        self._toy_score = score

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        return getattr(self._toy_score(images, prompts), self.field).float()


class ToyCorrect(ToySoft):
    """Exact correctness: the prompted objects and relation, nothing else."""

    name = "toy-correct"
    scale = "0 or 1: 1 when the image shows exactly what the prompt asks; its mean is accuracy"
    field = "correct"
