"""Per-sample norms of latents: one place for the norm-keeping that the norm control is about.

A gain bought by changing the noise's norm is a temperature change, not golden noise, so
NPNet's `keep_norm`, the norm-preserving teachers and the reward objective's penalty all
measure and fix the norm the same way: the L2 norm over every latent dimension of a sample.
"""

from __future__ import annotations

import torch

# Weight of the norm term inside the penalty: a 1% change of norm costs as much as a move of
# 10% of the norm, so the net cannot buy reward with a temperature change (the toy's shrink).
NORM_WEIGHT = 100.0


def latent_norms(latents: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm `[B]` (float32) of a batch of latents in any layout."""
    return latents.float().flatten(1).norm(dim=1)


def with_norms(latents: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """`latents` rescaled so sample i has L2 norm `norms[i]` (a zero sample stays zero)."""
    scale = norms / latent_norms(latents).clamp(min=1e-12)
    return latents * scale.view(-1, *([1] * (latents.dim() - 1))).to(latents.dtype)


def stay_close_penalty(golden: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per row: `NORM_WEIGHT (|g|/|x| - 1)^2 + |g - x|^2 / |x|^2` (L2 over all latent dims).

    A reward alone is easy to game. The norm term stops a temperature change (shrinking the
    noise, which the toy's scorer rewards) from passing for a gain; the move term is a trust
    region around the input that keeps the output a standard-looking Gaussian, the kind of
    noise the pipeline was trained on, and limits reward hacking of an imperfect reward.
    """
    noise_norm = latent_norms(noise)
    ratio = latent_norms(golden) / noise_norm
    move = latent_norms(golden - noise) ** 2 / noise_norm**2
    return NORM_WEIGHT * (ratio - 1) ** 2 + move
