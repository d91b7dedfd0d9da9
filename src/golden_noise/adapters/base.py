"""What every pipeline family answers: latent geometry, its own noise draw, its prompt encoding.

An adapter wraps one loaded diffusers pipeline. Family modules subclass `PipelineAdapter` and
override only what differs (which denoiser holds the config, how the prompt is encoded, how
the pipeline wants its `latents=`, which keyword sets the guidance strength).

Latents are always handled as unit-variance `[B, C, H, W]` noise (what NPNet edits and the
dataset stores); `pipeline_latents` turns them into what the pipeline's `latents=` takes
(FLUX packs 2x2 patches), and `unit_latents` turns a pipeline-side tensor back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from diffusers.utils.torch_utils import randn_tensor

from golden_noise.core.errors import GoldenNoiseError

Generator = torch.Generator | list[torch.Generator] | None
# What `encode_prompt` returns with guidance in the SDXL and SD3 pipelines, as call keywords.
POOLED_CFG_KWARGS = (
    "prompt_embeds",
    "negative_prompt_embeds",
    "pooled_prompt_embeds",
    "negative_pooled_prompt_embeds",
)


@dataclass
class PromptEmbeddings:
    """A prompt batch as the pipeline encodes it, one row per image in the pipeline's order.

    `tokens` is the per-token embedding `[B * num_images_per_prompt, L, D]` that NPNet is
    conditioned on; its dtype is the one the pipeline draws its initial noise in.
    `attention_mask` is set by families whose encoder returns one (Hunyuan-DiT, PixArt-Sigma).
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]


class PipelineAdapter(ABC):
    """Model-specific knowledge about one text-to-image pipeline object."""

    family: ClassVar[str]
    # Other names an NPNet's `config.family` may use for this family (e.g. "hunyuan", "sd2").
    family_aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str]
    pipeline_classes: ClassVar[tuple[str, ...]]
    denoiser_attr: ClassVar[str] = "unet"
    # Flow-matching families (SD3, FLUX) re-denoise with one Euler step on the pipeline's own
    # sigmas; the others with DDIM built from their scheduler's config.
    flow_matching: ClassVar[bool] = False

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def answers_to(cls, name: str) -> bool:
        """True when `name` (e.g. an NPNet's `config.family`) names this family."""
        return name.lower() in (cls.family, *cls.family_aliases)

    @classmethod
    def covers(cls, pipe: Any) -> bool:
        """True when `pipe` is (a subclass of) one of this family's diffusers pipeline classes."""
        import diffusers

        classes = tuple(getattr(diffusers, name) for name in cls.pipeline_classes)
        return isinstance(pipe, classes)

    @property
    def device(self) -> torch.device:
        """Where the pipeline computes; differs from the weights' device under CPU offload."""
        return self.pipe._execution_device

    @property
    def denoiser(self) -> Any:
        return getattr(self.pipe, self.denoiser_attr)

    @property
    def latent_channels(self) -> int:
        return self.denoiser.config.in_channels

    @property
    def vae_scale_factor(self) -> int:
        return self.pipe.vae_scale_factor

    @property
    def size_step(self) -> int:
        """Pixel sizes must be multiples of this (the VAE factor, times any patch packing)."""
        return self.vae_scale_factor

    def default_size(self) -> tuple[int, int]:
        """The (height, width) in pixels the pipeline uses when the call gives none."""
        side = self.pipe.default_sample_size * self.vae_scale_factor
        return side, side

    def resolve_size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """Fill in the pipeline's default size and refuse sizes the latent grid cannot hold."""
        default_h, default_w = self.default_size()
        height = default_h if height is None else height
        width = default_w if width is None else width
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoldenNoiseError(f"{name} must be an integer >= 1; got {value!r}")
        step = self.size_step
        if height % step or width % step:
            raise GoldenNoiseError(
                f"{self.family} pipeline needs height and width divisible by {step}; "
                f"got {height}x{width}"
            )
        return height, width

    def latent_shape(
        self, batch_size: int, height: int | None = None, width: int | None = None
    ) -> tuple[int, int, int, int]:
        """Shape `[B, C, H, W]` of the initial noise for images of (height, width) pixels."""
        height, width = self.resolve_size(height, width)
        step = self.vae_scale_factor
        return (batch_size, self.latent_channels, height // step, width // step)

    def initial_noise(
        self,
        batch_size: int,
        height: int | None,
        width: int | None,
        generator: Generator,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """The unit-variance noise the pipeline itself would draw from `generator`.

        Same shape, draw order, device and dtype as the pipeline's `prepare_latents` (which
        then multiplies by `scheduler.init_noise_sigma`; the adapter does not). The generator
        is consumed exactly as the pipeline would consume it, so passing the same generator on
        to the pipeline call keeps any later stochastic sampling identical too.
        """
        if isinstance(generator, list) and len(generator) != batch_size:
            raise GoldenNoiseError(
                f"got {len(generator)} generators for {batch_size} images; pass one generator "
                "per image (prompts x num_images_per_prompt) or a single generator"
            )
        shape = self.latent_shape(batch_size, height, width)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)

    def pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Unit-variance `[B, C, H, W]` latents in the form the pipeline's `latents=` takes."""
        return latents

    def unit_latents(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Inverse of `pipeline_latents` for images of (height, width) pixels."""
        return latents

    def guidance_kwargs(self, scale: float) -> dict[str, float]:
        """Pipeline-call keywords that set the guidance strength (re-denoise varies it)."""
        return {"guidance_scale": scale}

    def no_unconditional_branch(self) -> str | None:
        """Why this family's guidance is not `uncond + w (text - uncond)` (None: it is).

        Re-denoise weights the two branches itself for w < 1, which pipelines skip.
        """
        return None

    def unconditional_kwargs(self, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """`call_kwargs` (from `call_kwargs`) with each prompt tensor replaced by its
        `negative_` (empty-prompt) twin, so a call without guidance predicts the unconditional
        branch: the same tensors the pipeline's own CFG batch puts first."""
        reason = self.no_unconditional_branch()
        if reason is not None:
            raise GoldenNoiseError(f"{self.family} has no unconditional branch: {reason}")
        swapped = dict(call_kwargs)
        for key, value in call_kwargs.items():
            twin = call_kwargs.get("negative_" + key)
            if isinstance(value, torch.Tensor) and isinstance(twin, torch.Tensor):
                swapped[key] = twin
        return swapped

    @abstractmethod
    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        """The per-token prompt embedding NPNet sees, from the pipeline's own encoder."""

    def call_kwargs(
        self, prompts: list[str], height: int | None = None, width: int | None = None
    ) -> dict[str, Any]:
        """Pipeline-call keyword arguments holding `prompts` encoded once, CFG-ready.

        Prompt and negative (empty-prompt) embeddings exactly as the pipeline would encode them
        (`prompt_kwargs`, the one part each family writes), plus the resolved size, so
        repeated calls on the same rows (re-denoise, generation) skip the text encoders; rows
        follow `prompts`. Shared here rather than copied per family.
        """
        height, width = self.resolve_size(height, width)
        return {**self.prompt_kwargs(list(prompts)), "height": height, "width": width}

    def prompt_embeddings(self, call_kwargs: Mapping[str, Any]) -> PromptEmbeddings:
        """What `encode_prompt(prompts)` returns, read from `call_kwargs(prompts)` (its
        positive rows) instead of running the text encoders again."""
        return PromptEmbeddings(tokens=call_kwargs["prompt_embeds"])

    @abstractmethod
    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        """`prompts` and the empty negative prompt encoded by the pipeline's own
        `encode_prompt` with guidance on, named as the pipeline call's keywords."""

    @property
    def prompt_token_limit(self) -> int:
        """Tokens the pipeline's first tokenizer keeps; longer prompts are truncated."""
        return self.pipe.tokenizer.model_max_length

    def overlong_prompts(self, prompts: list[str]) -> list[int]:
        """Indices of prompts the pipeline's tokenizer would truncate (the pipeline only warns)."""
        ids = self.pipe.tokenizer(list(prompts), truncation=False, verbose=False)["input_ids"]
        return [i for i, row in enumerate(ids) if len(row) > self.prompt_token_limit]

    def text_shape(self) -> tuple[int, int]:
        """(tokens, width) of the per-token embedding, read from one encoded empty prompt."""
        return tuple(self.encode_prompt("").tokens.shape[1:])
