"""Hunyuan-DiT (`HunyuanDiTPipeline`): BERT + mT5 text encoders, a DiT denoiser."""

from __future__ import annotations

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings

# The pipeline encodes its first (BERT) text path at this length.
BERT_TOKENS = 77


class HunyuanDiTAdapter(PipelineAdapter):
    """NPNet sees the BERT embedding (77x1024), as the authors' released `dit.pth` does."""

    family = "hunyuan-dit"
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
