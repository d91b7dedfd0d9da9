"""SD 1.x and 2.x (`StableDiffusionPipeline`): one CLIP text encoder, a UNet."""

from __future__ import annotations

from typing import Any

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings


class StableDiffusionAdapter(PipelineAdapter):
    """NPNet sees the CLIP last hidden state: 77x768 (SD 1.x) or 77x1024 (SD 2.x)."""

    family = "sd"
    family_aliases = ("sd1", "sd1.5", "sd15", "sd2", "sd2.1", "sd21")
    description = "Stable Diffusion 1.x/2.x (StableDiffusionPipeline)"
    pipeline_classes = ("StableDiffusionPipeline",)

    def default_size(self) -> tuple[int, int]:
        # SD reads its default from the UNet config (an int or a (height, width) pair).
        size = self.denoiser.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        return height * self.vae_scale_factor, width * self.vae_scale_factor

    def encode_prompt(
        self, prompt: str | list[str], num_images_per_prompt: int = 1
    ) -> PromptEmbeddings:
        tokens, _ = self.pipe.encode_prompt(
            prompt,
            self.device,
            num_images_per_prompt,
            do_classifier_free_guidance=False,
        )
        return PromptEmbeddings(tokens=tokens)

    def prompt_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        encoded = self.pipe.encode_prompt(prompts, self.device, 1, do_classifier_free_guidance=True)
        return dict(zip(("prompt_embeds", "negative_prompt_embeds"), encoded, strict=True))
