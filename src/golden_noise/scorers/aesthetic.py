"""LAION aesthetic predictor v2: a linear MLP on L2-normalised CLIP ViT-L/14 image features."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from golden_noise.core.weights import load_strict, read_tensors, resolve_file
from golden_noise.scorers.base import Scorer
from golden_noise.scorers.clip import projected
from golden_noise.scorers.heads import RatingMLP

AESTHETIC_REPO = "camenduru/improved-aesthetic-predictor"
AESTHETIC_FILE = "sac+logos+ava1-l14-linearMSE.pth"


class Aesthetic(Scorer):
    """Ignores the prompt. `head`: the .pth file, a folder holding it, or a hub repo id;
    `clip`: the CLIP ViT-L/14 the head was trained on (transformers folder or hub id)."""

    name = "aesthetic"
    scale = "predicted mean human rating on a 1-10 scale; typically 4.5-7"

    def __init__(
        self,
        head: str | Path = AESTHETIC_REPO,
        clip: str | Path = "openai/clip-vit-large-patch14",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.head_source = head
        self.clip_source = clip

    def _load(self) -> None:
        from transformers import CLIPImageProcessor, CLIPModel

        self.clip = (
            CLIPModel.from_pretrained(str(self.clip_source), cache_dir=self.cache_dir)
            .to(self.device, self.dtype)
            .eval()
        )
        self.processor = CLIPImageProcessor.from_pretrained(
            str(self.clip_source), cache_dir=self.cache_dir
        )
        path = resolve_file(self.head_source, AESTHETIC_FILE, cache_dir=self.cache_dir)
        head = RatingMLP(self.clip.config.projection_dim)
        load_strict(head, read_tensors(path), path)
        self.head = head.to(self.device).eval()

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        features = projected(
            self.clip.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        ).float()
        return self.head(features / features.norm(dim=-1, keepdim=True))
