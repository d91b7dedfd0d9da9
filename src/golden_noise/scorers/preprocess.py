"""OpenAI-CLIP image preprocessing, as HPSv2 (open_clip) and ImageReward (BLIP) apply it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms

# The OpenAI CLIP pixel statistics; open_clip's OPENAI_DATASET_MEAN/STD and BLIP use the same.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_image_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Bicubic resize of the short side to `size`, centre crop, RGB, [0, 1], CLIP normalise."""
    return transforms.Compose(
        [
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            lambda image: image.convert("RGB"),
            transforms.ToTensor(),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
