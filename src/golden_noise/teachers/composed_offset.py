"""A teacher whose targets are prompt offsets composed from parts (toy world only).

Per-prompt offsets fitted from zero carry little to new compositions through a net; the
same offsets averaged into an object-and-role table (`toy.offset_parts`) do. This teacher
gives every row its prompt's composed offset, so a prompt-offset NPNet trained on its rows
learns offsets that are consistent across prompts: `collect --teacher composed-offset
--offset-source DATASET` over any toy prompts, then `train`. Several sources (say, a second
fit of the same prompts from other fit noises, `collect --offset-fit-seed 1`) are averaged
together: the table rests on every fit they hold. It is the teacher registry's
door to the toy world (the table reads the toy grammar's parse of a prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import latent_norms, with_norms
from golden_noise.dataset import DatasetManifest, NoisePromptDataset
from golden_noise.teachers.base import Rows, Taught, Teacher, score_source_and_target
from golden_noise.teachers.sampler import CollectionSampler
from golden_noise.toy.offset_parts import (
    fit_offset_parts,
    object_roles,
    offsets_digest,
    offsets_of_rows,
)


class ComposedOffsetTeacher(Teacher):
    """x_T' = x_T shifted by its prompt's offset composed from parts, at x_T's norm.

    The parts are fitted once, from the offsets of one or more prompt-offset datasets
    (`source`): every fit they hold is one row of the table's least squares (a prompt fitted
    twice counts twice); any toy prompt gets an offset.
    """

    name = "composed-offset"

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        ridge: float = 1.0,
        show_progress: bool = True,
    ) -> None:
        sources = [source] if isinstance(source, str | Path) else list(source)
        if not sources:
            raise GoldenNoiseError("the composed-offset teacher needs at least one source dataset")
        self.source, self.ridge = ", ".join(map(str, sources)), ridge
        prompts: list[str] = []
        offsets: list[torch.Tensor] = []
        for path in sources:
            data = NoisePromptDataset(path, manifest=DatasetManifest.load(Path(path)))
            data.verify()  # digests: a damaged shard would move every composed offset
            fitted = offsets_of_rows(data, show_progress)
            prompts += fitted
            offsets += fitted.values()
        self._digest, self._prompts = offsets_digest(prompts, offsets), len(prompts)
        self.parts = fit_offset_parts(prompts, torch.stack(offsets), ridge)

    def options(self) -> dict[str, Any]:
        # the sources' content, not their paths: a copy elsewhere resumes, a refit does not
        return {
            "ridge": self.ridge,
            "source_prompts": self._prompts,
            "source_offsets_sha256": self._digest,
        }

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        source = rows.source.float()
        if source.shape[1:] != self.parts.shared.shape:
            raise GoldenNoiseError(
                f"the offsets of {self.source} have shape {tuple(self.parts.shared.shape)}; this "
                f"pipeline's noise has shape {tuple(source.shape[1:])}"
            )
        shifted = source + self.parts.offsets(rows.prompts).to(source.device)
        return score_source_and_target(rows, with_norms(shifted, latent_norms(source)), sampler)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        for prompt in prompts:  # the table has parts for toy prompts only
            object_roles(prompt)

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        return 2 * sampler.settings.model_calls_per_image()  # scoring source and target only
