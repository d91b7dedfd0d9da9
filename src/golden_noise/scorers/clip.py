"""Scorers on a transformers CLIP model's image-prompt cosine: PickScore and CLIPScore.

transformers 5 returns output objects from `get_image_features`/`get_text_features`
(the projected embedding is `pooler_output`), which broke PickScore's README code and
torchmetrics' CLIPScore; `projected` accepts both forms.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import torch
from PIL import Image

from golden_noise.scorers.base import Scorer


def projected(output: torch.Tensor | object) -> torch.Tensor:
    """The projected embedding from a tensor (transformers 4) or an output object (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class CLIPSimilarity(Scorer):
    """Base: cosine of CLIP image and text embeddings, turned into a score by `_from_cosine`."""

    default_model: str
    default_processor: str | None = None

    def __init__(
        self,
        model: str | Path | None = None,
        processor: str | Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model_source = model or self.default_model
        self.processor_source = processor or self.default_processor or self.model_source

    def _load(self) -> None:
        from transformers import AutoProcessor, CLIPModel

        self.model = (
            CLIPModel.from_pretrained(str(self.model_source), cache_dir=self.cache_dir)
            .to(self.device, self.dtype)
            .eval()
        )
        self.processor = AutoProcessor.from_pretrained(
            str(self.processor_source), cache_dir=self.cache_dir
        )

    def cosine(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        """Cosine similarity of image i and prompt i."""
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        text = self.processor(
            text=prompts,
            padding=True,
            truncation=True,
            max_length=self.model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        ).to(self.device)
        image_embeds = projected(
            self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        )
        text_embeds = projected(
            self.model.get_text_features(
                input_ids=text["input_ids"], attention_mask=text["attention_mask"]
            )
        )
        return torch.nn.functional.cosine_similarity(image_embeds.float(), text_embeds.float())

    @abstractmethod
    def _from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        """This scorer's number for a batch of cosines."""

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        return self._from_cosine(self.cosine(images, prompts))


class PickScore(CLIPSimilarity):
    """PickScore v1: a CLIP ViT-H-14 fine-tuned on Pick-a-Pic preferences."""

    name = "pickscore"
    scale = "logit_scale.exp() * cosine (about 100 * cosine), typically 18-24"
    default_model = "yuvalkirstain/PickScore_v1"
    default_processor = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"

    def _from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.model.logit_scale.exp().float() * cosine


class CLIPScore(CLIPSimilarity):
    """CLIPScore (Hessel et al. 2021) as torchmetrics defines it, on OpenAI CLIP ViT-L/14."""

    name = "clipscore"
    scale = "100 * max(cosine, 0), 0-100; typically 20-35"
    default_model = "openai/clip-vit-large-patch14"

    def _from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        return 100 * cosine.clamp(min=0)
