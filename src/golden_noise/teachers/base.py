"""The teacher interface: a batch of source noises x_T -> target noises, both scored.

A teacher proposes, for each (prompt, seed) row, a target noise that should give a better
image than the source. Every teacher scores source and target with the same collection
sampler and scorer, so all datasets hold the same columns and the margin filter means the
same thing whichever teacher made them; the manifest records the teacher's name and options.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from golden_noise.teachers.sampler import CollectionSampler, tile_rows


def _silent(text: str) -> None:
    """The default `Rows.status`: nobody is watching."""


@dataclass
class Rows:
    """A batch of rows being collected; `source` is x_T (float32, unit variance).

    `status(text)` tells whoever collects what a teacher is doing inside the batch (collect
    shows it in its progress bar), for teachers whose one batch takes minutes.
    """

    prompts: list[str]
    prompt_index: list[int]
    seeds: list[int]
    source: torch.Tensor
    call_kwargs: dict[str, Any]
    status: Callable[[str], None] = field(default=_silent, repr=False)

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class Taught:
    """What a teacher returns for a batch: targets and both scores (float32, CPU)."""

    target: torch.Tensor
    score_source: torch.Tensor
    score_target: torch.Tensor


class Teacher(ABC):
    """Turns source noises into (hopefully) better target noises."""

    name: ClassVar[str]

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """Everything that changes what the teacher produces (stored in the manifest)."""

    @abstractmethod
    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        """Targets for `rows`, with source and target scored by `sampler`."""

    @abstractmethod
    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        """Denoiser evaluations (per sample) one row costs: the cost floor of this teacher."""

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """Refuse prompts this teacher cannot teach, before anything is written (any prompt
        by default)."""
        return None


def score_source_and_target(rows: Rows, target: torch.Tensor, sampler: CollectionSampler) -> Taught:
    """Score every row's source and its `target` in one batch (the common end of a teacher)."""
    scores = sampler.score(
        torch.cat([rows.source, target.to(device=rows.source.device, dtype=rows.source.dtype)]),
        tile_rows(rows.call_kwargs, 2),
        rows.prompts * 2,
        rows.seeds * 2,
    )
    n = len(rows)
    return Taught(target=target.cpu(), score_source=scores[:n], score_target=scores[n:])
