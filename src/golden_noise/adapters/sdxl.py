"""SDXL (`StableDiffusionXLPipeline`), which also runs DreamShaper-XL, Turbo, Lightning, LCM."""

from __future__ import annotations

from typing import Any

from golden_noise.adapters.base import POOLED_CFG_KWARGS, PipelineAdapter, PromptEmbeddings


class StableDiffusionXLAdapter(PipelineAdapter):
    """NPNet sees `prompt_embeds`: both CLIP encoders' penultimate states concatenated, 77x2048."""

    family = "sdxl"
    description = "Stable Diffusion XL (StableDiffusionXLPipeline)"
    pipeline_classes = ("StableDiffusionXLPipeline",)

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, *_ = self.pipe.encode_prompt(
            prompt=prompt,
            device=self.device,
            num_images_per_prompt=num_images_per_prompt,
            do_classifier_free_guidance=False,
        )
        return PromptEmbeddings(tokens=tokens)

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        encoded = self.pipe.encode_prompt(
            prompt=prompts, device=self.device, do_classifier_free_guidance=True
        )
        return dict(zip(POOLED_CFG_KWARGS, encoded, strict=True))
