"""The one scorer interface: `score(images, prompts) -> one float per image`.

Every scorer loads its weights on the first call (so building one is free and a CLI can
validate names before any download), scores in batches of `batch_size` on `device`, and
declares its `name`, its `scale` (what a number means) and whether higher is better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from golden_noise.core.errors import GoldenNoiseError


class Scorer(ABC):
    """Base class: subclasses implement `_load` and `_score_batch`, nothing else."""

    name: ClassVar[str]
    scale: ClassVar[str]
    higher_is_better: ClassVar[bool] = True

    def __init__(
        self,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        dtype: torch.dtype = torch.float32,
        cache_dir: str | Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise GoldenNoiseError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.dtype = dtype
        self.cache_dir = cache_dir  # where hub downloads go (huggingface_hub's default if None)
        self._loaded = False

    @abstractmethod
    def _load(self) -> None:
        """Build the model(s) and read the weights; called once, on the first score."""

    @abstractmethod
    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        """Scores for one batch, shape [len(images)]."""

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """Refuse prompts this scorer cannot judge, so a run stops before it writes anything
        for them (every text is fine by default)."""
        return None

    def load(self) -> Scorer:
        """Load now instead of on the first score (e.g. to fail early on a missing file)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """One float32 score per image (on CPU), image i judged against prompt i."""
        if len(images) != len(prompts):
            raise GoldenNoiseError(
                f"{self.name}: expected one prompt per image, got {len(images)} images "
                f"and {len(prompts)} prompts"
            )
        for image in images:
            if not isinstance(image, Image.Image):
                raise GoldenNoiseError(
                    f"{self.name}: expected PIL images, found {type(image).__name__}"
                )
        self.load()
        scores = [
            self._score_batch(
                list(images[i : i + self.batch_size]), list(prompts[i : i + self.batch_size])
            )
            .detach()
            .float()
            .cpu()
            .reshape(-1)
            for i in range(0, len(images), self.batch_size)
        ]
        return torch.cat(scores) if scores else torch.zeros(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"
