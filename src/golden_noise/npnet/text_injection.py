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

    The mean is masked: all-zero token rows count as padding and are left out. Adapters of
    encoders whose padding the denoiser masks (PixArt-Sigma) zero those rows, so the mean is
    over the prompt's real tokens and does not shrink with prompt length; for encoders
    without a mask no row is ever all zero and this is the plain mean.
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
            condition = _mean_over_real_tokens(prompt_embeds)
        elif self.projection is not None:
            condition = self.projection(prompt_embeds).flatten(1)
        else:
            condition = prompt_embeds.flatten(1)
        return self.norm(x, condition)


def _mean_over_real_tokens(prompt_embeds: torch.Tensor) -> torch.Tensor:
    """`[B, L, D]` -> `[B, D]`: the mean over the tokens whose row is not all zero."""
    real = prompt_embeds.ne(0).any(dim=-1, keepdim=True)
    count = real.sum(dim=1).clamp(min=1)
    return prompt_embeds.sum(dim=1) / count
