"""Evaluation arms that generate a batch at a time, behind `evaluate`'s one-image `Arm` interface.

`evaluate.generate_images` asks for one (prompt, seed) image at a time, in sample order. On
the toy pipeline one image per call costs about four times as much per image as a batch of
64, so `BatchedArm` makes the next `batch_size` samples' images in one pipeline call on a
miss and hands them out as they are asked for. Every image still starts from
`seeds.seeded_generator(seed)` exactly as the one-image arms do, so batching changes
no image beyond float round-off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from golden_noise.evaluate import Sample
from golden_noise.generate import GoldenNoise
from golden_noise.redenoise import pipeline_dtype
from golden_noise.seeds import seeded_generator
from golden_noise.teachers import CollectionSampler, RedenoiseTeacher, Rows, Teacher

MakeBatch = Callable[[Sequence[Sample]], list[Image.Image]]


class BatchedArm:
    """An `evaluate` arm (prompt, seed) -> image that generates `batch_size` samples per call."""

    def __init__(self, make: MakeBatch, samples: Sequence[Sample], batch_size: int) -> None:
        self.make = make
        self.samples = list(samples)
        self.position = {(s.prompt, s.seed): i for i, s in enumerate(self.samples)}
        self.batch_size = batch_size
        self.cache: dict[tuple[str, int], Image.Image] = {}

    def __call__(self, prompt: str, seed: int) -> Image.Image:
        key = (prompt, seed)
        if key not in self.cache:
            start = self.position[key]
            chunk = self.samples[start : start + self.batch_size]
            images = self.make(chunk)
            self.cache = {(s.prompt, s.seed): im for s, im in zip(chunk, images, strict=True)}
        return self.cache.pop(key)


def _generators(samples: Sequence[Sample]) -> list[torch.Generator]:
    return [seeded_generator(s.seed) for s in samples]


def standard_batch(pipe: Any, **call: Any) -> MakeBatch:
    """The pipeline's own seeded noise."""

    def make(samples: Sequence[Sample]) -> list[Image.Image]:
        prompts = [s.prompt for s in samples]
        return pipe(prompts, generator=_generators(samples), **call).images

    return make


def golden_batch(golden: GoldenNoise, **call: Any) -> MakeBatch:
    """NPNet's golden version of exactly the noise the standard arm starts from."""

    def make(samples: Sequence[Sample]) -> list[Image.Image]:
        prompts = [s.prompt for s in samples]
        generators = _generators(samples)
        latents = golden.latents(prompts, generators)
        return golden.pipe(prompts, latents=latents, generator=generators, **call).images

    return make


def norm_control_batch(golden: GoldenNoise, **call: Any) -> MakeBatch:
    """A control: the seed's own noise rescaled to the golden noise's norm, direction unchanged.

    An NPNet can raise scores just by shrinking or growing the noise (a lower "temperature");
    this arm has exactly that change and nothing else, so golden minus this arm is what the
    net's change of direction adds.
    """

    def make(samples: Sequence[Sample]) -> list[Image.Image]:
        prompts = [s.prompt for s in samples]
        generators = _generators(samples)
        dtype = pipeline_dtype(golden.pipe)
        noise = golden.adapter.initial_noise(len(samples), None, None, generators, dtype)
        target = golden.latents(prompts, latents=noise)
        scale = target.float().flatten(1).norm(dim=1) / noise.float().flatten(1).norm(dim=1)
        latents = (noise.float() * scale.view(-1, 1, 1, 1)).to(dtype)
        return golden.pipe(prompts, latents=latents, generator=generators, **call).images

    return make


def teacher_batch(teacher: Teacher, sampler: CollectionSampler, **call: Any) -> MakeBatch:
    """The teacher's own target for the seed's noise (what NPNet learns to imitate).

    Re-denoise needs no scoring to make its target; other teachers (local search) score
    candidates to pick one, which is their cost.
    """
    from golden_noise.adapters import adapter_for
    from golden_noise.redenoise import redenoise

    pipe = sampler.pipe
    adapter = adapter_for(pipe)

    def make(samples: Sequence[Sample]) -> list[Image.Image]:
        prompts = [s.prompt for s in samples]
        generators = _generators(samples)
        noise = adapter.initial_noise(len(samples), None, None, generators, pipeline_dtype(pipe))
        kwargs = adapter.call_kwargs(prompts)
        if isinstance(teacher, RedenoiseTeacher):
            target = redenoise(pipe, noise.float(), kwargs, teacher.settings)
        else:
            rows = Rows(prompts, [s.prompt_index for s in samples], [s.seed for s in samples],
                        noise.float(), kwargs)  # fmt: skip
            target = teacher.teach(rows, sampler).target
        latents = adapter.pipeline_latents(target.to(noise.device, noise.dtype))
        return pipe(prompts, latents=latents, generator=generators, **call).images

    return make
