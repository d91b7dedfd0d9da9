"""The linear rating head shared by ImageReward and the LAION aesthetic predictor."""

from __future__ import annotations

import torch
from torch import nn


class RatingMLP(nn.Module):
    """768-1024-128-64-16-1 Linears with dropouts and no activations.

    Both released checkpoints store it as `layers.{0,2,4,6,7}` (dropouts at 1, 3, 5);
    `width` is the input feature size (768 for both).
    """

    def __init__(self, width: int = 768) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)
