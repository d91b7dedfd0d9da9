"""HPSv2 / HPSv2.1: human preference score, an open_clip ViT-H-14 fine-tuned on HPDv2.

The `hpsv2` package lacks its tokenizer vocabulary and pins old dependencies, so this
builds the same model with open_clip itself (key-for-key identical) and reads the
checkpoint's `["state_dict"]`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.weights import load_strict, read_tensors, resolve_file
from golden_noise.scorers.base import Scorer
from golden_noise.scorers.preprocess import clip_image_transform

HPS_REPO = "xswu/HPSv2"


class HPSv2(Scorer):
    """HPS version 2.0. `checkpoint`: the .pt file, a folder holding it, or a hub repo id."""

    name = "hpsv2"
    scale = (
        "cosine similarity of image and prompt embeddings, about 0.20-0.35 for SD-class "
        "models; papers print it x100"
    )
    filename = "HPS_v2_compressed.pt"

    def __init__(
        self,
        checkpoint: str | Path = HPS_REPO,
        architecture: str = "ViT-H-14",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.checkpoint = checkpoint
        self.architecture = architecture

    def _load(self) -> None:
        try:
            import open_clip
        except ImportError as error:
            raise GoldenNoiseError(
                "HPSv2 needs the python package 'open_clip', which is not installed: "
                "pip install 'golden-noise[scorers]'"
            ) from error
        path = resolve_file(self.checkpoint, self.filename, cache_dir=self.cache_dir)
        model = open_clip.create_model(self.architecture, pretrained=None, output_dict=True)
        load_strict(model, read_tensors(path, "state_dict"), path)
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(self.architecture)
        self.transform = clip_image_transform(model.visual.image_size[0])

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = torch.stack([self.transform(image) for image in images])
        tokens = self.tokenizer(prompts).to(self.device)
        out = self.model(pixels.to(self.device, self.dtype), tokens)
        return (out["image_features"] * out["text_features"]).sum(-1)


class HPSv21(HPSv2):
    """HPS version 2.1, the one the golden-noise paper reports."""

    name = "hpsv2.1"
    filename = "HPS_v2.1_compressed.pt"
