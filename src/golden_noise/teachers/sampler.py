"""The collection-time sampler: latents -> images -> scores, batched, deterministic per row.

Both teachers and the collector judge noises the same way: generate the image each noise
gives with a fixed sampler (the paper: DDIM, 10 steps for SDXL) and score it against its
prompt. Prompt embeddings are precomputed (`PipelineAdapter.call_kwargs`), so the text
encoders never run here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers import DDIMScheduler
from PIL import Image

from golden_noise.adapters import PipelineAdapter, adapter_for
from golden_noise.adapters.loading import scheduler_swapped
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers.base import Scorer
from golden_noise.teachers.settings import SamplerSettings


def take_rows(call_kwargs: Mapping[str, Any], index: torch.Tensor | slice) -> dict[str, Any]:
    """The rows `index` of batched pipeline kwargs (tensors are batch-first; others shared)."""
    return {
        key: value[index] if isinstance(value, torch.Tensor) else value
        for key, value in call_kwargs.items()
    }


def tile_rows(call_kwargs: Mapping[str, Any], times: int) -> dict[str, Any]:
    """Batched pipeline kwargs repeated `times` over, block after block (rows 0..B-1, 0..B-1...)."""
    return {
        key: value.repeat(times, *([1] * (value.dim() - 1)))
        if isinstance(value, torch.Tensor)
        else value
        for key, value in call_kwargs.items()
    }


def _check_seeds(latents: torch.Tensor, seeds: Sequence[int]) -> None:
    if len(seeds) != latents.shape[0]:
        raise GoldenNoiseError(
            f"expected one seed per latent ({latents.shape[0]}), got {len(seeds)}"
        )


class CollectionSampler:
    """Generates and scores the image of each (noise, prompt) row, `batch_size` at a time.

    `scorer` may be None for a sampler that only generates (training through the sampler on
    a differentiable reward); `score` then refuses. `adapter`: `pipe`'s adapter, when the
    caller has made it already.
    """

    def __init__(
        self,
        pipe: Any,
        scorer: Scorer | None,
        settings: SamplerSettings | None = None,
        batch_size: int = 64,
        *,
        adapter: PipelineAdapter | None = None,
    ) -> None:
        if batch_size < 1:
            raise GoldenNoiseError(f"generation batch_size must be >= 1; got {batch_size}")
        self.pipe = pipe
        self.scorer = scorer
        self.settings = settings or SamplerSettings()
        self.batch_size = batch_size
        self.images_generated = 0
        self.adapter = adapter or adapter_for(pipe)
        if self.settings.scheduler == "ddim" and self.adapter.flow_matching:
            raise GoldenNoiseError(
                f"{type(pipe).__name__} is a flow-matching pipeline; DDIM cannot sample it. "
                "Use the pipeline's own scheduler (scheduler='pipeline'; CLI: --sampler pipeline)"
            )
        if self.settings.scheduler == "ddim":
            self._scheduler = DDIMScheduler.from_config(
                pipe.scheduler.config, clip_sample=False, thresholding=False
            )
        else:
            self._scheduler = pipe.scheduler

    @torch.no_grad()
    def images(
        self, latents: torch.Tensor, call_kwargs: Mapping[str, Any], seeds: Sequence[int]
    ) -> list[Image.Image]:
        """One PIL image per row of `latents` (unit-variance noise), row i with kwargs row i."""
        _check_seeds(latents, seeds)
        out: list[Image.Image] = []
        for start in range(0, latents.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            out.extend(self._generate(self.pipe, latents[rows], call_kwargs, rows, seeds, "pil"))
        self.images_generated += latents.shape[0]
        return out

    def differentiable_images(
        self,
        latents: torch.Tensor,
        call_kwargs: Mapping[str, Any],
        seeds: Sequence[int],
        steps: int | None = None,
    ) -> torch.Tensor:
        """Images `[B, 3, H, W]` in [0, 1] as a differentiable function of `latents`.

        Runs the pipeline's own sampling loop (its `__call__` without the `no_grad` that
        diffusers wraps it in), so every family's guidance and scheduler are exactly those of
        `images`, and a reward's gradient flows back to the noise through all steps. `steps`
        overrides the settings' step count: a fit through the sampler costs steps x iterations,
        and a coarser sampler often points the same way.
        """
        _check_seeds(latents, seeds)
        call = type(self.pipe).__call__.__wrapped__
        with torch.enable_grad():
            images = self._generate(
                lambda **kw: call(self.pipe, **kw),
                latents,
                call_kwargs,
                slice(None),
                seeds,
                "pt",
                steps,
            )
        self.images_generated += latents.shape[0]
        return images

    def _generate(
        self,
        pipe_call: Any,
        latents: torch.Tensor,
        call_kwargs: Mapping[str, Any],
        rows: slice,
        seeds: Sequence[int],
        output_type: str,
        steps: int | None = None,
    ) -> Any:
        with scheduler_swapped(self.pipe, self._scheduler):
            return pipe_call(
                **take_rows(call_kwargs, rows),
                latents=self.adapter.pipeline_latents(latents.to(self.adapter.denoiser.dtype)),
                num_inference_steps=steps or self.settings.steps,
                guidance_scale=self.settings.guidance,
                generator=[torch.Generator().manual_seed(int(s)) for s in list(seeds)[rows]],
                output_type=output_type,
            ).images

    def score(
        self,
        latents: torch.Tensor,
        call_kwargs: Mapping[str, Any],
        prompts: Sequence[str],
        seeds: Sequence[int],
    ) -> torch.Tensor:
        """The scorer's value of each row's image, float32 `[B]` on CPU."""
        if self.scorer is None:
            raise GoldenNoiseError("this sampler was built without a scorer; it cannot score")
        return self.scorer.score(self.images(latents, call_kwargs, seeds), list(prompts))
