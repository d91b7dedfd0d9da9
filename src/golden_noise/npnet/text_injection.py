"""Text injection: the prompt embedding scales and shifts the group-normalised noise."""

from __future__ import annotations

import torch
from diffusers.models.normalization import AdaGroupNorm
from torch import nn

from golden_noise.npnet.config import NPNetConfig


class TextInjection(nn.Module):
    """`t = GroupNorm_1(x) * (1 + scale) + shift`, `(scale, shift) = Linear(c)`.

    `c` is the per-token embedding flattened to `L*D` as released ("none"). For long or wide
    embeddings (SD3, FLUX: 333x4096 would need a 2C x 1.4M Linear) `c` is first reduced:
    "mean" averages over the tokens (`D` inputs), "projection" maps each token to
    `text_reduction_dim` features before flattening.
    """

    def __init__(self, config: NPNetConfig) -> None:
        super().__init__()
        self.reduction = config.text_reduction
        self.projection = (
            nn.Linear(config.text_dim, config.text_reduction_dim)
            if config.text_reduction == "projection"
            else None
        )
        width = {
            "none": config.text_tokens * config.text_dim,
            "mean": config.text_dim,
            "projection": config.text_tokens * config.text_reduction_dim,
        }[config.text_reduction]
        self.norm = AdaGroupNorm(width, config.channels, 1, eps=1e-6)

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """`x` `[B, C, H, W]`, `prompt_embeds` `[B or 1, L, D]`, both float32."""
        if self.reduction == "mean":
            condition = prompt_embeds.mean(1)
        elif self.projection is not None:
            condition = self.projection(prompt_embeds).flatten(1)
        else:
            condition = prompt_embeds.flatten(1)
        return self.norm(x, condition)
