"""FLUX.1 (`FluxPipeline`): CLIP (pooled) + T5, a 16-channel MMDiT on packed latents, flow matching.

Dev and schnell share the pipeline class and differ in what guidance means, so each has an
adapter, told apart by the transformer's `guidance_embeds`:
- dev is guidance-distilled: `guidance_scale` feeds an embedding, there is no CFG batch, and
  re-denoise varies that embedded guidance;
- schnell ignores `guidance_scale`; re-denoise therefore uses true CFG against the empty
  prompt (`true_cfg_scale` with `negative_prompt_embeds`), which the pipeline runs only when
  the scale is above 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings


class FluxDevAdapter(PipelineAdapter):
    """NPNet sees T5's per-token states: 512x4096 for dev (the pipeline's default length).

    Latents are drawn `[B, 16, H/8, W/8]` and packed into 2x2 patches, `[B, (H/16)(W/16), 64]`,
    with the pipeline's own `_pack_latents`; NPNet edits the unpacked form and
    `pipeline_latents` packs it. FLUX uses `latents=` as given (no `init_noise_sigma`).
    """

    family = "flux-dev"
    family_aliases = ("flux", "flux.1-dev")
    description = "FLUX.1-dev (FluxPipeline with a guidance embedding)"
    pipeline_classes = ("FluxPipeline",)
    denoiser_attr = "transformer"
    flow_matching = True
    guidance_embedded: ClassVar[bool] = True
    # T5 length the pipeline encodes at: FluxPipeline's default (dev) / schnell's training length.
    t5_tokens: ClassVar[int] = 512

    @classmethod
    def covers(cls, pipe: Any) -> bool:
        if not super().covers(pipe):
            return False
        return bool(pipe.transformer.config.guidance_embeds) == cls.guidance_embedded

    @property
    def latent_channels(self) -> int:
        return self.denoiser.config.in_channels // 4

    @property
    def size_step(self) -> int:
        return self.vae_scale_factor * 2

    def no_unconditional_branch(self) -> str | None:
        if not self.guidance_embedded:
            return None
        return (
            "FLUX.1-dev is guidance-distilled: its guidance_scale feeds an embedding of one "
            "conditional prediction, so there is no unconditional prediction to weight and a "
            "guidance below 1 has no meaning of the form uncond + w (text - uncond)"
        )

    def pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = latents.shape
        return self.pipe._pack_latents(latents, batch, channels, height, width)

    def unit_latents(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.pipe._unpack_latents(latents, height, width, self.vae_scale_factor)

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, _, _ = self.pipe.encode_prompt(
            prompt=prompt,
            prompt_2=None,
            device=self.device,
            num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=self.t5_tokens,
        )
        return PromptEmbeddings(tokens=tokens)

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        """Prompt and empty-prompt embeddings; the latter only act when `true_cfg_scale` > 1."""
        kwargs: dict[str, Any] = {}
        for texts, prefix in ((prompts, ""), ([""] * len(prompts), "negative_")):
            embeds, pooled, _ = self.pipe.encode_prompt(
                prompt=texts,
                prompt_2=None,
                device=self.device,
                max_sequence_length=self.t5_tokens,
            )
            kwargs[f"{prefix}prompt_embeds"] = embeds
            kwargs[f"{prefix}pooled_prompt_embeds"] = pooled
        return kwargs


class FluxSchnellAdapter(FluxDevAdapter):
    """FLUX.1-schnell: 256x4096 T5 tokens, no guidance embedding; guidance means true CFG."""

    family = "flux-schnell"
    family_aliases = ("flux.1-schnell",)
    description = "FLUX.1-schnell (FluxPipeline without a guidance embedding)"
    guidance_embedded = False
    t5_tokens = 256

    def guidance_kwargs(self, scale: float) -> dict[str, float]:
        return {"true_cfg_scale": scale}
