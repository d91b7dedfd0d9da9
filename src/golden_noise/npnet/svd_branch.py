"""SVD branch: keep the noise's singular vectors, predict new singular values."""

from __future__ import annotations

import einops
import torch
from timm.layers import Attention
from torch import nn

from golden_noise.npnet.config import NPNetConfig


class SVDBranch(nn.Module):
    """The authors' `SVDNoiseUnet`, generalised to any channel count and non-square latents.

    The channels fold into one `[fold*H, fold*W]` matrix `U diag(s) Vh`; tokens built from the
    rows of `U^T` and `Vh` plus `s` give a correction `s~ - s`, and `U diag(s~) Vh` unfolds
    back. Module names and Sequential indices match the released `unet_svd` state dict; `bn` is
    stored there but never used by the authors' forward, so it is kept and left unused.
    """

    def __init__(self, config: NPNetConfig) -> None:
        super().__init__()
        self.fold = config.fold
        self.variant = config.svd_variant
        rows, cols, rank = config.fold * config.height, config.fold * config.width, config.svd_rank
        self.mlp1 = nn.Sequential(
            nn.Linear(rows, config.svd_hidden), nn.ReLU(), nn.Linear(config.svd_hidden, rank)
        )
        self.mlp2 = nn.Sequential(
            nn.Linear(cols, config.svd_hidden), nn.ReLU(), nn.Linear(config.svd_hidden, rank)
        )
        self.mlp3 = nn.Sequential(nn.Linear(rank, rank))
        self.attention = Attention(rank, num_heads=config.svd_heads)
        self.bn = nn.BatchNorm2d(rank)
        self.mlp4 = nn.Sequential(
            nn.Linear(rank, config.svd_mlp_hidden),
            nn.ReLU(),
            nn.Linear(config.svd_mlp_hidden, rank),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` float32 `[B, C, H, W]` -> same shape, singular values replaced."""
        matrix = einops.rearrange(x, "b (a c) h w -> b (a h) (c w)", a=self.fold, c=self.fold)
        # Reduced SVD: identical to the full one for square matrices (bit for bit here), and
        # the only form whose factors multiply back for non-square latents.
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        tokens = self.mlp1(u.permute(0, 2, 1)) + self.mlp2(vh) + self.mlp3(s).unsqueeze(1)
        if self.variant == "attention":  # the authors' inference code (published numbers)
            new_s = self.mlp4(self.attention(tokens).mean(1)) + s
        else:  # "mean": the authors' trainer
            new_s = self.mlp4(tokens).mean(1) + s
        pred = u @ torch.diag_embed(new_s) @ vh
        return einops.rearrange(pred, "b (a h) (c w) -> b (a c) h w", a=self.fold, c=self.fold)
