"""Hunyuan-DiT (`HunyuanDiTPipeline`): BERT + mT5 text encoders, a DiT denoiser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings

# The pipeline encodes its first (BERT) text path at this length.
BERT_TOKENS = 77
# ... and its second (mT5) text path at this length.
T5_TOKENS = 256


class HunyuanDiTAdapter(PipelineAdapter):
    """NPNet sees the BERT embedding (77x1024), as the authors' released `dit.pth` does.

    The pipeline moves sizes outside its trained set (e.g. 1024x1024, 768x1280) to the
    nearest one unless called with `use_resolution_binning=False`; latents made for an
    unbinned size then no longer fit, so pass that flag at other sizes.
    """

    family = "hunyuan-dit"
    family_aliases = ("hunyuan", "hunyuandit", "dit")
    description = "Hunyuan-DiT (HunyuanDiTPipeline)"
    pipeline_classes = ("HunyuanDiTPipeline",)
    denoiser_attr = "transformer"

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, _, mask, _ = self.pipe.encode_prompt(
            prompt,
            device=self.device,
            dtype=self.denoiser.dtype,
            num_images_per_prompt=num_images_per_prompt,
            do_classifier_free_guidance=False,
            max_sequence_length=BERT_TOKENS,
            text_encoder_index=0,
        )
        return PromptEmbeddings(tokens=tokens, attention_mask=mask)

    def prompt_embeddings(self, call_kwargs: Mapping[str, Any]) -> PromptEmbeddings:
        tokens, mask = call_kwargs["prompt_embeds"], call_kwargs["prompt_attention_mask"]
        return PromptEmbeddings(tokens=tokens, attention_mask=mask)

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        # Binning would move an explicit size to the nearest trained one and no longer match
        # the latents we pass, so the size is taken as given.
        kwargs: dict[str, Any] = {"use_resolution_binning": False}
        for index, length, suffix in ((0, BERT_TOKENS, ""), (1, T5_TOKENS, "_2")):
            embeds, negative, mask, negative_mask = self.pipe.encode_prompt(
                prompts,
                device=self.device,
                dtype=self.denoiser.dtype,
                do_classifier_free_guidance=True,
                max_sequence_length=length,
                text_encoder_index=index,
            )
            kwargs[f"prompt_embeds{suffix}"] = embeds
            kwargs[f"negative_prompt_embeds{suffix}"] = negative
            kwargs[f"prompt_attention_mask{suffix}"] = mask
            kwargs[f"negative_prompt_attention_mask{suffix}"] = negative_mask
        return kwargs
