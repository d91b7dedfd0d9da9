"""PixArt-Sigma (`PixArtSigmaPipeline`): one T5 encoder with an attention mask, a DiT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings

# The pipeline's default T5 length.
T5_TOKENS = 300


class PixArtSigmaAdapter(PipelineAdapter):
    """NPNet sees T5's per-token states, 300x4096, with padding rows set to zero.

    The DiT's cross-attention masks the padding out, so the states T5 leaves there never reach
    the image; zeroing them gives NPNet exactly what the denoiser uses, and lets the "mean"
    text reduction average over the prompt's real tokens only (a masked mean; see
    `golden_noise.npnet.text_injection`). The mask itself is returned too.

    The pipeline moves sizes to its trained aspect ratios unless called with
    `use_resolution_binning=False`; latents made for an unbinned size then no longer fit, so
    pass that flag at other sizes. The adapter encodes with `clean_caption=False`.
    """

    family = "pixart-sigma"
    family_aliases = ("pixart",)
    description = "PixArt-Sigma (PixArtSigmaPipeline)"
    pipeline_classes = ("PixArtSigmaPipeline",)
    denoiser_attr = "transformer"

    def default_size(self) -> tuple[int, int]:
        side = self.denoiser.config.sample_size * self.vae_scale_factor
        return side, side

    @property
    def prompt_token_limit(self) -> int:
        return T5_TOKENS

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, mask, _, _ = self.pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=False,
            num_images_per_prompt=num_images_per_prompt,
            device=self.device,
            clean_caption=False,
            max_sequence_length=T5_TOKENS,
        )
        return PromptEmbeddings(
            tokens=tokens * mask[..., None].to(tokens.dtype), attention_mask=mask
        )

    def prompt_embeddings(self, call_kwargs: Mapping[str, Any]) -> PromptEmbeddings:
        tokens, mask = call_kwargs["prompt_embeds"], call_kwargs["prompt_attention_mask"]
        return PromptEmbeddings(
            tokens=tokens * mask[..., None].to(tokens.dtype), attention_mask=mask
        )

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        embeds, mask, negative, negative_mask = self.pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=True,
            device=self.device,
            clean_caption=False,
            max_sequence_length=T5_TOKENS,
        )
        return {
            "prompt_embeds": embeds,
            "prompt_attention_mask": mask,
            "negative_prompt_embeds": negative,
            "negative_prompt_attention_mask": negative_mask,
            # The call's default negative_prompt "" would clash with the embeddings given.
            "negative_prompt": None,
            "use_resolution_binning": False,
        }
