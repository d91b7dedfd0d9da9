"""The one path that generates "the same (prompt, seed) under several noises", batched.

An arm decides the starting noise of a batch of samples; everything else (prompt, seed,
generator, sampler settings) is shared. `generate_arms` draws each sample's own noise once
from `seeds.seeded_generator(seed)` and hands it to every arm:

- `standard()`: that noise unchanged (what the pipeline draws from the seed by itself);
- `golden(net)`: NPNet's edit of it;
- `norm_matched(net)`: that noise rescaled per sample to the golden noise's L2 norm, a
  control: an NPNet can raise scores by shrinking the noise alone (a lower "temperature"),
  and this arm has exactly that change and nothing else;
- `teacher(teacher)`: the teacher's target for it (what NPNet learns to imitate).

Batches go to the pipeline as lists of prompts and generators, the way diffusers batches;
every arm's call gets fresh generators advanced past the noise draw, so stochastic samplers
see the same randomness in every arm. `generate`'s compare, `evaluate` and the demo all use
this function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from golden_noise.adapters import PipelineAdapter, adapter_for
from golden_noise.seeds import seeded_generator

if TYPE_CHECKING:
    from golden_noise.generate import GoldenNoise
    from golden_noise.teachers import CollectionSampler, Teacher


@dataclass(frozen=True)
class Sample:
    """One prompt with one seed: the unit that is paired across arms."""

    prompt_index: int
    prompt: str
    seed: int
    group: str | None = None


def make_samples(prompts: Sequence[str], seeds: Sequence[int]) -> list[Sample]:
    """Prompt-major (prompt, seed) samples, tagged with the toy world's prompt type if any."""
    from golden_noise.toy.grammar import prompt_type

    return [
        Sample(index, prompt, seed, prompt_type(prompt))
        for index, prompt in enumerate(prompts)
        for seed in seeds
    ]


@dataclass
class Batch:
    """A chunk of samples and their seeds' own noise, shared by every arm.

    `noise` is unit-variance `[B, C, H, W]` in the denoiser's dtype; `golden` caches each
    net's edit of it, so the golden and norm-matched arms of one net run it once.
    """

    samples: list[Sample]
    adapter: PipelineAdapter
    noise: torch.Tensor
    size: tuple[int | None, int | None]
    _golden: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def prompts(self) -> list[str]:
        return [s.prompt for s in self.samples]

    def golden(self, net: GoldenNoise) -> torch.Tensor:
        """`net`'s golden latents for this batch, in the pipeline's `latents=` form."""
        if id(net) not in self._golden:
            height, width = self.size
            self._golden[id(net)] = net.latents(
                self.prompts, height=height, width=width, latents=self.noise
            )
        return self._golden[id(net)]


# An arm maps a batch to its starting latents, in the form the pipeline's `latents=` takes.
Arm = Callable[[Batch], torch.Tensor]


def standard() -> Arm:
    """The seed's own noise."""
    return lambda batch: batch.adapter.pipeline_latents(batch.noise)


def golden(net: GoldenNoise) -> Arm:
    """NPNet's golden version of exactly the noise the standard arm starts from."""
    return lambda batch: batch.golden(net)


def norm_matched(net: GoldenNoise) -> Arm:
    """The seed's noise, direction unchanged, rescaled per sample to `net`'s golden norm.

    Golden minus this arm is what the net's change of direction adds. Norms are taken on the
    pipeline-form latents, a permutation of `[B, C, H, W]` for every family (FLUX packs).
    """

    def start(batch: Batch) -> torch.Tensor:
        noise = batch.adapter.pipeline_latents(batch.noise)
        ratio = latent_norms(batch.golden(net)) / latent_norms(noise)
        scaled = noise.float() * ratio.view(-1, *[1] * (noise.dim() - 1))
        return scaled.to(noise.dtype)

    return start


def teacher(teacher: Teacher, sampler: CollectionSampler | None = None) -> Arm:
    """The teacher's own target for the seed's noise.

    Re-denoise makes its target without scoring; other teachers (local search) score
    candidates with `sampler` to pick one, which is their cost.
    """
    from golden_noise.redenoise import redenoise
    from golden_noise.teachers import RedenoiseTeacher, Rows

    def start(batch: Batch) -> torch.Tensor:
        adapter, source = batch.adapter, batch.noise.float()
        kwargs = adapter.call_kwargs(batch.prompts, *batch.size)
        if isinstance(teacher, RedenoiseTeacher):
            target = redenoise(adapter.pipe, source, kwargs, teacher.settings)
        else:
            samples = batch.samples
            rows = Rows(batch.prompts, [s.prompt_index for s in samples],
                        [s.seed for s in samples], source, kwargs)  # fmt: skip
            target = teacher.teach(rows, sampler).target
        return adapter.pipeline_latents(target.to(batch.noise.device, batch.noise.dtype))

    return start


def latent_norms(latents: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm (float32) of a batch of latents in any layout."""
    return latents.float().flatten(1).norm(dim=1)


@dataclass
class ArmImages:
    """One batch's images per arm, and per arm and sample `||start|| / ||seed's noise||`."""

    samples: list[Sample]
    images: dict[str, list[Image.Image]]
    norm_ratio: dict[str, list[float]]


def generate_arms(
    pipe: Any,
    samples: Sequence[Sample],
    arms: dict[str, Arm],
    *,
    batch_size: int = 8,
    **call: Any,
) -> Iterator[ArmImages]:
    """Images of every sample under every arm, `batch_size` samples per pipeline call.

    `call` goes to every pipeline call (e.g. `num_inference_steps`, `guidance_scale`,
    `height`, `width`). Yields one `ArmImages` per batch, in sample order, so a caller can
    write them out as they come.
    """
    adapter = adapter_for(pipe)
    size = call.get("height"), call.get("width")
    for start in range(0, len(samples), batch_size):
        chunk = list(samples[start : start + batch_size])
        noise, _ = _seeded_noise(adapter, chunk, size)
        batch = Batch(chunk, adapter, noise, size)
        reference = latent_norms(noise)
        images, ratios = {}, {}
        for name, arm in arms.items():
            latents = arm(batch)
            ratios[name] = (latent_norms(latents) / reference).tolist()
            _, generators = _seeded_noise(adapter, chunk, size)
            images[name] = pipe(batch.prompts, latents=latents, generator=generators, **call).images
        yield ArmImages(chunk, images, ratios)


def _seeded_noise(
    adapter: PipelineAdapter, samples: list[Sample], size: tuple[int | None, int | None]
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Each sample's own noise, and its generator advanced past that draw (as the pipeline
    leaves it after drawing the noise itself)."""
    generators = [seeded_generator(s.seed) for s in samples]
    dtype = adapter.denoiser.dtype
    return adapter.initial_noise(len(samples), *size, generators, dtype), generators
