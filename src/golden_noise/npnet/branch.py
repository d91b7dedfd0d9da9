"""What the prompt-reading residual branches share, kept apart so that they never import the
module that builds them (`residual_branch.build_residual_branch`)."""

from __future__ import annotations

import torch


def prompt_per_sample(
    prompt_embeds: torch.Tensor | None, x: torch.Tensor, text_dim: int
) -> torch.Tensor:
    """A prompt-reading branch's tokens, one set per noise: one prompt serves the whole batch,
    and no prompt (an ablation without text) is a single zero token."""
    if prompt_embeds is None:
        return x.new_zeros(x.shape[0], 1, text_dim)
    if prompt_embeds.shape[0] != x.shape[0]:
        return prompt_embeds.expand(x.shape[0], -1, -1)
    return prompt_embeds
