"""The one path that generates "the same (prompt, seed) under several noises", batched.

An arm decides the starting noise of a batch of samples; everything else (prompt, seed,
generator, sampler settings) is shared. `generate_arms` draws each sample's own noise once
from `seeds.seeded_generator(seed)` and hands it to every arm:

- `standard()`: that noise unchanged (what the pipeline draws from the seed by itself);
- `golden(net)`: NPNet's edit of it;
- `norm_matched(net)`: that noise rescaled per sample to the golden noise's L2 norm, a
  control: an NPNet can raise scores by shrinking the noise alone (a lower "temperature"),
  and this arm has exactly that change and nothing else;
- `random_move(net)`: that noise moved as far as the net moves it, in a random direction, at
  the golden norm, the control for "any move of that size helps";
- `teacher(teacher)`: the teacher's target for it (what NPNet learns to imitate).

Batches go to the pipeline as lists of prompts and generators, the way diffusers batches;
every arm's call gets fresh generators advanced past the noise draw, so stochastic samplers
see the same randomness in every arm. `generate`'s compare, `evaluate` and the demo all use
this function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from PIL import Image

from golden_noise.adapters import PipelineAdapter, PromptEmbeddings, adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import latent_norms, with_norms
from golden_noise.core.seeds import keyed_generator, seeded_generator
from golden_noise.core.validate import MAX_BATCH, integer
from golden_noise.prompts.sources import prompt_group
from golden_noise.teachers.sampler import CollectionSampler

if TYPE_CHECKING:
    from golden_noise.teachers import Teacher


class GoldenLatents(Protocol):
    """What the golden arms need of a net (`generation.generate.GoldenNoise`): its latents."""

    def latents(
        self,
        prompt: list[str],
        /,
        *,
        height: int | None,
        width: int | None,
        latents: torch.Tensor,
        embeddings: PromptEmbeddings,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Sample:
    """One prompt with one seed: the unit that is paired across arms."""

    prompt_index: int
    prompt: str
    seed: int
    group: str | None = None


def make_samples(
    prompts: Sequence[str], seeds: Sequence[int], groups: Sequence[str | None] | None = None
) -> list[Sample]:
    """Prompt-major (prompt, seed) samples, each in its prompt's group: `groups[i]` when
    given (e.g. a benchmark set's category), else the source's own group if any
    (`prompts.sources.prompt_group`: the toy world's prompt type)."""
    repeated = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
    if repeated:
        raise GoldenNoiseError(
            f"seeds must be distinct; {', '.join(map(str, repeated[:5]))} listed more than "
            f"once in {len(seeds)} seeds (each seed's images would overwrite each other)"
        )
    tags = list(groups) if groups is not None else [None] * len(prompts)
    return [
        Sample(index, prompt, seed, tags[index] or prompt_group(prompt))
        for index, prompt in enumerate(prompts)
        for seed in seeds
    ]


@dataclass
class Batch:
    """A chunk of samples and their seeds' own noise, shared by every arm.

    `noise` is unit-variance `[B, C, H, W]` in the denoiser's dtype; `golden` caches each
    net's edit of it, so the golden and norm-matched arms of one net run it once. The prompts
    are encoded once per batch (`call_kwargs`), for every net and the teacher alike.
    """

    samples: list[Sample]
    adapter: PipelineAdapter
    noise: torch.Tensor
    size: tuple[int | None, int | None]
    _golden: dict[int, torch.Tensor] = field(default_factory=dict)
    _call_kwargs: dict[str, Any] | None = None
    # images already made this batch, by (prompt, start latents): what an arm can reuse
    known: dict[tuple[str, bytes], Image.Image] = field(default_factory=dict)

    @property
    def prompts(self) -> list[str]:
        return [s.prompt for s in self.samples]

    @property
    def call_kwargs(self) -> dict[str, Any]:
        """The prompts encoded (`PipelineAdapter.call_kwargs`), on first use, once."""
        if self._call_kwargs is None:
            self._call_kwargs = self.adapter.call_kwargs(self.prompts, *self.size)
        return self._call_kwargs

    def golden(self, net: GoldenLatents) -> torch.Tensor:
        """`net`'s golden latents for this batch, in the pipeline's `latents=` form."""
        if id(net) not in self._golden:
            height, width = self.size
            embeddings = self.adapter.prompt_embeddings(self.call_kwargs)
            self._golden[id(net)] = net.latents(
                self.prompts, height=height, width=width, latents=self.noise, embeddings=embeddings
            )
        return self._golden[id(net)]


# An arm maps a batch to its starting latents, in the form the pipeline's `latents=` takes.
Arm = Callable[[Batch], torch.Tensor]


def standard() -> Arm:
    """The seed's own noise."""
    return lambda batch: batch.adapter.pipeline_latents(batch.noise)


def golden(net: GoldenLatents) -> Arm:
    """NPNet's golden version of exactly the noise the standard arm starts from."""
    return lambda batch: batch.golden(net)


def norm_matched(net: GoldenLatents) -> Arm:
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


def random_move(net: GoldenLatents, seed: int = 0) -> Arm:
    """The seed's noise moved as far as `net` moves it, in a random direction, at the golden
    norm: a control for "any move of that size helps" (golden minus this arm is what the
    net's choice of direction adds beyond the size of its move and its norm).

    Each sample's direction comes from a generator keyed by (`seed`, the sample's seed), so
    it is the same in every batch layout and process.
    """

    def start(batch: Batch) -> torch.Tensor:
        noise = batch.adapter.pipeline_latents(batch.noise).float()
        moved = batch.golden(net).float()
        directions = torch.stack(
            [
                torch.randn(noise.shape[1:], generator=keyed_generator(seed, s.seed))
                for s in batch.samples
            ]
        ).to(noise.device)
        step = with_norms(directions, latent_norms(moved - noise))
        return with_norms(noise + step, latent_norms(moved)).to(batch.noise.dtype)

    return start


def teacher(teacher: Teacher, sampler: CollectionSampler | None = None) -> Arm:
    """The teacher's own target for the seed's noise.

    Re-denoise makes its target without scoring; other teachers (local search) score
    candidates with `sampler` to pick one, which is their cost. With a `RecordingSampler`
    the images it made on the way (the seed's own noise, every candidate) are handed to the
    batch, so neither this arm's image nor the standard arm's is generated again.
    """
    from golden_noise.teachers import RedenoiseTeacher, Rows
    from golden_noise.teachers.redenoise_step import redenoise

    def start(batch: Batch) -> torch.Tensor:
        adapter, source, kwargs = batch.adapter, batch.noise.float(), batch.call_kwargs
        if isinstance(teacher, RedenoiseTeacher):
            target = redenoise(adapter.pipe, source, kwargs, teacher.settings, adapter=adapter)
        else:
            samples = batch.samples
            rows = Rows(batch.prompts, [s.prompt_index for s in samples],
                        [s.seed for s in samples], source, kwargs)  # fmt: skip
            target = teacher.teach(rows, sampler).target
            if isinstance(sampler, RecordingSampler):
                batch.known.update(sampler.seen)
                sampler.seen.clear()
        return adapter.pipeline_latents(target.to(batch.noise.device, batch.noise.dtype))

    return start


def _key(prompt: str, latents: torch.Tensor) -> tuple[str, bytes]:
    """What makes an image: the prompt and the exact start latents (any float dtype)."""
    return prompt, latents.detach().float().cpu().contiguous().numpy().tobytes()


class RecordingSampler(CollectionSampler):
    """A collection sampler that keeps every image it scores, by (prompt, start latents).

    Its images stand in for an evaluation's only when it renders exactly what the
    evaluation's pipeline call renders from the same latents: see `renders_like`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[tuple[str, bytes], Image.Image] = {}

    def score(
        self,
        latents: torch.Tensor,
        call_kwargs: Mapping[str, Any],
        prompts: Sequence[str],
        seeds: Sequence[int],
    ) -> torch.Tensor:
        images = self.images(latents, call_kwargs, seeds)
        starts = self.adapter.pipeline_latents(latents.to(self.adapter.denoiser.dtype))
        for prompt, row, image in zip(prompts, starts, images, strict=True):
            self.seen[_key(prompt, row)] = image
        return self.scorer.score(images, list(prompts))

    def renders_like(self, call: Mapping[str, Any]) -> bool:
        """True when a pipeline call with `call` makes the same image from the same latents:
        same steps and guidance, and the pipeline's own scheduler is the deterministic DDIM
        this sampler uses (DDIM with eta 0 ignores the generator)."""
        from diffusers import DDIMScheduler

        def settings(scheduler: Any) -> dict[str, Any]:  # "_" keys are bookkeeping
            return {k: v for k, v in scheduler.config.items() if not k.startswith("_")}

        own = self.pipe.scheduler
        return (
            call.get("num_inference_steps") == self.settings.steps
            and call.get("guidance_scale") == self.settings.guidance
            and type(own) is DDIMScheduler
            and settings(own) == settings(self._scheduler)
        )


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
    adapter: PipelineAdapter | None = None,
    **call: Any,
) -> Iterator[ArmImages]:
    """Images of every sample under every arm, `batch_size` samples per pipeline call.

    `call` goes to every pipeline call (e.g. `num_inference_steps`, `guidance_scale`,
    `height`, `width`). Yields one `ArmImages` per batch, in sample order, so a caller can
    write them out as they come. Every arm's start latents are computed first, then images
    are made only for (prompt, latents) not already made this batch: a scoring teacher's
    images (see `RecordingSampler`) and any arm that starts where another did are reused.
    `adapter`: `pipe`'s adapter when the caller has one (e.g. `GoldenNoise.adapter`).
    """
    integer("batch_size", batch_size, 1, MAX_BATCH)
    adapter = adapter or adapter_for(pipe)
    size = call.get("height"), call.get("width")
    for start in range(0, len(samples), batch_size):
        chunk = list(samples[start : start + batch_size])
        noise, _ = _seeded_noise(adapter, chunk, size)
        batch = Batch(chunk, adapter, noise, size)
        reference = latent_norms(noise)
        starts = {name: arm(batch) for name, arm in arms.items()}
        ratios = {name: (latent_norms(s) / reference).tolist() for name, s in starts.items()}
        images = {name: _images(pipe, batch, s, call) for name, s in starts.items()}
        yield ArmImages(chunk, images, ratios)


def _images(pipe: Any, batch: Batch, latents: torch.Tensor, call: dict[str, Any]) -> list:
    """The image of each row of `latents`, generating only those not in `batch.known`."""
    keys = [_key(p, row) for p, row in zip(batch.prompts, latents, strict=True)]
    todo = [i for i, key in enumerate(keys) if key not in batch.known]
    if todo:
        _, generators = _seeded_noise(batch.adapter, [batch.samples[i] for i in todo], batch.size)
        made = pipe([batch.prompts[i] for i in todo], latents=latents[todo],
                    generator=generators, **call).images  # fmt: skip
        batch.known.update({keys[i]: image for i, image in zip(todo, made, strict=True)})
    return [batch.known[key] for key in keys]


def _seeded_noise(
    adapter: PipelineAdapter, samples: list[Sample], size: tuple[int | None, int | None]
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Each sample's own noise, and its generator advanced past that draw (as the pipeline
    leaves it after drawing the noise itself)."""
    generators = [seeded_generator(s.seed) for s in samples]
    dtype = adapter.denoiser.dtype
    return adapter.initial_noise(len(samples), *size, generators, dtype), generators
