"""Stable Diffusion 3/3.5 (`StableDiffusion3Pipeline`): two CLIPs + T5, an MMDiT, flow matching."""

from __future__ import annotations

from typing import Any

from golden_noise.adapters.base import POOLED_CFG_KWARGS, PipelineAdapter, PromptEmbeddings

# The pipeline's default T5 length; with CLIP's 77 tokens in front NPNet sees 333 tokens.
T5_TOKENS = 256


class StableDiffusion3Adapter(PipelineAdapter):
    """NPNet sees `prompt_embeds`: CLIP-L+G per-token states (77 tokens, zero-padded to T5's
    width) followed by T5's 256, i.e. 333x4096 for the released models.

    SD3 uses `latents=` as given (its flow-matching `init_noise_sigma` is 1) and draws them
    unpacked, 16 channels; golden noise is therefore used unchanged.
    """

    family = "sd3"
    family_aliases = ("sd3.5", "stable-diffusion-3")
    description = "Stable Diffusion 3/3.5 (StableDiffusion3Pipeline)"
    pipeline_classes = ("StableDiffusion3Pipeline",)
    denoiser_attr = "transformer"
    flow_matching = True

    @property
    def size_step(self) -> int:
        # The MMDiT patchifies the latent grid, so sizes must divide by VAE factor x patch.
        return self.vae_scale_factor * self.denoiser.config.patch_size

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, *_ = self.pipe.encode_prompt(
            prompt=prompt,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            num_images_per_prompt=num_images_per_prompt,
            do_classifier_free_guidance=False,
            max_sequence_length=T5_TOKENS,
        )
        return PromptEmbeddings(tokens=tokens)

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        encoded = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            do_classifier_free_guidance=True,
            max_sequence_length=T5_TOKENS,
        )
        return dict(zip(POOLED_CFG_KWARGS, encoded, strict=True))
