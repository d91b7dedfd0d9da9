"""Stage III: golden latents for an unchanged diffusers pipeline call.

```python
golden = GoldenNoise.from_pretrained("Klayand/GoldenNoiseModel", pipe, filename="sdxl.pth")
g = torch.Generator().manual_seed(0)
image = pipe(prompt, latents=golden.latents(prompt, generator=g), generator=g).images[0]
```
The golden latents replace exactly the noise the pipeline would have drawn from `g` (same
shape, order, dtype, and the generator consumed as the pipeline consumes it), at unit
variance: the pipeline scales `latents=` by its scheduler's `init_noise_sigma` itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from golden_noise.adapters import PipelineAdapter, PromptEmbeddings, adapter_for, is_known_family
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import seeded_generator
from golden_noise.core.validate import integer
from golden_noise.generation.arms import generate_arms, golden, make_samples, standard
from golden_noise.npnet import NPNet


@dataclass
class Comparison:
    """One prompt and seed generated twice: from the seed's own noise and from golden noise."""

    prompt: str
    seed: int
    standard: Any
    golden: Any


class GoldenNoise:
    """Turns the pipeline's seeded noise into NPNet's golden noise, for any supported family.

    `resize_noise=True` lets a net made for another latent size (the released nets know only
    128x128, i.e. 1024 px) serve this pipeline's size; see `resize_golden` for the
    approximation it makes. Without it, a size mismatch is an error. `adapter`: `pipe`'s
    adapter, when the caller has made it already.
    """

    def __init__(
        self,
        npnet: NPNet,
        pipe: Any,
        *,
        resize_noise: bool = False,
        adapter: PipelineAdapter | None = None,
    ) -> None:
        self.adapter: PipelineAdapter = adapter or adapter_for(pipe)
        self.pipe = pipe
        # NPNet runs in float32 whatever the pipeline's dtype, as the authors run it.
        self.npnet = npnet.to(dtype=torch.float32).eval()
        self.resize_noise = resize_noise
        family = npnet.config.family
        if family and is_known_family(family) and not self.adapter.answers_to(family):
            raise GoldenNoiseError(
                f"this NPNet was made for {self._made_for()}, but the pipeline is "
                f"{type(pipe).__name__} (family {self.adapter.family}); use an NPNet trained "
                f"for {self.adapter.family}"
            )

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        pipe: Any,
        *,
        resize_noise: bool = False,
        **npnet_kwargs: Any,
    ) -> GoldenNoise:
        """Load an NPNet (`NPNet.from_pretrained(source, **npnet_kwargs)`) for `pipe`."""
        return cls(NPNet.from_pretrained(source, **npnet_kwargs), pipe, resize_noise=resize_noise)

    @torch.no_grad()
    def latents(
        self,
        prompt: str | list[str],
        generator: torch.Generator | list[torch.Generator] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        negative_prompt: str | list[str] | None = None,
        latents: torch.Tensor | None = None,
        embeddings: PromptEmbeddings | None = None,
    ) -> torch.Tensor:
        """Unit-variance golden latents for `pipe(prompt, latents=..., generator=...)`.

        Arguments mean what they mean in the pipeline call; pass the same values there.
        `latents`: unit-variance `[B, C, H, W]` noise to start from instead of drawing it from
        `generator`. The result is in the form the pipeline's `latents=` takes (FLUX: packed
        `[B, (H/2)(W/2), 4C]`).
        `negative_prompt` is accepted so the pipeline's keyword arguments can be passed
        unchanged; golden noise depends on the positive prompt only, as in the paper.
        `embeddings`: `prompt` already encoded (`PipelineAdapter.encode_prompt` or
        `prompt_embeddings`), one row per image, so the text encoders do not run again.
        """
        _check_request(prompt, num_images_per_prompt, height, width)
        embeds = embeddings or self.adapter.encode_prompt(prompt, num_images_per_prompt)
        if embeddings is not None:
            _check_embeddings(prompt, num_images_per_prompt, embeddings)
        batch = embeds.batch_size
        if latents is None:
            noise = self.adapter.initial_noise(
                batch, height, width, generator, dtype=embeds.tokens.dtype
            )
        else:
            noise = self._given_noise(latents, batch, height, width, embeds.tokens.dtype)
        self._check_fits(noise, embeds.tokens, height, width)
        self.npnet.to(self.adapter.device)
        if self._needs_resize(noise):
            golden = resize_golden(self.npnet, noise, embeds.tokens)
        else:
            golden = self.npnet(noise, embeds.tokens)
        if not torch.isfinite(golden).all():
            raise GoldenNoiseError(
                "NPNet turned the noise into NaN or infinite latents; its weights or the "
                "prompt embedding hold extreme values"
            )
        return self.adapter.pipeline_latents(golden)

    def image(self, prompt: str, seed: int, **pipe_kwargs: Any) -> Any:
        """The pipeline's image for (prompt, seed), started from golden instead of seed noise.

        `pipe_kwargs` go to the pipeline call (e.g. `num_inference_steps`, `height`). The
        generator lives on the CPU, so a seed means the same noise on any device, as
        diffusers recommends.
        """
        generator = seeded_generator(seed)
        size = pipe_kwargs.get("height"), pipe_kwargs.get("width")
        latents = self.latents(prompt, generator, *size)
        return self.pipe(prompt, latents=latents, generator=generator, **pipe_kwargs).images[0]

    def compare(
        self,
        prompts: str | Sequence[str],
        seeds: Sequence[int],
        *,
        batch_size: int = 8,
        show_progress: bool = True,
        **pipe_kwargs: Any,
    ) -> list[Comparison]:
        """Standard and golden images for every (prompt, seed), prompt-major, from the same
        seeded noise (`generation.arms.generate_arms`, `batch_size` images per call).

        `pipe_kwargs` go to every pipeline call (e.g. `num_inference_steps`,
        `guidance_scale`, `negative_prompt`, `height`).
        """
        from golden_noise.core.progress import track

        samples = make_samples([prompts] if isinstance(prompts, str) else prompts, seeds)
        arms = {"standard": standard(), "golden": golden(self)}
        batches = generate_arms(
            self.pipe, samples, arms, batch_size=batch_size, adapter=self.adapter, **pipe_kwargs
        )
        total = -(-len(samples) // batch_size)
        return [
            Comparison(sample.prompt, sample.seed, *pair)
            for batch in track(batches, "standard vs golden", total, disable=not show_progress)
            for sample, *pair in zip(
                batch.samples, batch.images["standard"], batch.images["golden"], strict=True
            )
        ]

    def _given_noise(
        self,
        latents: torch.Tensor,
        batch: int,
        height: int | None,
        width: int | None,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        if not torch.isfinite(latents).all() or latents.abs().max() > MAX_NOISE:
            raise GoldenNoiseError(
                f"latents must be finite unit-variance noise (|values| up to {MAX_NOISE:g}); got "
                f"values up to {latents.abs().max().item():g}"
            )
        expected = self.adapter.latent_shape(batch, height, width)
        if tuple(latents.shape) != expected:
            raise GoldenNoiseError(
                f"latents must have the pipeline's shape {list(expected)} for {batch} images; "
                f"got {list(latents.shape)}"
            )
        return latents.to(device=self.adapter.device, dtype=dtype)

    def _needs_resize(self, noise: torch.Tensor) -> bool:
        config = self.npnet.config
        return tuple(noise.shape[-2:]) != (config.height, config.width)

    def _made_for(self) -> str:
        config = self.npnet.config
        family = config.family or "an unnamed family"
        return (
            f"{family} (prompt embedding {config.text_tokens}x{config.text_dim}, "
            f"latents {config.channels}x{config.height}x{config.width})"
        )

    def check_size(self, height: int | None = None, width: int | None = None) -> None:
        """Refuse an image size or a prompt embedding this net cannot take, before any image
        is made or file is written: the checks `latents` makes once it has the noise and the
        prompt's embedding (the pipeline's embedding shape is read from an empty prompt)."""
        noise = torch.empty(self.adapter.latent_shape(1, height, width), device="meta")
        tokens = torch.empty((1, *self.adapter.text_shape()), device="meta")
        self._check_fits(noise, tokens, height, width)

    def _check_fits(
        self,
        noise: torch.Tensor,
        tokens: torch.Tensor | None,
        height: int | None,
        width: int | None,
    ) -> None:
        config = self.npnet.config
        height, width = self.adapter.resolve_size(height, width)
        _, channels, latent_h, latent_w = noise.shape
        text = (
            "" if tokens is None else f"prompt embedding {tokens.shape[1]}x{tokens.shape[2]} and "
        )
        gives = (
            f"{type(self.pipe).__name__} ({self.adapter.family}) gives {text}"
            f"latents {channels}x{latent_h}x{latent_w} at {height}x{width} px"
        )
        text_fits = tokens is None or tuple(tokens.shape[1:]) == (
            config.text_tokens,
            config.text_dim,
        )
        if not text_fits or channels != config.channels:
            raise GoldenNoiseError(f"this NPNet was made for {self._made_for()}; {gives}")
        if self._needs_resize(noise) and not self.resize_noise:
            step = self.adapter.vae_scale_factor
            raise GoldenNoiseError(
                f"this NPNet was made for {self._made_for()}, i.e. "
                f"{config.height * step}x{config.width * step} px on this pipeline; {gives}. "
                "Generate at the net's size, or pass resize_noise=True (CLI: --resize-noise) to "
                "resize the noise to the net's size and back (an approximation)"
            )


def _standardized(x: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """`x` with each (sample, channel) plane's mean and std set to `like`'s (default 0 and 1)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    unit = (x - mean) / std
    if like is None:
        return unit
    return unit * like.std(dim=(-2, -1), keepdim=True) + like.mean(dim=(-2, -1), keepdim=True)


def resize_golden(npnet: NPNet, noise: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Golden noise from a net made for another latent size (an approximation).

    The noise is resized (bilinear, antialiased) to the net's size and re-standardised, the
    net's edit (output minus input) is resized back and added to the original noise, and the
    sum gets the original noise's per-(sample, channel) mean and std. So an identity net
    returns the seed's noise unchanged and the result stays unit-variance Gaussian-like; but
    interpolated noise is spatially correlated, which the net never saw in training, and the
    edit loses detail finer than the coarser of the two grids.
    """
    config = npnet.config
    x = noise.to(torch.float32)
    at_net_size = _standardized(
        F.interpolate(x, (config.height, config.width), mode="bilinear", antialias=True)
    )
    edit = npnet(at_net_size, tokens) - at_net_size
    edit = F.interpolate(edit, x.shape[-2:], mode="bilinear", antialias=True)
    return _standardized(x + edit, like=x).to(noise.dtype)


# Unit-variance Gaussian noise stays below ~7 in any practical batch; 1e3 leaves room for
# deliberately scaled noise while huge values (1e30) would overflow NPNet's SVD into NaN.
MAX_NOISE = 1e3
MAX_IMAGES = 4096  # one call's batch; more is a typo, not a batch that fits in memory


def _check_request(
    prompt: Any, num_images_per_prompt: Any, height: int | None, width: int | None
) -> None:
    """The same refusals whether the call came from the CLI or Python."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list | tuple) or not prompts:
        raise GoldenNoiseError(
            f"prompt must be a string or a non-empty list of them; got {prompt!r}"
        )
    if not all(isinstance(p, str) for p in prompts):
        raise GoldenNoiseError(f"every prompt must be a string; got {prompt!r}")
    integer("num_images_per_prompt", num_images_per_prompt, 1, MAX_IMAGES)
    for name, value in (("height", height), ("width", width)):
        if value is not None:
            integer(name, value, 1)


def _check_embeddings(prompt: Any, num_images_per_prompt: int, embeddings: Any) -> None:
    """Given embeddings must hold one row per requested image."""
    rows = (1 if isinstance(prompt, str) else len(prompt)) * num_images_per_prompt
    if embeddings.batch_size != rows:
        raise GoldenNoiseError(
            f"embeddings hold {embeddings.batch_size} rows for {rows} images; expected one "
            "row per prompt and image"
        )
